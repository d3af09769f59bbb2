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
