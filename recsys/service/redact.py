"""Secrets never printed: URLs with their password masked, and URLs read from a file or the environment.

``redact_url("redis://user:pw@host:6379/0")`` is ``"redis://user:***@host:6379/0"``;
:func:`redact_text` masks every such URL inside a message (an exception's text
may quote one). Every log line, start-up error and answer of the service
names a store by its redacted URL. ``recsys serve`` takes the Redis URL from
``--redis-url-file FILE`` or the ``RECSYS_REDIS_URL`` environment variable as
well as ``--redis`` (which a process list shows), and hands it to its workers
in the environment, never on a command line.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

__all__ = ["read_secret_file", "redact_text", "redact_url"]

_URL_WITH_CREDENTIALS = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)([^/@\s:]*)(:[^@\s/]*)?@")


def redact_url(url: str) -> str:
    """``url`` with its password (or a lone user part, which some stores use as the password) as ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    if "@" not in parts.netloc:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    masked = f"{user}:***" if colon else "***"
    return urlunsplit((parts.scheme, f"{masked}@{host}", parts.path, parts.query, parts.fragment))


def redact_text(text: str) -> str:
    """Every ``scheme://user:password@`` in ``text`` with its password masked."""
    return _URL_WITH_CREDENTIALS.sub(lambda m: f"{m.group(1)}{m.group(2)}{':***' if m.group(3) else ''}@"
                                     if m.group(3) else f"{m.group(1)}***@", text)


def read_secret_file(path: str | Path, what: str) -> str:
    """The first line of ``path`` (a URL kept out of the command line); ``ValueError`` naming ``what`` and the file."""
    path = Path(path)
    try:
        text = path.read_text().strip()
    except OSError as err:
        raise ValueError(f"{what} file {path}: cannot read it ({err.strerror or err})") from None
    if not text:
        raise ValueError(f"{what} file {path} is empty")
    return text.splitlines()[0].strip()
