"""OpenAI's rules for uploads through ``/v1/files``, on top of the files service's (ids, owners, the size limit).

- ``purpose`` is required, one of ``assistants, batch, fine-tune, vision, user_data, evals``.
- A ``batch`` file must be named ``*.jsonl`` (400 "Invalid file format for Batch API. Must be .jsonl", as OpenAI).
  Its lines are not checked here: OpenAI accepts the file and fails the batch that uses it.
- Over the upload limit (``BATCHYARD_MAX_UPLOAD_BYTES``, 512 MiB by default like OpenAI's) the answer is
  400 "File is too large." with no code, as OpenAI answers.
- ``expires_after[anchor]=created_at`` + ``expires_after[seconds]`` (3600 to 2592000) sets ``expires_at``; a batch
  file without it expires after 30 days (OpenAI's default), other purposes never. Expired files are deleted by
  maintenance.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from batchyard.errors import InvalidRequest
from batchyard.services.files import UPLOAD_PURPOSES

MAX_FILES_LIST = 10_000
BATCH_FILE_EXPIRY_SECONDS = 30 * 24 * 3600
MIN_EXPIRY_SECONDS = 3600
MAX_EXPIRY_SECONDS = 30 * 24 * 3600
EXPIRES_AFTER_FIELDS = ("purpose", "expires_after[anchor]", "expires_after[seconds]")


def file_too_large() -> InvalidRequest:
    return InvalidRequest("File is too large.", param=None, code=None)


def check_upload(purpose: str | None, filename: str | None) -> str:
    """The upload's purpose, once it and the file's name pass OpenAI's checks."""
    if purpose is None:
        raise InvalidRequest(
            "Missing required parameter: 'purpose'.", param="purpose", code="missing_required_parameter"
        )
    if purpose not in UPLOAD_PURPOSES:
        raise InvalidRequest(
            f"Invalid value for 'purpose': {purpose[:40]!r}; supported: {', '.join(UPLOAD_PURPOSES)}.",
            param="purpose",
            code="invalid_value",
        )
    if purpose == "batch" and not (filename or "").lower().endswith(".jsonl"):
        raise InvalidRequest("Invalid file format for Batch API. Must be .jsonl", param="file", code=None)
    return purpose


def upload_expiry(purpose: str, fields: Mapping[str, str]) -> float | None:
    """When the upload expires (epoch seconds), from ``expires_after[...]`` or the purpose's default."""
    anchor = fields.get("expires_after[anchor]")
    seconds_text = fields.get("expires_after[seconds]")
    if anchor is None and seconds_text is None:
        return time.time() + BATCH_FILE_EXPIRY_SECONDS if purpose == "batch" else None
    if anchor != "created_at":
        raise InvalidRequest(
            "expires_after[anchor] must be 'created_at'.", param="expires_after.anchor", code="invalid_value"
        )
    try:
        seconds = int(seconds_text or "")
    except ValueError:
        seconds = -1
    if not MIN_EXPIRY_SECONDS <= seconds <= MAX_EXPIRY_SECONDS:
        raise InvalidRequest(
            f"expires_after[seconds] must be an integer between {MIN_EXPIRY_SECONDS} and {MAX_EXPIRY_SECONDS}.",
            param="expires_after.seconds",
            code="invalid_value",
        )
    return time.time() + seconds
