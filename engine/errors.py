"""The one exception type charter raises for problems a user can fix."""


class CharterError(Exception):
    """A user-fixable problem; the message names the file, row or field and says what to do.

    The CLI turns it into exit code 1 and prints only the message, no traceback.
    """


def user_errors(fn):
    """Decorate a CLI command: a CharterError prints its message (no traceback) and exits with code 1."""
    import functools

    import typer
    from rich.console import Console

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CharterError as exc:
            Console(stderr=True).print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper
