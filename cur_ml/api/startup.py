"""What `cur-ml serve` settles before anything starts: who may reach predict, and the port.

Each refusal is a `StartupError`, one line naming the setting to change.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from cur_ml.errors import StartupError
from cur_ml.settings import Settings, is_loopback

__all__ = ["announce_exposure", "check_exposure", "listening_socket"]


def check_exposure(settings: Settings) -> None:
    """Refuse a non-loopback address with predict open (no predict token), unless allowed."""
    if (
        settings.predict_token is None
        and not is_loopback(settings.host)
        and not settings.allow_open_predict
    ):
        raise StartupError(
            f"predict would be open to anyone who can reach {settings.host}: set "
            "CUR_ML_PREDICT_TOKEN (24 characters or more), serve on 127.0.0.1 (--host, "
            "CUR_ML_HOST), or accept an open predict with --allow-open-predict "
            "(CUR_ML_ALLOW_OPEN_PREDICT=true)"
        )


def announce_exposure(settings: Settings, log: logging.Logger) -> None:
    """Log, once per start, what is open: predict without a token, /metrics without one."""
    if settings.predict_token is None:
        if is_loopback(settings.host):
            log.info(
                "predict is open (no CUR_ML_PREDICT_TOKEN): only this machine reaches %s",
                settings.host,
            )
        else:
            log.warning(
                "predict is open to anyone who can reach %s:%d (CUR_ML_ALLOW_OPEN_PREDICT); "
                "set CUR_ML_PREDICT_TOKEN to close it",
                settings.host,
                settings.port,
            )
    if settings.metrics_locked() and settings.metrics_token is None:
        how = "the admin token" if settings.admin_token is not None else "no token (403)"
        log.warning(
            "/metrics needs a bearer token here and CUR_ML_METRICS_TOKEN is unset: it answers "
            "to %s only; set CUR_ML_METRICS_TOKEN for the scraper",
            how,
        )


@contextmanager
def listening_socket(host: str, port: int) -> Iterator[socket.socket]:
    """The server's socket, bound here (uvicorn is handed it) so that a taken port is one
    line before anything starts, never uvicorn's error after the app has started.

    Port 0 binds a free port: `sock.getsockname()[1]` says which.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(
                f"port {port} on {host} is in use: stop what holds it, or serve on another "
                "port (--port, CUR_ML_PORT)"
            ) from exc
        raise StartupError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} (--host, CUR_ML_HOST; "
            "--port, CUR_ML_PORT)"
        ) from exc
    sock.set_inheritable(True)  # the workers of `--workers N` serve on it too
    try:
        yield sock
    finally:
        sock.close()
