"""Where files live: uploads, result files and artifacts. A local directory by default."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from batchyard.errors import InvalidRequest

MAX_NAME_CHARS = 1024  # a whole relative name
MAX_PART_BYTES = 255  # one folder or file name, in UTF-8 (the usual file system limit)
TEMP_SUFFIX = ".batchyard-tmp"  # files being written end so; listings skip them, names may not end so


class UnsafeName(InvalidRequest, ValueError):
    """A file name that could leave its folder, stand for the folder itself, or not be stored as given."""


def safe_relative_path(name: str) -> str:
    """``name`` unchanged if it is a plain relative path of folder and file names separated by ``/``; otherwise
    :class:`UnsafeName` (a ValueError) saying why. Refused: empty, absolute, ``.``/``..``/empty parts (so
    ``.``, ``./`` and ``a/..``, which name the folder itself, and ``a//b``), backslashes, NUL and other control
    characters, text UTF-8 cannot encode, and over-long names. Nothing is normalised: what is stored is what the
    caller named."""
    problem = _name_problem(name)
    if problem is not None:
        raise UnsafeName(f"invalid file name {name[:100]!r}: {problem}", param="name")
    return name


def _name_problem(name: str) -> str | None:
    if not isinstance(name, str) or not name:
        return "it is empty"
    if len(name) > MAX_NAME_CHARS:
        return f"longer than {MAX_NAME_CHARS} characters"
    if "\\" in name:
        return "use '/' between folders, not '\\'"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "control characters (NUL, newlines, tabs ...) are not allowed"
    if name.startswith("/"):
        return "it must be relative, not start with '/'"
    for part in name.split("/"):
        if part in ("", ".", ".."):
            return "every part between '/' must be a name: no empty parts, '.' or '..'"
        if part.endswith(TEMP_SUFFIX):
            return f"names ending in {TEMP_SUFFIX!r} are reserved for files being written"
        try:
            size = len(part.encode("utf-8"))
        except UnicodeEncodeError:
            return "it holds characters UTF-8 cannot encode (lone surrogates)"
        if size > MAX_PART_BYTES:
            return f"a folder or file name is longer than {MAX_PART_BYTES} bytes"
    return None


class LocalStorage:
    """Files under one root directory; writes are atomic (temporary file, then rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, name: str) -> Path:
        return self.root / safe_relative_path(name)

    @contextlib.contextmanager
    def open_write(self, name: str) -> Iterator[BinaryIO]:
        target = self.path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Unique per write: two threads writing one name at once must not share (and unlink) a temporary file.
        tmp = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            with open(tmp, "wb") as fh:
                yield fh
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def write_bytes(self, name: str, data: bytes) -> None:
        with self.open_write(name) as fh:
            fh.write(data)

    def open_read(self, name: str) -> BinaryIO:
        return open(self.path(name), "rb")

    def exists(self, name: str) -> bool:
        return self.path(name).is_file()

    def size(self, name: str) -> int:
        return self.path(name).stat().st_size

    def list(self, prefix: str) -> list[str]:
        """Every file under ``prefix``, as names relative to the root, sorted."""
        base = self.path(prefix)
        if not base.is_dir():
            return []
        return sorted(
            str(p.relative_to(self.root).as_posix())
            for p in base.rglob("*")
            if p.is_file() and not p.name.endswith(TEMP_SUFFIX)
        )

    def remove_stale_temp_files(self, prefix: str, older_than: float) -> int:
        """Delete files left half-written under ``prefix`` by a writer that died (kill -9 mid-write): temporary
        files untouched for ``older_than`` seconds (a live writer keeps touching its own). Returns how many."""
        base = self.path(prefix)
        if not base.is_dir():
            return 0
        removed = 0
        cutoff = time.time() - older_than
        for path in base.rglob(f"*{TEMP_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        return removed

    def usage(self, prefix: str) -> tuple[int, int]:
        """(files, bytes) under ``prefix``, what :meth:`delete_prefix` would free."""
        base = self.path(prefix)
        if not base.is_dir():
            return 0, 0
        count = size = 0
        for path in base.rglob("*"):
            with contextlib.suppress(FileNotFoundError):
                if path.is_file():
                    size += path.stat().st_size
                    count += 1
        return count, size

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self.path(prefix), ignore_errors=True)

    def delete(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)


def job_prefix(job_id: str) -> str:
    return f"jobs/{job_id}"


def artifact_prefix(job_id: str) -> str:
    return f"jobs/{job_id}/artifacts"
