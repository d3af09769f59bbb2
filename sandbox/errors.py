"""The one error type a user sees: a sentence saying what is wrong, and the fix."""

from __future__ import annotations


class SandboxError(Exception):
    """An error the user can act on. The CLI prints `message` and `fix`, never a traceback."""

    def __init__(self, message: str, fix: str = "", *, exit_code: int = 1):
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.exit_code = exit_code

    def __str__(self) -> str:
        return f"{self.message} Fix: {self.fix}" if self.fix else self.message


def use_one_of(given: str, known) -> str:
    """The fix for a name that is not one of `known`: the closest, when one is close ("did you mean"), and all."""
    from difflib import get_close_matches

    names = [str(k) for k in known]
    close = get_close_matches(str(given), names, n=1, cutoff=0.6)
    return (f"did you mean {close[0]!r}? " if close else "") + f"use one of: {', '.join(names)}."
