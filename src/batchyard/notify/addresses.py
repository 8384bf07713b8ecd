"""Email addresses and header text: what a job may ask to notify, and how untrusted text becomes one safe line."""

from __future__ import annotations

import re
from email.headerregistry import Address
from email.utils import parseaddr

MAX_ADDRESS_LENGTH = 254  # RFC 5321's path limit less the angle brackets
MAX_LOCAL_PART_LENGTH = 64
# Control characters, line and paragraph separators, zero-width and bidirectional controls: a header keeps none
# (CR/LF would start a new header), a body shows them as a space.
UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]+")
# RFC 5322 dot-atom text: what an unquoted local part may hold.
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_DOMAIN_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def validate_email_address(address: str) -> str:
    """``address`` as it will be used (trimmed, domain lower-cased and IDNA-encoded) if it is a plain address
    such as ``ada@example.com``; else a ``ValueError`` saying what is wrong.

    Accepted: one ``@``; a local part of letters, digits, ``.`` and ``!#$%&'*+/=?^_`{|}~-`` (no quotes, spaces or
    control characters, at most 64 characters); a domain of dotted labels (``example.com``, ``mail.example.co.uk``,
    international names too) or ``localhost``; at most 254 characters. Display names (``Ada <ada@example.com>``)
    and IP-literal domains are refused. Whether the mailbox exists only the receiving server knows."""
    if not isinstance(address, str):
        raise ValueError("an email address must be a string such as ada@example.com")
    text = address.strip()
    if not text:
        raise ValueError("an email address is empty; write one such as ada@example.com")
    shown = one_line(text, 80)
    if any(c.isspace() for c in text) or UNSAFE_CHARS.search(text):
        raise ValueError(f"{shown!r} is not an email address: it contains spaces or control characters")
    if text.count("@") != 1:
        raise ValueError(f"{shown!r} is not an email address: it must contain exactly one @, as in ada@example.com")
    local, domain = text.split("@")
    if not local or not domain:
        raise ValueError(f"{shown!r} is not an email address: it needs a name before the @ and a domain after it")
    if len(local) > MAX_LOCAL_PART_LENGTH or not _LOCAL_PART.fullmatch(local):
        raise ValueError(
            f"{shown!r} is not an email address: the part before the @ must be at most {MAX_LOCAL_PART_LENGTH} "
            "letters, digits and . ! # $ % & ' * + / = ? ^ _ ` { | } ~ - (no leading, trailing or double dots)"
        )
    ascii_domain = _ascii_domain(domain.rstrip(".").lower())
    if ascii_domain is None:
        raise ValueError(
            f"{shown!r} is not an email address: the domain must be a name with a dot such as example.com "
            "(or localhost)"
        )
    normalized = f"{local}@{ascii_domain}"
    if len(normalized) > MAX_ADDRESS_LENGTH:
        raise ValueError(f"{shown!r} is not an email address: it is longer than {MAX_ADDRESS_LENGTH} characters")
    return normalized


def _ascii_domain(domain: str) -> str | None:
    """The domain in ASCII (IDNA) if it is ``localhost`` or two or more valid labels; else None."""
    if domain == "localhost":
        return domain
    try:
        ascii_form = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = ascii_form.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels):
        return None
    if labels[-1].isdigit():  # 10.0.0.1 is an address, not a domain
        return None
    return ascii_form


def one_line(text: str, limit: int) -> str:
    """``text`` on one line (control, separator and bidi characters become spaces, runs of space one), cut to
    ``limit`` characters with an ellipsis."""
    flat = " ".join(UNSAFE_CHARS.sub(" ", text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def domain_of(sender: str) -> str:
    address = parseaddr(sender)[1]
    try:
        domain = Address(addr_spec=address).domain
    except (ValueError, IndexError):
        domain = ""
    return domain or "batchyard.invalid"
