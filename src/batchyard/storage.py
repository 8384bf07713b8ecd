"""Where files live: uploads, result files and artifacts. A local directory by default."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from batchyard.errors import InvalidRequest


def safe_relative_path(name: str) -> str:
    """Reject absolute paths, ``..`` and empty parts so a name can never leave its folder."""
    posix = PurePosixPath(name.replace("\\", "/"))
    if not name or posix.is_absolute() or any(part in ("", ".", "..") for part in posix.parts) \
            or "\x00" in name or len(name) > 255:
        raise InvalidRequest(f"invalid file name {name!r}: use a relative name without '..'", param="name")
    return str(posix)


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
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
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
        return sorted(str(p.relative_to(self.root).as_posix()) for p in base.rglob("*")
                      if p.is_file() and not p.name.endswith(".tmp"))

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self.path(prefix), ignore_errors=True)

    def delete(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)


def job_prefix(job_id: str) -> str:
    return f"jobs/{job_id}"


def artifact_prefix(job_id: str) -> str:
    return f"jobs/{job_id}/artifacts"
