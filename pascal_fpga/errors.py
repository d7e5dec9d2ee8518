"""The project's error type: one clear line for the user, printed by the CLI without a traceback."""


class PascalError(Exception):
    """A user-facing error (bad input, missing data, unsupported setting).

    The message is one line naming the file, layer or field at fault. The CLI prints it and exits
    with status 2; ``--debug`` shows the traceback.
    """
