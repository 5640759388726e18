"""Session-scoped pytest fixtures handing tests the real services."""
