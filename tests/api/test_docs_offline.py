"""The API docs work without internet: /docs and /redoc load every asset from this server (issue 6 item 2)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from fastapi.testclient import TestClient

DOCS_PAGES = ("/docs", "/redoc")


class AssetUrls(HTMLParser):
    """The URLs a page makes the browser fetch: scripts, stylesheets, icons, images."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and name in ("src", "href", "spec-url"):
                self.urls.append(value)


def asset_urls(html: str) -> list[str]:
    parser = AssetUrls()
    parser.feed(html)
    return parser.urls


def test_the_docs_pages_reference_no_other_host(client: TestClient) -> None:
    for page in DOCS_PAGES:
        response = client.get(page)  # no key: the docs are public, as /openapi.json is
        assert response.status_code == 200, page
        assert response.headers["content-type"].startswith("text/html")
        assert not re.search(r"(https?:)?//[\w.-]+", response.text), f"{page} names another host"
        assert "https://" not in response.headers["content-security-policy"]
        assert asset_urls(response.text), page


def test_every_asset_of_the_docs_answers_from_this_server(client: TestClient) -> None:
    seen = set()
    for page in DOCS_PAGES:
        for url in asset_urls(client.get(page).text):
            assert url.startswith("/"), url
            asset = client.get(url)
            assert asset.status_code == 200, url
            assert asset.content, url
            seen.add(url.rsplit("/", 1)[-1])
    assert {"swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png"} <= seen
    assert "/openapi.json" in client.get("/docs").text  # what Swagger UI loads once it runs
    assert client.get("/openapi.json").status_code == 200
