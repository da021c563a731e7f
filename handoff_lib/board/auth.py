"""Board users: a YAML file the site names (`board: users: board_users.yaml`), one entry per person with
a display name, a role and a password hash (scrypt from Python's standard library; no password is ever
stored or logged in clear). `handoff board users add|passwd|remove|list` edits it; the server re-reads
it when it changes, so a removed user or a changed role takes effect on their next page load, and a
changed password signs the user out everywhere.

    users:
      jdiaz: {name: J. Diaz, role: ops, password: "scrypt$16384$8$1$<salt>$<hash>"}
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from handoff_lib.errors import HandoffError, SettingsError

from .roles import ROLES

SCRYPT = {"n": 2**14, "r": 8, "p": 1}  # ~16 MB and ~50 ms per check here: cheap for a sign-in, dear for guessing
NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}\Z")
MIN_PASSWORD = 8
HEADER = ("# handoff board users: edit with `handoff board users add|passwd|remove|list`.\n"
          "# Passwords are scrypt hashes; roles: " + ", ".join(ROLES) + " (docs/board.md).\n")


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def hash_password(password: str) -> str:
    """'scrypt$n$r$p$salt$hash' for a password (random 16-byte salt)."""
    if len(password) < MIN_PASSWORD:
        raise HandoffError(f"the password is too short: at least {MIN_PASSWORD} characters")
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **SCRYPT)
    return f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    """Whether `password` matches the stored hash (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(base64.b64decode(digest)), maxmem=256 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


@dataclass(frozen=True)
class User:
    user: str  # the name to sign in with
    name: str  # shown on the board and in the acknowledgement log
    role: str
    password: str  # the hash

    @property
    def stamp(self) -> str:
        """Changes when the password changes: a sign-in cookie carries it, so a new password signs out."""
        return hashlib.sha256(self.password.encode()).hexdigest()[:16]


class UsersFile:
    """The users file, re-read when it changes on disk."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._mtime: float | None = None
        self._users: dict[str, User] = {}

    def users(self) -> dict[str, User]:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            raise SettingsError(f"{self.path}: no board users file (add a user: handoff board users add NAME --role ops)") from None
        if mtime != self._mtime:
            self._users = self._read()
            self._mtime = mtime
        return self._users

    def get(self, user: str) -> User | None:
        return self.users().get(user)

    def _read(self) -> dict[str, User]:
        try:
            raw = yaml.safe_load(self.path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise SettingsError(f"{self.path}: cannot read the board users file ({exc})") from None
        entries = raw.get("users") if isinstance(raw, dict) else None
        if entries is None:
            entries = {}
        if not isinstance(entries, dict):
            raise SettingsError(f"{self.path}: expected 'users:' with one entry per user name")
        out = {}
        for user, e in entries.items():
            user = str(user)
            if not NAME.match(user):
                raise SettingsError(f"{self.path}: user name '{user}' may only hold letters, digits and . _ @ - (at most 64)")
            if not isinstance(e, dict) or not e.get("password") or not e.get("role"):
                raise SettingsError(f"{self.path}: user '{user}' needs a role and a password (handoff board users passwd {user})")
            if e["role"] not in ROLES:
                raise SettingsError(f"{self.path}: user '{user}': role '{e['role']}' is not one of {', '.join(ROLES)}")
            out[user] = User(user, str(e.get("name") or user), str(e["role"]), str(e["password"]))
        return out

    def write(self, users: dict[str, User]) -> None:
        """Replace the file (readable by its owner only), atomically."""
        body = {"users": {u.user: {"name": u.name, "role": u.role, "password": u.password} for u in users.values()}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        part = self.path.with_name(self.path.name + ".part")
        part.write_text(HEADER + yaml.safe_dump(body, sort_keys=True, allow_unicode=True), encoding="utf-8")
        os.chmod(part, 0o600)
        part.replace(self.path)

    def _current(self) -> dict[str, User]:
        return dict(self.users()) if self.path.exists() else {}

    def add(self, user: str, role: str, password: str, name: str = "", replace: bool = False) -> User:
        if not NAME.match(user):
            raise HandoffError(f"user name '{user}': letters, digits and . _ @ - only (at most 64)")
        if role not in ROLES:
            raise HandoffError(f"role '{role}' is not one of {', '.join(ROLES)}")
        users = self._current()
        if user in users and not replace:
            raise HandoffError(f"{self.path}: user '{user}' exists (change the password with: handoff board users passwd {user})")
        users[user] = User(user, " ".join((name or user).split())[:80], role, hash_password(password))
        self.write(users)
        return users[user]

    def set_password(self, user: str, password: str) -> None:
        users = self._current()
        if user not in users:
            raise HandoffError(f"{self.path}: no user '{user}'")
        u = users[user]
        users[user] = User(u.user, u.name, u.role, hash_password(password))
        self.write(users)

    def set_role(self, user: str, role: str) -> None:
        users = self._current()
        if user not in users:
            raise HandoffError(f"{self.path}: no user '{user}'")
        if role not in ROLES:
            raise HandoffError(f"role '{role}' is not one of {', '.join(ROLES)}")
        u = users[user]
        users[user] = User(u.user, u.name, role, u.password)
        self.write(users)

    def remove(self, user: str) -> None:
        users = self._current()
        if users.pop(user, None) is None:
            raise HandoffError(f"{self.path}: no user '{user}'")
        self.write(users)

    def verify(self, user: str, password: str) -> User | None:
        """The user when the password is theirs, else None (the same answer for an unknown user)."""
        u = self.get(user)
        if u is None:
            check_password(password, DUMMY)  # the same work as for a known user: no timing hint
            return None
        return u if check_password(password, u.password) else None


DUMMY = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="


def users_file(settings, override: str = "") -> Path | None:
    """The users file: `override`, else the site file's `board: users:` (relative to the site file), else None."""
    from .data import board_settings

    if override:
        return Path(override).expanduser().resolve()
    value = board_settings(settings).get("users")
    if not value:
        return None
    if not isinstance(value, str):
        raise SettingsError(f"{settings.where('board', 'users')}: board.users must be a file name")
    return (settings.path.parent / value).resolve()
