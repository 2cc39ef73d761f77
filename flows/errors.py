"""Errors the command line reports as one line with exit code 2 (in a module of their own, so that
`python -m flows.cli` and the sub-commands' modules share one class)."""


class UserError(Exception):
    """A mistake the user can fix: printed as one line, exit code 2."""


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
