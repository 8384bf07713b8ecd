"""Texts shown to API users (error messages, tracebacks) without this server's own paths."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from pathlib import Path


class PathRedactor:
    """Replaces this server's own paths in texts shown to API users: the data dir, the Python installation
    (site-packages, the standard library), the working directory and the home directory."""

    def __init__(self, data_dir: Path) -> None:
        places: dict[str, str] = {}
        for path in sorted({p for p in sys.path if p.endswith(("site-packages", "dist-packages"))}):
            places[path] = "<site-packages>"
        for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
            places.setdefault(prefix, "<python>")
        places[str(Path(data_dir).resolve())] = "<data-dir>"
        places[str(data_dir)] = "<data-dir>"
        with contextlib.suppress(OSError):
            places.setdefault(os.getcwd(), ".")
        home = os.path.expanduser("~")
        if home not in ("/", "~"):
            places.setdefault(home, "~")
        ordered = sorted((p for p in places if len(p) > 1), key=len, reverse=True)
        self._places = places
        self._pattern = re.compile("|".join(re.escape(p) for p in ordered)) if ordered else None

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: self._places[m.group(0)], text)
