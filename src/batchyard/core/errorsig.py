"""Error signatures: which failures are "the same error", so a job's failures can be grouped, counted, exported
and retried group by group. Pure: no I/O.

A failed item's error is ``{"type", "code", "message", ...}``. Its *signature* is a stable hash of the type, the
code and the message *normalized*: the parts that differ from one item to the next are masked, so that
``user 1234 not found at /srv/a.json`` and ``user 99 not found at /tmp/b.json`` are one group. Masked, in this
order (each mask is a ``<word>`` that no later rule matches, so normalizing twice changes nothing):

- URLs (``scheme://...``) -> ``<url>``; e-mail addresses -> ``<email>``; UUIDs -> ``<uuid>``;
- quoted strings ('...', "...", `...`; an apostrophe inside a word, as in "can't", is not a quote) -> ``<str>``;
- file paths (``/a/b``, ``./a``, ``~/a``, ``C:\\a``) -> ``<path>``; IPv4 addresses (with a port) -> ``<ip>``;
- hex numbers (``0x1f``) -> ``<hex>``, and ids: words of 8+ characters mixing letters and digits
  (``job_01a2306730abd1c6a37d``, ``a3f9c2e1``) -> ``<id>``;
- every remaining number (``42``, ``-3.5``, ``1e-9``, digits inside words: ``item42`` -> ``item<num>``) -> ``<num>``;

then runs of blanks become one space, and the text is cut to :data:`MAX_NORMALIZED_CHARS`. Masking every
number merges messages that differ only in a number (``status 404`` and ``status 500``); the error's ``code``
and ``type`` are part of the signature, so errors that say what they are (``http_404``) stay apart.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

MAX_NORMALIZED_CHARS = 300
MAX_MESSAGE_CHARS = 2000  # only the start of a long message is looked at
SIGNATURE_CHARS = 16  # hex digits of SHA-256: 64 bits, ample for the groups of one job
SIGNATURE_PATTERN = rf"^[0-9a-f]{{{SIGNATURE_CHARS}}}$"
_MAX_PASSES = 4

_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"`<>]+"), "<url>"),
    (re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"), "<email>"),
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"), "<uuid>"),
    (re.compile(r"(?<!\w)'[^'\n]*'(?!\w)|(?<!\w)\"[^\"\n]*\"(?!\w)|`[^`\n]*`"), "<str>"),
    (re.compile(r"(?<![\w.<>/])(?:~|\.{1,2})?(?:/[\w.@%+=,~-]+)+/?|\b[A-Za-z]:\\[^\s'\"`]*"), "<path>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?\b"), "<ip>"),
    (re.compile(r"\b0[xX][0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"\b(?=\w*\d)(?=\w*[A-Za-z])\w{8,}\b"), "<id>"),
    (re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"), "<num>"),
    (re.compile(r"\s+"), " "),
]


def normalize_message(message: str) -> str:
    """The message with its item-specific parts masked (see the module's docstring)."""
    text = message[:MAX_MESSAGE_CHARS]
    # Until nothing changes: a mask can make the text next to it match a rule it did not match before
    # (``1""``: the number's ``<num>`` ends in ``>``, after which ``""`` is a quoted string), and a normalized
    # message normalized again must stay the same. Masks hold no digits, quotes or slashes, so this ends fast.
    for _ in range(_MAX_PASSES):
        before = text
        for pattern, mask in _RULES:
            text = pattern.sub(mask, text)
        if text == before:
            break
    return text.strip()[:MAX_NORMALIZED_CHARS].rstrip()


def signature(error_type: str | None, code: str | None, normalized: str) -> str:
    """The group's id: hex digits of a hash of the type, the code and the normalized message."""
    text = json.dumps([error_type or "", code or "", normalized], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:SIGNATURE_CHARS]


def error_signature(error: dict[str, Any] | None) -> str:
    """The signature of a failed item's error (a dict as stored; anything else counts as an empty error)."""
    error_type, code, normalized = describe(error)
    return signature(error_type, code, normalized)


def describe(error: dict[str, Any] | None) -> tuple[str | None, str | None, str]:
    """(type, code, normalized message) of an error as stored: what its group is named by."""
    if not isinstance(error, dict):
        return None, None, ""
    error_type, code, message = error.get("type"), error.get("code"), error.get("message")
    return (
        error_type if isinstance(error_type, str) else None,
        code if isinstance(code, str) else None,
        normalize_message(message if isinstance(message, str) else "" if message is None else str(message)),
    )


def error_text_signature(error_json: str | None) -> str:
    """:func:`error_signature` of an error still as JSON text (what the store writes); unreadable text is an
    empty error rather than a crash in the middle of recording a batch of outcomes."""
    try:
        error = json.loads(error_json) if error_json else None
    except ValueError:
        error = None
    return error_signature(error)
