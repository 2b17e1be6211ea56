"""The one exception type the CLI turns into a one-sentence error and a non-zero exit."""


class TrainingError(Exception):
    """A user-facing problem with data, options or files."""
