"""The use cases every front end calls: the workspace of live objects, the table of
mutating actions, the release pipeline, the post-release guard and the doctor.

The console, the scripting CLI and the tests all go through these modules; nothing
here prints, prompts, parses arguments or exits.
"""
