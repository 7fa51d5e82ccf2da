"""The cluster's shared secrets: one model signing key and the bearer tokens of every role.

Generated once by the first `up` into `<state>/tokens.json` (mode 0600) and handed to every
replica and the worker through their environment: replicas must verify the models the
worker signs, and a client must be able to use any replica behind nginx with one token.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from pathlib import Path

from cur_ml.deploy.config import ClusterError

__all__ = ["TOKEN_ENV", "load_tokens", "token_env"]

#: tokens.json key → the setting that carries it.
TOKEN_ENV = {
    "model_key": "CUR_ML_MODEL_KEY",
    "predict_token": "CUR_ML_PREDICT_TOKEN",
    "operator_token": "CUR_ML_OPERATOR_TOKEN",
    "admin_token": "CUR_ML_ADMIN_TOKEN",
    "metrics_token": "CUR_ML_METRICS_TOKEN",
}


def _create(path: Path) -> dict[str, str]:
    values = {name: secrets.token_urlsafe(32) for name in TOKEN_ENV}
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: two `up`s at once never write two different key sets.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(values, fh, indent=2)
        fh.write("\n")
    return values


def load_tokens(path: Path, *, create: bool = False) -> dict[str, str]:
    """The secrets in `path` (made first when `create` and missing); refused when others may
    read the file or a secret is missing."""
    if not path.exists():
        if not create:
            raise ClusterError(f"no tokens at {path}: `deploy/cluster up` makes them")
        return _create(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ClusterError(f"{path} may be read by others (mode {mode:o}): chmod 600 {path}")
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ClusterError(f"{path} is not valid JSON ({exc})") from None
    missing = [name for name in TOKEN_ENV if not values.get(name)]
    if missing:
        raise ClusterError(f"{path} lacks {', '.join(missing)}: remove it and run `up` again")
    return values


def token_env(values: dict[str, str]) -> dict[str, str]:
    """The environment of a cur-ml process that holds every secret."""
    return {env: values[name] for name, env in TOKEN_ENV.items()}
