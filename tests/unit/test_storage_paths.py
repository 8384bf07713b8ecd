"""Names given to storage (artifact names come from handlers) can never leave, replace or alias their folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchyard.data.blobs import LocalStorage, artifact_prefix, safe_relative_path
from batchyard.errors import InvalidRequest

UNSAFE = [
    "",
    ".",
    "./",
    "./.",
    "..",
    "../x",
    "a/..",
    "a/../b",
    "a/./b",
    "a//b",
    "a/",
    "/",
    "/etc/passwd",
    "//x",
    "a\\b",
    "..\\x",
    "\\x",
    "C:\\x",
    "a\x00b",
    "\x00",
    "x" * 256,
    "a/" + "y" * 256,
    "é" * 128,
    "/".join(["d"] * 600),
    "a\nb",
    "a\rb",
    "tab\there",
    "\x7f",
    "\ud800",
    "a/\udcff",
    "x.batchyard-tmp",
    "d.batchyard-tmp/x",
]
SAFE = ["a", "a.txt", "dir/a.txt", "a/b/c.png", ".hidden", "..a", "a..", "x" * 255, "é" * 127, "名前.txt", "sp ace.txt"]


@pytest.mark.parametrize("name", UNSAFE)
def test_an_unsafe_name_is_a_clear_value_error(name: str) -> None:
    with pytest.raises(ValueError, match="invalid file name") as caught:
        safe_relative_path(name)
    assert isinstance(caught.value, InvalidRequest) and caught.value.param == "name"
    assert name[:20] in str(caught.value) or "\\" in repr(name[:20])  # the name is shown (escaped)


@pytest.mark.parametrize("name", SAFE)
def test_a_plain_relative_name_is_kept(name: str) -> None:
    assert safe_relative_path(name) == name


def test_an_artifact_named_dot_cannot_replace_the_artifact_folder(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    prefix = artifact_prefix("job_1")
    storage.write_bytes(f"{prefix}/first.txt", b"1")
    for name in (".", "./", "a/..", ""):
        with pytest.raises(ValueError):
            storage.write_bytes(f"{prefix}/{name}", b"oops")
    storage.write_bytes(f"{prefix}/second.txt", b"2")  # the folder is still a folder
    assert storage.list(prefix) == [f"{prefix}/first.txt", f"{prefix}/second.txt"]
    assert (tmp_path / prefix).is_dir()


def test_a_file_named_like_a_temporary_one_is_still_listed(tmp_path: Path) -> None:
    """Only the storage's own half-written files are hidden from listings (and so from artifacts.zip)."""
    storage = LocalStorage(tmp_path)
    prefix = artifact_prefix("job_1")
    for name in ("notes.tmp", ".cache.tmp", "a.1.tmp"):
        storage.write_bytes(f"{prefix}/{name}", b"x")
    assert storage.list(prefix) == sorted(f"{prefix}/{n}" for n in (".cache.tmp", "a.1.tmp", "notes.tmp"))


def test_writes_of_one_name_at_once_do_not_trip_over_each_other(tmp_path: Path) -> None:
    import threading

    storage = LocalStorage(tmp_path)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for _ in range(50):
                storage.write_bytes("jobs/job_1/artifacts/same.txt", str(n).encode() * 1000)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    content = (tmp_path / "jobs/job_1/artifacts/same.txt").read_bytes()
    assert len(content) == 1000 and len(set(content)) == 1
    assert storage.list("jobs/job_1/artifacts") == ["jobs/job_1/artifacts/same.txt"]
