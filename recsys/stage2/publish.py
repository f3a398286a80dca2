"""Atomic publication of a directory of files as a new immutable version.

The protocol shared by the Stage 2 batch artifacts and the saved engine:
write everything into a private temporary directory ``root/.tmp-<pid>-<hex>``
(:func:`new_tmp_dir`), fsync the files, write the manifest last, rename the
directory to the next free version name ``<prefix>000001``, ... (atomic on
POSIX; :func:`publish`), then replace the pointer file (``LATEST`` /
``CURRENT``) atomically (:func:`point_to`). A failure at any step leaves the
pointer and every published version untouched; a killed writer's temporary
directory is swept by the next one (:func:`sweep_stale_tmp`).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
from pathlib import Path

__all__ = ["TMP_PREFIX", "fsync_dir", "fsync_file", "new_tmp_dir", "point_to", "prune", "publish", "read_pointer",
           "sha256_file", "sweep_stale_tmp", "versions"]

TMP_PREFIX = ".tmp-"


def fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def version_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(prefix)}(\d{{6,}})$")


def versions(root: Path, prefix: str) -> list[tuple[int, str]]:
    """Published versions under ``root`` as ``(number, name)``, oldest first."""
    pattern = version_pattern(prefix)
    found = [(int(m.group(1)), p.name) for p in Path(root).iterdir() if p.is_dir() and (m := pattern.match(p.name))]
    return sorted(found)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_tmp(root: Path) -> list[str]:
    """Remove temporary directories left by killed writers (their pid is gone)."""
    removed = []
    for path in Path(root).glob(f"{TMP_PREFIX}*"):
        match = re.match(rf"^{re.escape(TMP_PREFIX)}(\d+)-", path.name)
        if path.is_dir() and match and not _pid_alive(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed


def new_tmp_dir(root: Path) -> Path:
    """A fresh private temporary directory under ``root`` (created)."""
    tmp = Path(root) / f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    return tmp


def publish(tmp: Path, root: Path, prefix: str) -> str:
    """Rename ``tmp`` to the next free version name; returns that name."""
    for _ in range(1000):
        found = versions(root, prefix)
        number = (found[-1][0] + 1) if found else 1
        name = f"{prefix}{number:06d}"
        try:
            os.rename(tmp, Path(root) / name)  # fails if a concurrent writer took the name
        except OSError:
            if (Path(root) / name).exists():
                continue
            raise
        fsync_dir(Path(root))
        return name
    raise RuntimeError(f"could not find a free version name in {root}")


def point_to(root: Path, pointer: str, version: str) -> None:
    """Replace the pointer file ``root/pointer`` (holding ``version``) atomically."""
    tmp = Path(root) / f"{pointer}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.write_text(version + "\n")
    fsync_file(tmp)
    os.replace(tmp, Path(root) / pointer)
    fsync_dir(Path(root))


def read_pointer(root: Path, pointer: str) -> str:
    return (Path(root) / pointer).read_text().strip()


def prune(root: Path, prefix: str, keep: int, current: str) -> None:
    """Remove all but the ``keep`` newest versions (never ``current``)."""
    names = [name for _, name in versions(root, prefix)]
    for name in names[:-keep]:
        if name != current:
            shutil.rmtree(Path(root) / name, ignore_errors=True)
