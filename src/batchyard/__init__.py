"""Batchyard: self-hosted batch processing for Python."""

from batchyard.app import Batchyard, Job
from batchyard.context import ItemContext
from batchyard.errors import BatchyardError, InputInvalid, ItemCancelled, ItemError, PermanentError
from batchyard.settings import Settings

__all__ = [
    "Batchyard",
    "BatchyardError",
    "InputInvalid",
    "ItemCancelled",
    "ItemContext",
    "ItemError",
    "Job",
    "PermanentError",
    "Settings",
]
__version__ = "0.1.0"
