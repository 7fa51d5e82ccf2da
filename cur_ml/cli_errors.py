"""Every failure of a `cur-ml` command as one line on stderr (CONTRACT section 2).

The line names the problem and, where one can fix it, the setting to change; the
traceback goes to the debug log only (`cur-ml --log-level debug ...`).
"""

from __future__ import annotations

import logging
import sys

__all__ = ["describe", "one_line", "report"]

log = logging.getLogger("cur_ml.cli")

_TRACEBACK_HINT = "the traceback: cur-ml --log-level debug ..."


def one_line(text: str) -> str:
    """`text` with its lines joined: stderr gets exactly one line."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _settings_problem(exc) -> str:
    """A pydantic `ValidationError` of `Settings`, each field as the variable that sets it.

    The input is never shown: it may be a token.
    """
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        field = str(error["loc"][0]) if error["loc"] else "?"
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"CUR_ML_{field.upper()}: {message}")
    if exc.title != "Settings":
        return f"invalid {exc.title}: " + "; ".join(problems)
    return "bad setting " + "; ".join(problems)


def _database_url() -> str | None:
    """The configured store URL with its password hidden (None when settings do not load)."""
    try:
        from sqlalchemy.engine import make_url

        from cur_ml.settings import Settings

        return make_url(Settings().database_url).render_as_string(hide_password=True)
    except Exception:
        return None


def _store_problem(exc) -> str:
    """A driver error of the store (server down, file not a database, bad credentials)."""
    cause = one_line(str(exc.orig if getattr(exc, "orig", None) is not None else exc))
    cause = cause.split(" (Background on this error at:")[0]
    url = _database_url()
    where = f" at {url}" if url else ""
    return f"the store{where} cannot be used: {cause} (the setting: CUR_ML_DATABASE_URL)"


def describe(exc: BaseException) -> str:
    """The one line that says what went wrong, for any exception a command lets out."""
    from cur_ml.errors import CurMlError

    if isinstance(exc, CurMlError):
        return one_line(exc.message)
    pydantic = sys.modules.get("pydantic")  # loaded whenever one of its errors exists
    if pydantic is not None and isinstance(exc, pydantic.ValidationError):
        return _settings_problem(exc)
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is not None:
        if isinstance(exc, sa_exc.DBAPIError):
            return _store_problem(exc)
        if isinstance(exc, sa_exc.ArgumentError | sa_exc.NoSuchModuleError):
            return f"CUR_ML_DATABASE_URL is not a database URL cur-ml can use: {one_line(exc)}"
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    detail = one_line(str(exc)) or "no message"
    return f"unexpected {type(exc).__name__}: {detail} ({_TRACEBACK_HINT})"


def report(exc: BaseException, log_level: str | None) -> str:
    """Log `exc`'s traceback at debug level and return its one line for stderr.

    A command that configured logging (serve, worker) keeps its handlers; otherwise a
    stderr handler is set up when `log_level` asks for one.
    """
    root = logging.getLogger()
    if not root.handlers and log_level:
        level = logging.getLevelName(log_level.upper())
        logging.basicConfig(
            level=level if isinstance(level, int) else logging.WARNING,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
    log.debug("the command failed", exc_info=exc)
    return describe(exc)
