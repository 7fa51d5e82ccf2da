"""Domain errors: one module, each with a code and a message naming the bad input.

The CLI prints them as one line; the API maps them to 4xx answers.
"""

from __future__ import annotations

__all__ = [
    "AccountError",
    "BackupError",
    "CurMlError",
    "DataError",
    "IdempotencyKeyReusedError",
    "InputError",
    "ModelError",
    "ModelIntegrityError",
    "ModelKeyError",
    "ModelNotReadyError",
    "ModelSignatureError",
    "PredictorBusyError",
    "RegionModelMissingError",
    "RetrainRefusedError",
    "StaleVersionError",
    "StartupError",
    "StoreBusyError",
    "StoreUnavailableError",
    "UndoRefusedError",
    "UnknownPredictionError",
    "UnknownRegionError",
    "UnprocessableAppealsError",
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


class UnprocessableAppealsError(InputError):
    """Valid-looking appeals the model failed on: answered 422, naming them, never 500."""

    code = "E101"

    def __init__(self, indexes: list[int]) -> None:
        super().__init__(f"{len(indexes)} appeal(s) could not be processed")
        self.indexes = indexes


class UnknownPredictionError(InputError):
    """Corrections refer to predictions that were never served (`positions`: their indexes)."""

    code = "E102"

    def __init__(self, positions: list[int], ids: list[str]) -> None:
        shown = ", ".join(ids[:3]) + (" ..." if len(ids) > 3 else "")
        super().__init__(f"{len(ids)} unknown prediction_id(s): {shown}")
        self.positions = positions
        self.ids = ids


class IdempotencyKeyReusedError(InputError):
    """An idempotency key already stored a different correction (`positions`: their indexes)."""

    code = "E103"

    def __init__(self, positions: list[int], keys: list[str]) -> None:
        shown = ", ".join(keys[:3]) + (" ..." if len(keys) > 3 else "")
        super().__init__(f"idempotency key(s) already used for another correction: {shown}")
        self.positions = positions
        self.keys = keys


class StaleVersionError(CurMlError):
    """A save was based on a version of an appeal's labels that is no longer the latest: someone
    changed them since. `positions`: the items based on an old version; `changes`: the rows
    stored after it (field, old, new, who, when), oldest first. Nothing is stored."""

    code = "E104"

    def __init__(self, positions: list[int], changes: list) -> None:
        fields = sorted({c.field for c in changes})
        super().__init__(
            f"{len(positions)} item(s) based on an old version: since then "
            f"{len(changes)} change(s) of {', '.join(fields) or 'the labels'} were stored"
        )
        self.positions = positions
        self.changes = changes


class UndoRefusedError(CurMlError):
    """Nothing can be undone as asked: no correction of this operator in the undo window,
    or someone changed the appeal after it."""

    code = "E105"

    def __init__(self, message: str, *, changed_after: bool = False) -> None:
        super().__init__(message)
        #: The operator's rows are there, but someone changed the appeal after them.
        self.changed_after = changed_after


class DataError(CurMlError):
    """A dataset file cannot be used: unreadable, missing columns, broken rows."""

    code = "E200"


class ModelError(CurMlError):
    """A model directory is missing, unfitted or was trained differently."""

    code = "E300"


class ModelIntegrityError(ModelError):
    """The model file does not match its manifest (sha256, scikit-learn major.minor), or the
    manifest names a file outside its directory."""

    code = "E301"


class ModelSignatureError(ModelIntegrityError):
    """The manifest is not signed, or its HMAC does not verify with the configured key: the
    model file (a pickle, i.e. code) is never read."""

    code = "E303"


class ModelKeyError(ModelError):
    """No usable model signing key: unset, missing key file, or shorter than 32 characters."""

    code = "E304"


class ModelNotReadyError(ModelError):
    """No model is loaded yet (or the first load failed)."""

    code = "E302"


class RegionModelMissingError(ModelNotReadyError):
    """A region served by this deployment has no model that loads (none trained yet, the
    registry has no champion for it, or its files are refused): 503 for that region only."""

    code = "E305"

    def __init__(self, region: str, why: str | None = None) -> None:
        super().__init__(f"region {region} has no model to answer with yet")
        self.region = region
        self.why = why  # for the log: may name files


class UnknownRegionError(InputError):
    """An appeal names a region this deployment does not serve."""

    code = "E106"

    def __init__(self, region: str, known: list[str]) -> None:
        super().__init__(f"unknown region {region!r}; this deployment serves {', '.join(known)}")
        self.region = region
        self.known = known


class StoreBusyError(CurMlError):
    """The store is not keeping up (or is down, or not open yet); the request may be retried."""

    code = "E400"


class PredictorBusyError(CurMlError):
    """Too many large requests are waiting for the large lane; retry in `retry_after` seconds."""

    code = "E401"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreUnavailableError(StoreBusyError):
    """The store cannot take writes (SQLite file gone or replaced, server unreachable): nothing
    is acknowledged until it is back; the request may be retried."""

    code = "E402"


class RetrainRefusedError(CurMlError):
    """A retraining would not mean anything (no base data named, no correction matching it):
    refused before any training, with the one-line reason and how to proceed."""

    code = "E500"


class BackupError(CurMlError):
    """A backup or export of the store cannot be made: the target exists, the store is not
    there, `pg_dump` is missing or failed."""

    code = "E600"


class StartupError(CurMlError):
    """`cur-ml serve` cannot start as configured (predict open on a public address, the port
    taken): refused before anything runs, naming the setting to change."""

    code = "E700"


class AccountError(CurMlError):
    """A personal account cannot be added, found or revoked as asked (a bad or taken name,
    an unknown role, no such account)."""

    code = "E800"
