"""The one exception type charter raises for problems a user can fix."""


class CharterError(Exception):
    """A user-fixable problem; the message names the file, row or field and says what to do.

    The CLI turns it into exit code 1 and prints only the message, no traceback.
    """
