"""The `users` table: personal accounts of operators and admins, each with its own token.

A token is `secrets.token_urlsafe(32)` (256 random bits), shown once when the account is
made. The store keeps its first characters (`token_lookup`, a unique index: verification
reads one row, never scans the accounts) and an Argon2id hash of the whole token
(argon2-cffi). Revoking an account ends its console sessions in the same transaction.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal, get_args

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import BigInteger, DateTime, Engine, Integer, String, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from cur_ml.errors import AccountError
from cur_ml.settings import REGION_CODE
from cur_ml.store.db import Base
from cur_ml.store.sessions import SessionRecord

__all__ = [
    "ROLES",
    "Role",
    "User",
    "UserRepository",
    "account_regions",
    "clean_name",
    "region_list",
]

Role = Literal["operator", "admin"]
ROLES: tuple[str, ...] = get_args(Role)
_ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER keys only
#: Characters of a token kept in the clear to find its account (48 of its 256 bits).
LOOKUP_CHARS = 8
_NAME_JUNK = re.compile(r"[\x00-\x1f\x7f]+")
# The token is random, not a password: the hash need not be slow to resist guessing (256
# bits are out of reach anyway), only one-way. OWASP's smallest Argon2id setting (19 MiB,
# 2 passes) keeps a sign-in near 20 ms; verified tokens are remembered in process below.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def clean_name(name: str) -> str:
    """A person's name as the corrections log keeps it: one line, single spaces, 64 chars."""
    return " ".join(_NAME_JUNK.sub(" ", name).split())[:64]


def account_regions(stored: str | None, default: str) -> tuple[str, ...]:
    """The regions of an account as `users.regions` keeps them (NULL: `default`, the
    deployment's default region: accounts made before regions work there)."""
    return tuple(code for code in (stored or default).split(",") if code)


def region_list(regions: Sequence[str]) -> str:
    """Region codes as `users.regions` keeps them (comma-separated, each once); an empty list
    or a code that is not one is an `AccountError` naming it."""
    codes = list(dict.fromkeys(code.strip() for code in regions))
    if not codes:
        raise AccountError("an account needs at least one region")
    bad = [code for code in codes if not REGION_CODE.match(code)]
    if bad:
        raise AccountError(f"{bad[0]!r} is not a region code (like spb or krd)")
    text = ",".join(codes)
    if len(text) > 256:
        raise AccountError("too many regions for one account (256 characters of codes at most)")
    return text


class User(Base):
    """A personal account: a name, a role, the hash of its token; `revoked_at` ends it."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    token_lookup: Mapped[str] = mapped_column(String(16), unique=True)
    token_hash: Mapped[str] = mapped_column(String(256))
    #: Comma-separated region codes the account works in (None: the default region only).
    regions: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def region_codes(self, default: str) -> tuple[str, ...]:
        """The regions the account works in (`default`: the deployment's default region, the
        region of accounts made before regions)."""
        return account_regions(self.regions, default)


class _Verified:
    """Tokens that verified recently (sha256 of the token → the hash it matched), so a bearer
    caller pays Argon2 once, not per request. The account row is still read every time:
    revoking, or a new token, takes effect at once."""

    def __init__(self, size: int = 1024) -> None:
        self._seen: OrderedDict[bytes, str] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def matches(self, token: str, token_hash: str) -> bool:
        key = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        with self._lock:
            known = self._seen.get(key)
        if known is not None and secrets.compare_digest(known, token_hash):
            return True
        try:
            _HASHER.verify(token_hash, token)
        except (VerificationError, InvalidHashError):
            return False
        with self._lock:
            self._seen[key] = token_hash
            if len(self._seen) > self._size:
                self._seen.popitem(last=False)
        return True


class UserRepository:
    """Add, list, revoke and authenticate accounts; every call is one short transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._verified = _Verified()

    def add(self, name: str, role: str, regions: Sequence[str] | None = None) -> tuple[User, str]:
        """A new account and its token (the only time the token exists in the clear).
        `regions`: the codes it works in (None: the deployment's default region, kept as
        NULL; the caller checks that the deployment serves them)."""
        clean = clean_name(name)
        if not clean:
            raise AccountError("an account needs a name (letters, not only spaces)")
        if role not in ROLES:
            raise AccountError(f"unknown role {role!r}: expected {' or '.join(ROLES)}")
        codes = region_list(regions) if regions is not None else None
        for _attempt in range(5):  # another token when its lookup characters are taken
            token = secrets.token_urlsafe(32)
            user = User(
                name=clean,
                role=role,
                token_lookup=token[:LOOKUP_CHARS],
                token_hash=_HASHER.hash(token),
                regions=codes,
                created_at=datetime.now(UTC),
            )
            try:
                with Session(self.engine, expire_on_commit=False) as session, session.begin():
                    if session.scalar(select(User.id).where(User.name == clean)) is not None:
                        raise AccountError(
                            f"an account named {clean!r} exists already (names are kept after "
                            "revocation: the corrections log refers to them)"
                        )
                    session.add(user)
                return user, token
            except IntegrityError:
                if self.get(clean) is not None:  # added by someone else just now
                    raise AccountError(f"an account named {clean!r} exists already") from None
        raise AccountError("no free token could be made; try again")  # pragma: no cover

    def get(self, name: str) -> User | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.scalar(select(User).where(User.name == clean_name(name)))

    def all(self) -> list[User]:
        """Every account, revoked ones too, in the order they were made."""
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(select(User).order_by(User.id)))

    def any_active(self, roles: tuple[str, ...] = ROLES) -> bool:
        """Whether some account of one of `roles` can sign in."""
        q = select(User.id).where(User.revoked_at.is_(None), User.role.in_(roles)).limit(1)
        with self.engine.connect() as conn:
            return conn.execute(q).first() is not None

    def set_regions(self, name: str, regions: Sequence[str]) -> User:
        """Change the regions an account works in; its sessions see the change at their next
        page (they read the account's regions on every request)."""
        codes = region_list(regions)
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            user = session.scalar(select(User).where(User.name == clean_name(name)))
            if user is None:
                shown = clean_name(name)
                raise AccountError(f"no account named {shown!r} (see: cur-ml users list)")
            user.regions = codes
            return user

    def revoke(self, name: str) -> User:
        """End an account and every console session it has, at once."""
        now = datetime.now(UTC)
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            user = session.scalar(select(User).where(User.name == clean_name(name)))
            if user is None:
                shown = clean_name(name)
                raise AccountError(f"no account named {shown!r} (see: cur-ml users list)")
            if user.revoked_at is None:
                user.revoked_at = now
            session.execute(
                update(SessionRecord)
                .where(SessionRecord.user_id == user.id, SessionRecord.ended_at.is_(None))
                .values(ended_at=now)
            )
            return user

    def find(self, token: str) -> User | None:
        """The account a token claims to be (by its first characters: one indexed row), not
        yet verified; revoked accounts too (their failures still count against them)."""
        token = token.strip()
        if not LOOKUP_CHARS <= len(token) <= 256:
            return None
        with Session(self.engine, expire_on_commit=False) as session:
            return session.scalar(select(User).where(User.token_lookup == token[:LOOKUP_CHARS]))

    def verify(self, user: User, token: str) -> bool:
        """Whether `token` is the active `user`'s (Argon2id, or remembered from before)."""
        return user.revoked_at is None and self._verified.matches(token.strip(), user.token_hash)

    def check(self, token: str) -> User | None:
        """The active account whose token this is, or None."""
        user = self.find(token)
        return user if user is not None and self.verify(user, token) else None
