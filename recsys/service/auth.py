"""API keys: random bearer tokens, stored only as hashes (SPEC 'Safety rules').

A token is ``<key_id>.<secret>``: ``key_id`` (8 random bytes, hex) names the
key, ``secret`` is 32 random bytes from :mod:`secrets` (URL-safe base64). The
keys file (JSON, written atomically, mode 0600) stores per key its user id,
admin flag, creation time and ``sha256(token)`` -- never the token. A token is
checked by looking its ``key_id`` up and comparing the hashes with
:func:`hmac.compare_digest` (constant time). A fast hash is the right tool
here: the secret has 256 bits of entropy, so a slow password hash would add
latency to every request and no security.

    recsys keys add --user user_0 --file keys.json          # a user's token
    recsys keys add --user backend --admin --file keys.json # an admin token
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from recsys.data.ids import ID_RULE, is_valid_id

__all__ = ["KeyStore", "KeysFileError", "Principal", "hash_token"]

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


@dataclass(frozen=True)
class _Entry:
    principal: Principal
    sha256: str


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
        try:
            data = json.loads(path.read_text())
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
            entries[key_id] = _Entry(Principal(key_id, user_id, admin), digest)
        return cls(entries)

    def save(self, path: str | Path) -> Path:
        """Write the keys file atomically (temporary file + rename), mode 0600."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"keys": [
            {"key_id": e.principal.key_id, "user_id": e.principal.user_id, "admin": e.principal.admin,
             "sha256": e.sha256}
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
    def add(self, user_id: str, admin: bool = False) -> str:
        """Create a key for ``user_id``; returns the token (the only time it exists in clear)."""
        if not is_valid_id(user_id):
            raise ValueError(f"user_id {user_id!r}: expected {ID_RULE}")
        key_id = secrets.token_hex(8)
        while key_id in self._entries:
            key_id = secrets.token_hex(8)
        token = f"{key_id}.{secrets.token_urlsafe(32)}"
        self._entries[key_id] = _Entry(Principal(key_id, user_id, bool(admin)), hash_token(token))
        return token

    def authenticate(self, token: str | None) -> Principal | None:
        """The principal of ``token``, or None (no token, unknown key, wrong secret)."""
        if not token:
            return None
        key_id, dot, _ = token.partition(".")
        entry = self._entries.get(key_id) if dot else None
        if entry is None:
            hmac.compare_digest(hash_token(token), "0" * 64)  # same work for unknown keys
            return None
        return entry.principal if hmac.compare_digest(hash_token(token), entry.sha256) else None


def add_key_main(user_id: str, admin: bool, path: str | Path) -> str:
    """``recsys keys add``: append a key to ``path`` (created if missing); returns the token."""
    path = Path(path)
    store = KeyStore.load(path) if path.exists() else KeyStore()
    token = store.add(user_id, admin)
    store.save(path)
    return token
