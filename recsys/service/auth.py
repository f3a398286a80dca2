"""API keys: random bearer tokens, stored only as hashes (SPEC 'Safety rules').

A token is ``<key_id>.<secret>``: ``key_id`` (8 random bytes, hex) names the
key, ``secret`` is 32 random bytes from :mod:`secrets` (URL-safe base64). The
keys file (JSON, written atomically, mode 0600) stores per key its user id,
admin flag, creation time, optional expiry and ``sha256(token)`` -- never the token. A token is
checked by looking its ``key_id`` up and comparing the hashes with
:func:`hmac.compare_digest` (constant time). A fast hash is the right tool
here: the secret has 256 bits of entropy, so a slow password hash would add
latency to every request and no security.

    recsys keys add --user user_0 --file keys.json          # a user's token
    recsys keys add --user backend --admin --file keys.json # an admin token
    recsys keys add --user user_0 --expires-in-days 30 --file keys.json
    recsys keys list --file keys.json      # user, admin, created, expires, key id, fingerprint
    recsys keys revoke KEY_ID --file keys.json   (or --user USER: all of that user's keys)

Revocation without restart: the service holds a :class:`KeysFile`, which
looks at the file's modification time, size and inode at most once every
``check_seconds`` (1 s) and reloads it when one changed; a revoked or expired key
gets 401 from then on. A file that cannot be read any more keeps the
previous keys in force (logged once per change) instead of locking every
caller out.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from recsys.data.ids import ID_RULE, is_valid_id

__all__ = ["KeyInfo", "KeyStore", "KeysFile", "KeysFileError", "Principal", "hash_token"]

log = logging.getLogger("recsys.service")

_KEY_ID = re.compile(r"^[0-9a-f]{16}$")


class KeysFileError(ValueError):
    """The keys file is missing, not JSON, or holds a malformed entry (named)."""


@dataclass(frozen=True)
class Principal:
    """Who a valid token belongs to."""

    key_id: str
    user_id: str
    admin: bool


def hash_token(token: str) -> str:
    """``sha256(token)`` as hex: what the keys file stores."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def _parse_time(value: Any, where: str) -> datetime | None:
    """An ISO 8601 time with a zone (None stays None); :class:`KeysFileError` naming ``where`` otherwise."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise KeysFileError(f"{where} {value!r} is not an ISO 8601 time with a zone")
    return parsed.astimezone(UTC)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class _Entry:
    principal: Principal
    sha256: str
    created_at: datetime | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class KeyInfo:
    """What ``recsys keys list`` shows of a key: never the token. ``fingerprint``: the first 12 hex
    digits of the stored ``sha256(token)``, to match a token a client holds (``recsys keys list --token``)."""

    key_id: str
    user_id: str
    admin: bool
    created_at: str | None
    expires_at: str | None
    fingerprint: str
    expired: bool


class KeyStore:
    """The keys of one keys file, in memory; :meth:`authenticate` checks a token."""

    def __init__(self, entries: dict[str, _Entry] | None = None) -> None:
        self._entries: dict[str, _Entry] = dict(entries or {})

    def __len__(self) -> int:
        return len(self._entries)

    # -- reading and writing the file ----------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> KeyStore:
        """Read a keys file; a malformed entry raises :class:`KeysFileError` naming it."""
        path = Path(path)
        if not path.exists():
            raise KeysFileError(f"keys file {path} not found: create one with `recsys keys add --user USER --file {path}`")
        if not path.is_file():
            raise KeysFileError(f"keys file {path} is not a file (a directory?): name the JSON file `recsys keys add` wrote")
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError) as err:
            raise KeysFileError(f"keys file {path} cannot be read ({err})") from None
        except json.JSONDecodeError as err:
            raise KeysFileError(f"keys file {path} is not JSON ({err})") from None
        keys = data.get("keys") if isinstance(data, dict) else None
        if not isinstance(keys, list):
            raise KeysFileError(f"keys file {path}: expected an object with a 'keys' list")
        entries: dict[str, _Entry] = {}
        for i, item in enumerate(keys):
            try:
                key_id, user_id, admin, digest = item["key_id"], item["user_id"], item["admin"], item["sha256"]
            except (KeyError, TypeError):
                raise KeysFileError(f"keys file {path}: keys[{i}] needs key_id, user_id, admin, sha256") from None
            if not (isinstance(key_id, str) and _KEY_ID.fullmatch(key_id)):
                raise KeysFileError(f"keys file {path}: keys[{i}].key_id {key_id!r} is not 16 hex digits")
            if not is_valid_id(user_id):
                raise KeysFileError(f"keys file {path}: keys[{i}].user_id {user_id!r} is not a user id")
            if not isinstance(admin, bool) or not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)):
                raise KeysFileError(f"keys file {path}: keys[{i}] needs a boolean admin and a sha256 hex digest")
            if key_id in entries:
                raise KeysFileError(f"keys file {path}: key_id {key_id} appears twice")
            created = _parse_time(item.get("created_at"), f"keys file {path}: keys[{i}].created_at")
            expires = _parse_time(item.get("expires_at"), f"keys file {path}: keys[{i}].expires_at")
            entries[key_id] = _Entry(Principal(key_id, user_id, admin), digest, created, expires)
        return cls(entries)

    def save(self, path: str | Path) -> Path:
        """Write the keys file atomically (temporary file + rename), mode 0600."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"keys": [
            {"key_id": e.principal.key_id, "user_id": e.principal.user_id, "admin": e.principal.admin,
             "sha256": e.sha256, "created_at": _iso(e.created_at), "expires_at": _iso(e.expires_at)}
            for e in self._entries.values()
        ]}
        fd, tmp = tempfile.mkstemp(prefix=".keys-", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(payload, handle, indent=2)
                handle.write("\n")
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    # -- keys -------------------------------------------------------------------------
    def add(self, user_id: str, admin: bool = False, expires_in: timedelta | None = None,
            now: datetime | None = None) -> str:
        """Create a key for ``user_id`` (expiring ``expires_in`` after ``now``, if given);
        returns the token (the only time it exists in clear)."""
        if not is_valid_id(user_id):
            raise ValueError(f"user_id {user_id!r}: expected {ID_RULE}")
        if expires_in is not None and expires_in <= timedelta(0):
            raise ValueError(f"expiry {expires_in} must be positive")
        key_id = secrets.token_hex(8)
        while key_id in self._entries:
            key_id = secrets.token_hex(8)
        token = f"{key_id}.{secrets.token_urlsafe(32)}"
        created = (now or _now()).replace(microsecond=0)
        expires = None if expires_in is None else created + expires_in
        self._entries[key_id] = _Entry(Principal(key_id, user_id, bool(admin)), hash_token(token), created, expires)
        return token

    def describe(self, now: datetime | None = None) -> list[KeyInfo]:
        """Every key, oldest first (never a token)."""
        now = now or _now()
        entries = sorted(self._entries.values(), key=lambda e: (e.created_at or datetime.min.replace(tzinfo=UTC)))
        return [KeyInfo(e.principal.key_id, e.principal.user_id, e.principal.admin, _iso(e.created_at),
                        _iso(e.expires_at), e.sha256[:12], e.expires_at is not None and e.expires_at <= now)
                for e in entries]

    def revoke(self, key_id: str | None = None, user_id: str | None = None) -> list[str]:
        """Remove the key ``key_id`` (or a unique prefix of at least 4 digits), or every key of ``user_id``;
        returns the key ids removed. ``ValueError`` when nothing or more than one key matches a prefix."""
        if (key_id is None) == (user_id is None):
            raise ValueError("name a key id or a user, not both")
        if key_id is not None:
            if len(key_id) < 4:
                raise ValueError(f"key id {key_id!r}: give at least 4 of its 16 hex digits")
            found = [k for k in self._entries if k.startswith(key_id.lower())]
            if len(found) > 1:
                raise ValueError(f"key id {key_id!r} names {len(found)} keys; give more digits")
        else:
            found = [k for k, e in self._entries.items() if e.principal.user_id == user_id]
        if not found:
            raise ValueError(f"no key {'with id ' + repr(key_id) if key_id else 'of user ' + repr(user_id)}")
        for k in found:
            del self._entries[k]
        return found

    def authenticate(self, token: str | None, now: datetime | None = None) -> Principal | None:
        """The principal of ``token``, or None (no token, unknown key, wrong secret, expired)."""
        if not token:
            return None
        key_id, dot, _ = token.partition(".")
        entry = self._entries.get(key_id) if dot else None
        if entry is None:
            hmac.compare_digest(hash_token(token), "0" * 64)  # same work for unknown keys
            return None
        if not hmac.compare_digest(hash_token(token), entry.sha256):
            return None
        if entry.expires_at is not None and entry.expires_at <= (now or _now()):
            return None
        return entry.principal


class KeysFile:
    """The keys of a keys file, reloaded when the file changes (checked at most every ``check_seconds``)."""

    def __init__(self, path: str | Path, check_seconds: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self.check_seconds, self.clock = check_seconds, clock
        self._store = KeyStore.load(self.path)
        self._stamp = self._file_stamp()
        self._checked = clock()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.current())

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def current(self) -> KeyStore:
        """The keys in force: reloaded if the file changed since the last look (at most one look a period)."""
        now = self.clock()
        if now - self._checked < self.check_seconds:
            return self._store
        with self._lock:
            self._checked = now
            stamp = self._file_stamp()
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._store = KeyStore.load(self.path)
                    log.info("keys file %s reloaded: %d keys", self.path, len(self._store))
                except KeysFileError as err:
                    log.error("%s; the previous keys stay in force", err)
        return self._store

    def authenticate(self, token: str | None) -> Principal | None:
        return self.current().authenticate(token)


def add_key_main(user_id: str, admin: bool, path: str | Path, expires_in: timedelta | None = None) -> str:
    """``recsys keys add``: append a key to ``path`` (created if missing); returns the token."""
    path = Path(path)
    store = KeyStore.load(path) if path.exists() else KeyStore()
    token = store.add(user_id, admin, expires_in)
    store.save(path)
    return token
