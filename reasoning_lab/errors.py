"""The project's one error type: a problem with the user's input or environment."""


class ReasoningLabError(Exception):
    """A problem with the user's input or environment: printed as one line, without a traceback."""
