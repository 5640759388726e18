"""The Textual console of the Model Release Console, and its command line."""
