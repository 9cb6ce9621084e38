"""The one exception type for mistakes a user can fix.

The CLI prints a ``UserError`` as a single line on stderr and exits with code 2; anything else is a
bug and keeps its traceback.
"""

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A bad recipe, override, file, data row or model name: reported in one line, exit code 2."""
