"""The one exception type for user errors: the CLI prints its message and exits with code 2."""


class GenlabError(ValueError):
    """A user-facing error with a one-line message: what is wrong and what to do."""
