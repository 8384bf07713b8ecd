"""Names given to storage (artifact names come from handlers) can never leave, replace or alias their folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchyard.errors import InvalidRequest
from batchyard.storage import LocalStorage, artifact_prefix, safe_relative_path

UNSAFE = [
    "", ".", "./", "./.", "..", "../x", "a/..", "a/../b", "a/./b", "a//b", "a/", "/", "/etc/passwd", "//x",
    "a\\b", "..\\x", "\\x", "C:\\x", "a\x00b", "\x00", "x" * 256, "a/" + "y" * 256, "é" * 128, "/".join(["d"] * 600),
    "a\nb", "a\rb", "tab\there", "\x7f", "\ud800", "a/\udcff",
]
SAFE = ["a", "a.txt", "dir/a.txt", "a/b/c.png", ".hidden", "..a", "a..", "x" * 255, "é" * 127, "名前.txt",
        "sp ace.txt"]


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
