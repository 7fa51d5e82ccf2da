"""Domain errors: one module, each with a code and a message naming the bad input.

The CLI prints them as one line; the API maps them to 4xx answers.
"""

from __future__ import annotations

__all__ = [
    "CurMlError",
    "DataError",
    "InputError",
    "ModelError",
    "ModelIntegrityError",
]


class CurMlError(Exception):
    """Base of every error cur-ml raises on purpose."""

    code = "E000"

    def __init__(self, message: str) -> None:
        super().__init__(f"[{self.code}] {message}")
        self.message = message


class InputError(CurMlError):
    """One appeal cannot be processed as given (bad field value or type)."""

    code = "E100"


class DataError(CurMlError):
    """A dataset file cannot be used: unreadable, missing columns, broken rows."""

    code = "E200"


class ModelError(CurMlError):
    """A model directory is missing, unfitted or was trained differently."""

    code = "E300"


class ModelIntegrityError(ModelError):
    """The model file does not match its manifest (sha256 or versions)."""

    code = "E301"
