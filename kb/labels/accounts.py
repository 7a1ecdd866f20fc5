"""People, roles, sign-in and sessions, and the check every write makes.

A knowledge base without an admin account is single-user: whoever runs it acts as the OS user
(or the name they give) with every right, and nobody signs in. Creating the first account (it
must be an admin) turns sign-in on: from then on every write names a signed-in :class:`Actor`
and :func:`authorize` checks that actor's role *in the database*, in the write's own
transaction, so a role change or a removed account takes effect at once.

Roles: ``viewer`` reads; ``labeller`` also writes labels, votes, comments, subgraphs and saved sets
of graphs; ``admin`` also sets label status, manages accounts and settings, adds, imports and
removes graphs and feature metadata, and reads the audit log. Passwords are hashed with argon2id;
session tokens are stored as their sha256 only, with an expiry. Failed sign-ins are counted per user
name in SQL (so every process and server sees them): after :data:`FREE_FAILURES` failures in a row
the name is locked for a time that doubles with each further failure, up to :data:`MAX_LOCK`.
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Connection, delete, func, insert, select, update

from kb import registry
from kb.errors import CircuitKBError, NotFoundError, PermissionDenied, SignInFailed
from kb.labels import audit, settings
from kb.registry import dialect_insert, now
from schema.sql import ADMIN, LABELLER, ROLES, VIEWER, sessions, sign_in_failures, users

if TYPE_CHECKING:
    from kb.core import Core

FREE_FAILURES = 5
FIRST_LOCK = timedelta(seconds=30)
MAX_LOCK = timedelta(minutes=30)
MIN_PASSWORD = 8
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,199}")
_RANK = {VIEWER: 0, LABELLER: 1, ADMIN: 2}
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the name is unknown, so that a wrong name costs as long as a wrong
    password. Made on first use: hashing costs 0.15 s, which every command would pay at import."""
    return _hasher.hash("not-a-password-of-anyone")


@dataclass(frozen=True)
class Actor:
    """Who is acting. Made by :func:`local_actor`, :func:`sign_in`, :func:`authenticate`,
    :func:`actor_for_token` or :func:`anonymous`; its role is checked again at each write."""

    name: str
    role: str
    signed_in: bool = False
    anonymous: bool = False

    def can(self, role: str) -> bool:
        """Whether this actor held ``role`` (or more) when it was made; writes check again."""
        return _RANK[self.role] >= _RANK[role]


@dataclass(frozen=True)
class Session:
    token: str = ""  # given to the client once; only its hash is stored
    actor: Actor | None = None
    expires_at: datetime | None = None

    def __repr__(self) -> str:
        return f"Session(actor={self.actor!r}, expires_at={self.expires_at!r})"


# --- the mode ---------------------------------------------------------------------------------------


def has_accounts(core: "Core") -> bool:
    """Whether sign-in is on: an admin account exists."""
    with core.engine.connect() as conn:
        return _has_admin(conn)


def _has_admin(conn: Connection) -> bool:
    return conn.execute(select(users.c.id).where(users.c.role == ADMIN).limit(1)).first() is not None


def local_actor(name: str | None = None) -> Actor:
    """The person running a single-user knowledge base: ``name`` or the OS user, with every right."""
    who = (name or _os_user()).strip()
    _check_name(who)
    return Actor(who, ADMIN)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "local"


def acting_user(core: "Core", name: str | None = None, password: str | None = None) -> Actor:
    """Who a command acts as: the local user when there are no accounts, else ``name`` signed in
    with ``password``, else an anonymous visitor when the admins allow them."""
    if not has_accounts(core):
        return local_actor(name)
    if name is None:
        return anonymous(core)
    if password is None:
        raise SignInFailed(f"a password is needed to act as {name!r} (set CIRCUITKB_PASSWORD or answer the prompt)")
    return authenticate(core, name, password)


def anonymous(core: "Core") -> Actor:
    """A visitor who did not sign in: a viewer if the setting allows them, else SignInFailed."""
    if not has_accounts(core):
        return local_actor()
    if not settings.get(core, "anonymous_read"):
        raise SignInFailed("this knowledge base needs you to sign in (circuitkb: --as NAME; an admin can allow anonymous read-only visitors with `circuitkb labels settings anonymous_read yes`)")
    return Actor("anonymous", VIEWER, anonymous=True)


