"""Tokens to identities: the environment tokens (bootstrap admin, shared operator, the routing
service's predict token) and personal accounts (`cur-ml users add`)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from sqlalchemy import Engine

from cur_ml.auth.limits import AuthLimiter, account_key, address_key, name_key
from cur_ml.settings import Settings
from cur_ml.store.auth_failures import FailureLog
from cur_ml.store.users import User, UserRepository, clean_name

__all__ = ["ENV_SETTINGS", "Authenticator", "Identity", "Verdict", "env_fingerprint"]

Role = Literal["predict", "operator", "admin"]
#: The environment variable of each role's shared token.
ENV_SETTINGS: dict[str, str] = {
    "predict": "CUR_ML_PREDICT_TOKEN",
    "operator": "CUR_ML_OPERATOR_TOKEN",
    "admin": "CUR_ML_ADMIN_TOKEN",
}
#: Which roles a role passes (admin passes every check, as its environment token always did).
_PASSES: dict[str, frozenset[str]] = {
    "predict": frozenset({"predict"}),
    "operator": frozenset({"operator"}),
    "admin": frozenset({"predict", "operator", "admin"}),
}


@dataclass(frozen=True)
class Identity:
    """Who proved what: a personal account (`user_id`, `name`, its `regions`) or an
    environment token (every region of the deployment)."""

    role: Role
    #: The account's name (None: an environment token, which names nobody).
    name: str | None = None
    user_id: int | None = None
    #: The regions the account works in (None: every region; the environment tokens act
    #: for the whole deployment).
    regions: tuple[str, ...] | None = None

    @property
    def personal(self) -> bool:
        return self.user_id is not None

    def grants(self, role: str) -> bool:
        return role in _PASSES[self.role]


@dataclass(frozen=True)
class Verdict:
    """The answer to a token: an identity, or none (and, past the limit, how long to wait)."""

    identity: Identity | None = None
    retry_after: int | None = None


def _env_tokens(settings: Settings) -> dict[Role, bytes]:
    out: dict[Role, bytes] = {}
    for role in ("predict", "operator", "admin"):
        secret = getattr(settings, f"{role}_token")
        if secret is not None and secret.get_secret_value():
            out[role] = secret.get_secret_value().encode("utf-8")
    return out


def env_fingerprint(settings: Settings, role: str) -> str | None:
    """A short digest of a role's environment token: a session opened with it ends when
    the token changes (or is unset), as the signed cookies did."""
    token = _env_tokens(settings).get(role)  # type: ignore[call-overload]
    if token is None:
        return None
    return hashlib.sha256(b"cur-ml env token\x00" + token).hexdigest()[:32]


class Authenticator:
    """Check a token against the environment tokens, then the personal accounts, counting
    failures per client address and per account (`AuthLimiter`)."""

    def __init__(
        self, settings: Settings, users: UserRepository | None, limiter: AuthLimiter
    ) -> None:
        self.settings = settings
        self.users = users
        self.limiter = limiter

    @classmethod
    def on_store(cls, settings: Settings, engine: Engine | None) -> Authenticator:
        """The accounts and failure counts of the store at `engine` (None: environment
        tokens only, uncounted; before the store is open)."""
        if engine is None:
            return cls(settings, None, AuthLimiter(None))
        window = timedelta(seconds=settings.auth_failure_window_seconds)
        limiter = AuthLimiter(
            FailureLog(engine, window), limit=settings.auth_failure_limit, window=window
        )
        return cls(settings, UserRepository(engine), limiter)

    def env_identity(self, token: str) -> Identity | None:
        """The environment token this is (admin first), compared with every token in constant
        time so that timing tells nothing about which one matched."""
        given = token.strip().encode("utf-8", "surrogateescape")
        hits = {
            role: secrets.compare_digest(given, t) for role, t in _env_tokens(self.settings).items()
        }
        for role in ("admin", "operator", "predict"):
            if hits.get(role):
                return Identity(role=role)  # type: ignore[arg-type]
        return None

    def _personal(self, user: User) -> Identity:
        regions = user.region_codes(self.settings.default_region)
        return Identity(role=user.role, name=user.name, user_id=user.id, regions=regions)  # type: ignore[arg-type]

    def can_pass(self, role: str) -> bool:
        """Whether anything could pass `role`: its environment token, or an active account."""
        if any(r in _env_tokens(self.settings) for r in _PASSES if role in _PASSES[r]):
            return True
        if self.users is None or role == "predict":
            return False
        return self.users.any_active(("operator", "admin") if role == "operator" else ("admin",))

    def check(self, token: str, *, address: str | None, name: str | None = None) -> Verdict:
        """Who `token` proves. `name` (the sign-in form's) must then be that account's.

        Order: a blocked address (or typed name) is refused before any token is looked at;
        then the environment tokens; then the account whose token begins so (one row),
        refused if that account is blocked, else its Argon2 hash is checked. Failures count
        under the address, the typed name, and the account the token's beginning named."""
        keys = [address_key(address)]
        named = clean_name(name or "")
        if named:
            keys.append(name_key(named))
        if (wait := self.limiter.blocked(keys)) is not None:
            return Verdict(retry_after=wait)
        env = self.env_identity(token)
        if env is not None:
            return Verdict(env)
        user = self.users.find(token) if self.users is not None else None
        if user is not None:
            keys.append(account_key(user.name))
            if (wait := self.limiter.blocked(keys)) is not None:
                return Verdict(retry_after=wait)
            if self.users.verify(user, token) and (not named or named == user.name):
                return Verdict(self._personal(user))
        return Verdict(retry_after=self.limiter.failed(keys))
