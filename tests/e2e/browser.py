"""Debian's Chromium for the dashboard's browser tests and the screenshot script: there, or skip with the reason
(a failure under CI=true, which installs it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("BATCHYARD_CHROMIUM", "/usr/bin/chromium"))
IN_CI = os.environ.get("CI", "").lower() == "true"


def chromium_missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium) for the browser tests"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing: pip install -e '.[test]'"
    return None


def require_chromium() -> None:
    reason = chromium_missing()
    if reason is None:
        return
    if IN_CI:
        pytest.fail(f"CI=true requires Chromium: {reason}")
    pytest.skip(reason)