def authorize(conn: Connection, actor: Actor, needed: str) -> str:
    """Check, in the caller's transaction, that ``actor`` holds ``needed`` now; returns the role.

    Raises PermissionDenied naming the role needed.
    """
    if not isinstance(actor, Actor):
        raise PermissionDenied(f"every write names who acts (an Actor); got {type(actor).__name__}")
    # one round trip: the actor's role now, and whether the knowledge base has accounts at all
    any_admin = select(users.c.id).where(users.c.role == ADMIN).exists()
    own_role = select(users.c.role).where(users.c.name == actor.name).scalar_subquery()
    has_admin, role = conn.execute(select(any_admin, own_role)).one()
    if actor.anonymous:
        role = VIEWER
    elif not has_admin:
        role = ADMIN
    else:
        if role is None or not actor.signed_in:
            raise PermissionDenied(f"{actor.name!r} is not signed in to this knowledge base; sign in with an account that has the {needed} role")
    if _RANK[role] < _RANK[needed]:
        raise PermissionDenied(f"{actor.name!r} is a {role}; this needs the {needed} role (an admin can grant it: circuitkb users set-role {actor.name} {needed})")
    return role


# --- accounts -----------------------------------------------------------------------------------------


def add_user(core: "Core", actor: Actor, name: str, password: str, role: str) -> dict[str, Any]:
    """Create an account (admins only; the first account must be an admin and turns sign-in on)."""
    _check_name(name)
    _check_role(role)
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise CircuitKBError(f"a password needs at least {MIN_PASSWORD} characters")
    digest = _hasher.hash(password)
    with core.engine.begin() as conn:
        _lock(conn)
        authorize(conn, actor, ADMIN)
        if not _has_admin(conn) and role != ADMIN:
            raise CircuitKBError("the first account must be an admin (creating it turns sign-in on): add it with --role admin")
        if conn.execute(select(users.c.id).where(users.c.name == name)).first() is not None:
            raise CircuitKBError(f"there is already an account named {name!r}")
        stamp = now()
        conn.execute(insert(users).values(name=name, password_hash=digest, role=role, created_at=stamp))
        audit.record(conn, actor.name, "user.add", name, {"role": role})
    return {"name": name, "role": role, "created_at": stamp.isoformat()}


def list_users(core: "Core") -> list[dict[str, Any]]:
    """Every account: name, role, created_at (never a password hash)."""
    with core.engine.connect() as conn:
        rows = conn.execute(select(users.c.name, users.c.role, users.c.created_at).order_by(users.c.name)).all()
    return [{"name": r.name, "role": r.role, "created_at": registry.iso(r.created_at)} for r in rows]


def set_role(core: "Core", actor: Actor, name: str, role: str) -> None:
    """Change an account's role (admins only); the last admin cannot be demoted."""
    _check_role(role)
    with core.engine.begin() as conn:
        _lock(conn)
        authorize(conn, actor, ADMIN)
        old = _role_of(conn, name)
        if old == ADMIN and role != ADMIN and _admin_count(conn) == 1:
            raise CircuitKBError(f"{name!r} is the last admin; make another admin first")
        conn.execute(update(users).where(users.c.name == name).values(role=role))
        audit.record(conn, actor.name, "user.set_role", name, {"from": old, "to": role})


def remove_user(core: "Core", actor: Actor, name: str) -> None:
    """Remove an account and its sessions (admins only). The last admin can only go when no other
    account is left, which makes the knowledge base single-user again."""
    with core.engine.begin() as conn:
        _lock(conn)
        authorize(conn, actor, ADMIN)
        old = _role_of(conn, name)
        others = conn.execute(select(func.count()).select_from(users).where(users.c.name != name)).scalar_one()
        if old == ADMIN and _admin_count(conn) == 1 and others:
            raise CircuitKBError(f"{name!r} is the last admin and other accounts exist; make another admin first")
        conn.execute(delete(users).where(users.c.name == name))
        audit.record(conn, actor.name, "user.remove", name, {"role": old})


def _role_of(conn: Connection, name: str) -> str:
    role = conn.execute(select(users.c.role).where(users.c.name == name)).scalar()
    if role is None:
        raise NotFoundError(f"no account named {name!r}; `circuitkb users list` shows them")
    return role


def _admin_count(conn: Connection) -> int:
    return conn.execute(select(func.count()).select_from(users).where(users.c.role == ADMIN)).scalar_one()


