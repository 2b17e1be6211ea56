"""The tools' user-facing error: printed by the CLI as one sentence, exit status 2."""


class ToolError(Exception):
    """Something the user can fix (a missing file, a bad option); the message says what."""
