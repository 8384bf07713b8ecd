"""The dashboard's pages over HTTP (the browser tests in tests/e2e/test_dashboard.py drive them in Chromium):
who may see which page, what each embeds for its first paint, and that the assets ship in the package."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

from batchyard import Batchyard
from batchyard.dashboard.pages import allowed_actions, safe_next
from tests.api.conftest import Keys

PAGES = ["/", "/new", "/history", "/workers", "/files", "/jobs/job_missing"]


def sign_in(client: TestClient, key: str) -> None:
    response = client.post("/api/v1/session", json={"api_key": key})
    assert response.status_code == 200, response.text


def boot(html: str) -> dict[str, object]:
    found = re.search(r'<script type="application/json" id="boot">(.*?)</script>', html, re.S)
    assert found, "the page embeds no boot data"
    data: dict[str, object] = json.loads(found[1])
    return data


@pytest.mark.parametrize("path", PAGES)
def test_every_page_sends_a_signed_out_browser_to_sign_in(client: TestClient, path: str) -> None:
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")
    if path != "/":
        assert response.headers["location"] == f"/login?next={path.replace('/', '%2F')}"


def test_sign_in_page_is_a_styled_form(client: TestClient) -> None:
    page = client.get("/login")
    assert page.status_code == 200
    assert '<form id="login-form"' in page.text and 'type="password"' in page.text
    css = re.search(r'href="(/static/v-[0-9a-f]{12}/app\.css)"', page.text)
    script = re.search(r'src="(/static/v-[0-9a-f]{12}/js/login\.js)"', page.text)
    assert css and script, "the page loads its assets from the versioned static path"
    versioned = client.get(css[1])
    assert versioned.status_code == 200 and "immutable" in versioned.headers["cache-control"]
    module = client.get(script[1])
    assert module.headers["content-type"].startswith("text/javascript") and "import" in module.text
    plain = client.get("/static/js/core.js")  # what a module import resolves to without the version: revalidated
    assert plain.status_code == 200 and plain.headers["cache-control"] == "no-cache"
    assert client.get("/static/v-000000000000/js/../../../pages.py").status_code == 404


def test_a_signed_in_user_skips_the_sign_in_page(client: TestClient, keys: Keys) -> None:
    sign_in(client, keys.alice)
    response = client.get("/login?next=/history", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/history"


def test_sign_in_never_sends_you_to_another_site() -> None:
    for bad in ("https://evil.example", "//evil.example", "/\\evil.example", "", None, "jobs"):
        assert safe_next(bad) == "/"
    assert safe_next("/jobs/job_1?x=1") == "/jobs/job_1?x=1"


def test_a_bad_login_link_shows_the_sign_in_page_with_the_reason(client: TestClient) -> None:
    page = client.get("/login?token=nope")
    assert page.status_code == 401
    assert "already used" in page.text and '<form id="login-form"' in page.text


def test_pages_embed_what_their_first_paint_needs(client: TestClient, app: Batchyard, keys: Keys) -> None:
    job = app.submit("echo", [{"n": i} for i in range(3)], owner="alice", description="<b>hello</b>")
    other = app.submit("echo", [1], owner="bob")
    sign_in(client, keys.alice)
    home = client.get("/?tab=active&q=hel")
    assert home.status_code == 200
    data = boot(home.text)
    assert data["owner"] == "alice" and data["can_write"] is True and data["is_admin"] is False
    assert data["filters"] == {"tab": "active", "q": "hel", "owner": None, "handler": None, "sort": "-created_at"}
    assert [j["id"] for j in data["jobs"]["data"]] == [job.id]  # type: ignore[index]
    assert "<b>hello</b>" not in home.text  # the JSON is escaped for HTML
    assert 'type="search"' in home.text and 'name="csrf-token"' in home.text and 'href="/new"' in home.text

    page = client.get(f"/jobs/{job.id}")
    assert page.status_code == 200
    embedded = boot(page.text)
    assert embedded["job"]["id"] == job.id  # type: ignore[index]
    assert len(embedded["items"]["data"]) == 3  # type: ignore[index]
    assert client.get(f"/jobs/{other.id}").status_code == 404  # another owner's job is not there at all

    new = client.get("/new")
    assert 'type="file"' in new.text and "<select" in new.text and '<option value="echo">' in new.text


def test_a_viewer_gets_no_write_rights_in_the_page(client: TestClient, keys: Keys) -> None:
    sign_in(client, keys.vera)
    data = boot(client.get("/").text)
    assert data["role"] == "viewer" and data["can_write"] is False
    assert 'id="select-page"' not in client.get("/").text


def test_an_admin_sees_the_owner_column(client: TestClient, keys: Keys) -> None:
    sign_in(client, keys.root)
    page = client.get("/?owner=bob")
    assert boot(page.text)["is_admin"] is True and ">Owner</th>" in page.text


def test_a_malformed_cursor_is_an_error_page_not_a_crash(client: TestClient, keys: Keys) -> None:
    sign_in(client, keys.alice)
    page = client.get("/?cursor=garbage")
    assert page.status_code == 400 and "Back to all jobs" in page.text


def test_buttons_follow_the_lifecycle() -> None:
    allowed = allowed_actions()
    assert allowed["running"] == sorted(allowed["running"], key=["pause", "cancel", "retry"].index)
    assert set(allowed["paused"]) == {"resume", "cancel", "retry"}
    assert set(allowed["completed"]) == {"retry", "delete"}
    assert allowed["cancelling"] == [] and allowed["finalizing"] == []
