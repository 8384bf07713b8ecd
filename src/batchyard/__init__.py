"""Batchyard: self-hosted batch processing for Python.

The names below are imported on first use (PEP 562), so ``batchyard --version`` and other quick commands do not
pay for the database layer, the worker and settings validation they never touch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from batchyard.app import Batchyard, Job
    from batchyard.context import ItemContext
    from batchyard.errors import (
        BatchyardError,
        InputInvalid,
        ItemCancelled,
        ItemError,
        PauseJob,
        PermanentError,
        SkipItem,
    )
    from batchyard.settings import Settings

__version__ = "0.1.0"

_EXPORTS = {
    "Batchyard": "batchyard.app",
    "Job": "batchyard.app",
    "ItemContext": "batchyard.context",
    "BatchyardError": "batchyard.errors",
    "InputInvalid": "batchyard.errors",
    "ItemCancelled": "batchyard.errors",
    "ItemError": "batchyard.errors",
    "PauseJob": "batchyard.errors",
    "PermanentError": "batchyard.errors",
    "SkipItem": "batchyard.errors",
    "Settings": "batchyard.settings",
}
__all__ = [
    "Batchyard",
    "BatchyardError",
    "InputInvalid",
    "ItemCancelled",
    "ItemContext",
    "ItemError",
    "Job",
    "PauseJob",
    "PermanentError",
    "Settings",
    "SkipItem",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'batchyard' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