def _lock(conn: Connection) -> None:
    """Serialise account changes (the last-admin rules read, then write)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(715519)")
    else:  # the first write of a SQLite transaction takes the database's write lock
        conn.execute(update(users).where(users.c.id == -1).values(role=VIEWER))


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise CircuitKBError(f"a user name is 1-200 letters, digits or _.@+- starting with a letter or digit; got {name!r}")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise CircuitKBError(f"role must be one of {', '.join(ROLES)}; got {role!r}")


# --- signing in ---------------------------------------------------------------------------------------


def authenticate(core: "Core", name: str, password: str) -> Actor:
    """The account ``name`` if ``password`` is right; SignInFailed otherwise (rate-limited)."""
    _refuse_if_locked(core, name)
    with core.engine.connect() as conn:
        row = conn.execute(select(users.c.password_hash, users.c.role).where(users.c.name == name)).first()
    try:
        _hasher.verify(row.password_hash if row else _dummy_hash(), password)
        ok = row is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    if not ok:
        _count_failure(core, name)
        raise SignInFailed(f"wrong user name or password for {name!r}")
    _clear_failures(core, name)
    return Actor(name, row.role, signed_in=True)


def sign_in(core: "Core", name: str, password: str) -> Session:
    """Check the password and open a session that expires after the ``session_hours`` setting."""
    actor = authenticate(core, name, password)
    token = secrets.token_urlsafe(32)
    stamp = now()
    expires = stamp + timedelta(hours=settings.get(core, "session_hours"))
    with core.engine.begin() as conn:
        conn.execute(delete(sessions).where(sessions.c.expires_at < stamp))
        user_id = conn.execute(select(users.c.id).where(users.c.name == name)).scalar_one()
        conn.execute(insert(sessions).values(token_hash=_token_hash(token), user_id=user_id, created_at=stamp, expires_at=expires))
        audit.record(conn, name, "session.open", name, {})
    return Session(token, actor, expires)


def actor_for_token(core: "Core", token: str) -> Actor:
    """Who a session token belongs to; SignInFailed when it is unknown or expired."""
    with core.engine.connect() as conn:
        row = conn.execute(
            select(users.c.name, users.c.role, sessions.c.expires_at)
            .select_from(sessions.join(users, users.c.id == sessions.c.user_id))
            .where(sessions.c.token_hash == _token_hash(token))
        ).first()
    if row is None or registry.aware(row.expires_at) <= now():
        raise SignInFailed("the session has expired or was closed; sign in again")
    return Actor(row.name, row.role, signed_in=True)


def sign_out(core: "Core", token: str) -> None:
    with core.engine.begin() as conn:
        conn.execute(delete(sessions).where(sessions.c.token_hash == _token_hash(token)))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _failure_key(conn: Connection, name: str) -> str:
    """What a failed sign-in is counted and logged under: the account's name, or for a name that is
    no account's (often a password typed into the name field) a digest of it, so that neither the
    failure table nor the audit log keeps it. The lock-out treats both alike."""
    if conn.execute(select(users.c.id).where(users.c.name == name)).first() is not None:
        return name
    return "unknown name " + hashlib.sha256(name.encode("utf-8")).hexdigest()[:16]


def _refuse_if_locked(core: "Core", name: str) -> None:
    with core.engine.connect() as conn:
        key = _failure_key(conn, name)
        until = conn.execute(select(sign_in_failures.c.locked_until).where(sign_in_failures.c.name == key)).scalar()
    if until is not None and registry.aware(until) > now():
        wait = int((registry.aware(until) - now()).total_seconds()) + 1
        raise SignInFailed(f"too many failed sign-ins for {name!r}; try again in {wait} s")


def _count_failure(core: "Core", name: str) -> None:
    stamp = now()
    with core.engine.begin() as conn:
        name = _failure_key(conn, name)
        stmt = dialect_insert(conn, sign_in_failures).values(name=name, failures=1, last_failure_at=stamp)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[sign_in_failures.c.name],
                set_={"failures": sign_in_failures.c.failures + 1, "last_failure_at": stamp},
            )
        )
        failures = conn.execute(select(sign_in_failures.c.failures).where(sign_in_failures.c.name == name)).scalar_one()
        if failures >= FREE_FAILURES:
            lock = min(FIRST_LOCK * 2 ** (failures - FREE_FAILURES), MAX_LOCK)
            conn.execute(update(sign_in_failures).where(sign_in_failures.c.name == name).values(locked_until=stamp + lock))
        audit.record(conn, name, "session.failed", name, {"failures": failures})


def _clear_failures(core: "Core", name: str) -> None:
    with core.engine.begin() as conn:
        conn.execute(delete(sign_in_failures).where(sign_in_failures.c.name == name))

