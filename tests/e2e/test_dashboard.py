"""The dashboard in a real browser: Debian's Chromium (headless, through Playwright) against a real
``batchyard serve`` subprocess. One browser for the session and one server for the module; each test opens its
own signed-in browser context, works on jobs of its own, and fails if the page logged an error to the console.

Locally these skip with the reason when /usr/bin/chromium is missing; under CI=true they fail instead.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.e2e.browser import CHROMIUM, require_chromium
from tests.e2e.test_serve import ServerProcess, free_port, running_server
from tests.waits import wait_until

pytestmark = pytest.mark.slow

if TYPE_CHECKING:  # playwright is imported where used, so collection works without it (the tests then skip)
    from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Error, Page

ACTION_BUTTONS = re.compile(r"^(Pause|Resume|Cancel|Retry failed|Delete)$")
PAGES = ["/", "/new", "/history", "/workers", "/files"]
UI_TIMEOUT_MS = 30_000


@dataclass
class Keys:
    admin: str
    alice: str
    vera: str  # alice's viewer


@dataclass
class Dashboard:
    server: ServerProcess
    keys: Keys

    @property
    def url(self) -> str:
        return self.server.url

    def api(self, key: str, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(
            method, f"{self.url}{path}", headers={"Authorization": f"Bearer {key}"}, timeout=30, **kwargs
        )
        assert response.status_code < 400, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    def submit(self, key: str, handler: str, items: list[Any], **options: Any) -> dict[str, Any]:
        job: dict[str, Any] = self.api(
            key, "POST", "/api/v1/jobs", json={"handler": handler, "items": items, **options}
        )
        return job

    def job(self, key: str, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self.api(key, "GET", f"/api/v1/jobs/{job_id}")
        return job

    def wait_finished(self, key: str, job_id: str, timeout: float = 60) -> dict[str, Any]:
        return wait_until(
            lambda: (job := self.job(key, job_id))["finished"] and job,
            what=f"job {job_id} to finish",
            timeout=timeout,
            interval=0.2,
        )


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium for this module. Not for the session: Playwright's sync API keeps an asyncio loop running in
    this thread until it stops, and later tests call asyncio.run()."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> Iterator[Dashboard]:
    root = tmp_path_factory.mktemp("dashboard")
    with running_server(root / "data", root, "--port", str(free_port())) as server:
        keys = Keys(
            admin=server.create_key("ops", "admin"),
            alice=server.create_key("alice", "member"),
            vera=server.create_key("alice", "viewer"),
        )
        yield Dashboard(server, keys)


@dataclass
class Tabs:
    """Opens signed-in pages; remembers every console error and uncaught exception of every page it opened."""

    browser: Browser
    dashboard: Dashboard
    contexts: list[BrowserContext] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def context(self, key: str | None, **options: Any) -> BrowserContext:
        context = self.browser.new_context(base_url=self.dashboard.url, **options)
        context.set_default_timeout(UI_TIMEOUT_MS)
        self.contexts.append(context)
        if key is not None:
            response = context.request.post("/api/v1/session", data={"api_key": key})
            assert response.ok, response.text()
        return context

    def page(self, key: str | None, path: str | None = "/", **options: Any) -> Page:
        page = self.context(key, **options).new_page()
        self.watch(page)
        if path is not None:
            page.goto(path)
        return page

    def watch(self, page: Page) -> None:
        def console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.errors.append(f"{page.url}: {message.text}")

        def uncaught(error: Error) -> None:
            self.errors.append(f"{page.url}: uncaught {error}")

        page.on("console", console)
        page.on("pageerror", uncaught)

    def forgive(self, url_part: str, text: str) -> None:
        """Drop the console errors an expected answer made (Chromium logs every 4xx page load as an error)."""
        self.errors = [e for e in self.errors if not (url_part in e.split(": ", 1)[0] and text in e)]

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def tabs(browser: Browser, dashboard: Dashboard) -> Iterator[Tabs]:
    opened = Tabs(browser, dashboard)
    try:
        yield opened
    finally:
        opened.close()
    assert opened.errors == [], "the browser console logged errors:\n" + "\n".join(opened.errors)


def expect(*args: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(*args)


def unique(word: str) -> str:
    return f"{word} {uuid.uuid4().hex[:8]}"


# -- signing in ---------------------------------------------------------------------------------------------------


def test_sign_in_by_the_link_serve_printed(tabs: Tabs, dashboard: Dashboard) -> None:
    page = tabs.page(None, f"/login?token={dashboard.server.login_token}")
    page.wait_for_url(f"{dashboard.url}/")
    expect(page.get_by_role("heading", name="Jobs", exact=True)).to_be_visible()
    expect(page.locator(".who-name")).to_contain_text("local")
    expect(page.get_by_role("columnheader", name="Owner")).to_be_visible()  # the local admin sees every owner
    page.goto(f"/login?token={dashboard.server.login_token}")  # spent: the sign-in page says so
    expect(page.get_by_role("alert")).to_contain_text("already used")
    tabs.forgive("/login?token=", "status of 401")  # the spent link's page is a 401, as it should be


def test_sign_in_by_key_and_sign_out(tabs: Tabs, dashboard: Dashboard) -> None:
    page = tabs.page(None, "/history")
    page.wait_for_url(re.compile(r"/login\?next=%2Fhistory$"))
    page.get_by_label("API key").fill("by_not_a_real_key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    tabs.forgive("/login?next=", "status of 401")  # Chromium logs the refused key's 401 answer
    page.get_by_label("API key").fill(dashboard.keys.alice)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{dashboard.url}/history")
    expect(page.locator(".who-name")).to_contain_text("alice")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{dashboard.url}/login")
    page.goto("/")
    page.wait_for_url(re.compile(r"/login$"))


# -- submitting and watching --------------------------------------------------------------------------------------


def test_upload_a_file_and_watch_its_job_finish_live(tabs: Tabs, dashboard: Dashboard, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"custom_id": "a", "ms": 10}\n{"custom_id": "b", "ms": \n')
    good = tmp_path / "items.jsonl"
    good.write_text("".join(json.dumps({"custom_id": f"row-{i}", "ms": 1200}) + "\n" for i in range(150)))
    page = tabs.page(dashboard.keys.alice, "/")
    page.get_by_role("link", name="New batch").first.click()
    page.wait_for_url(f"{dashboard.url}/new")

    page.locator('input[type="file"]').set_input_files(bad)
    expect(page.locator("#problems")).to_contain_text("Line 2")
    expect(page.get_by_role("button", name="Start batch")).to_be_disabled()

    page.locator('input[type="file"]').set_input_files(good)
    expect(page.locator("#preview")).to_contain_text("row-0")
    page.get_by_label("Handler").select_option("sleep")
    description = unique("watched live")
    page.get_by_label("Description").fill(description)
    page.get_by_role("button", name="Start batch").click()
    page.wait_for_url(re.compile(r"/jobs/job_[0-9a-f]+$"))
    page.evaluate("window.stillTheSamePage = true")

    expect(page.locator("#job-status")).to_contain_text("Running", timeout=UI_TIMEOUT_MS)
    expect(page.locator("#job-status")).to_contain_text("Completed", timeout=60_000)
    expect(page.locator("#big-pct")).to_have_text("100%")
    assert page.evaluate("window.stillTheSamePage") is True, "the page reloaded instead of updating live"
    expect(page.locator("#stats")).to_contain_text("150")
    expect(page.locator("#job-sub")).to_contain_text(description)


def test_an_openai_batch_from_the_new_batch_page(tabs: Tabs, dashboard: Dashboard, tmp_path: Path) -> None:
    requests = tmp_path / "requests.jsonl"
    body = {"model": "small-1", "messages": [{"role": "user", "content": "hi"}]}
    lines = [{"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": body} for i in range(3)]
    requests.write_text("".join(json.dumps(line) + "\n" for line in lines))
    page = tabs.page(dashboard.keys.alice, "/new")
    page.locator('input[type="file"]').set_input_files(requests)
    page.get_by_label("Handler").select_option("openai")
    expect(page.get_by_label("OpenAI endpoint")).to_have_value("/v1/chat/completions")
    page.get_by_label("Description").fill("chat batch")
    page.get_by_role("button", name="Start batch").click()
    page.wait_for_url(re.compile(r"/jobs/job_[0-9a-f]+$"))
    job_id = page.url.rsplit("/", 1)[1]
    details = page.locator("#props")
    expect(details).to_contain_text(f"batch_{job_id.removeprefix('job_')}")
    expect(details).to_contain_text("/v1/chat/completions")
    batch = dashboard.api(dashboard.keys.alice, "GET", f"/v1/batches/batch_{job_id.removeprefix('job_')}")
    assert batch["endpoint"] == "/v1/chat/completions" and batch["metadata"] == {"description": "chat batch"}


def test_a_bad_file_is_refused_by_line_and_nothing_runs(tabs: Tabs, dashboard: Dashboard, tmp_path: Path) -> None:
    big = tmp_path / "dupes.csv"
    big.write_text("custom_id,n\nx,1\nx,2\n")
    page = tabs.page(dashboard.keys.alice, "/new")
    page.locator('input[type="file"]').set_input_files(big)
    page.get_by_label("Handler").select_option("echo")
    before = dashboard.api(dashboard.keys.alice, "GET", "/api/v1/jobs?limit=200")["data"]
    page.get_by_role("button", name="Start batch").click()
    expect(page.locator("#problems")).to_contain_text("Line 3")
    expect(page.locator("#file-info")).to_contain_text("Nothing was started")
    tabs.forgive("/new", "status of 422")  # Chromium logs the server's 422 (the problems shown above)
    after = dashboard.api(dashboard.keys.alice, "GET", "/api/v1/jobs?limit=200")["data"]
    assert len(after) == len(before)
    assert page.url.endswith("/new")


# -- actions -------------------------------------------------------------------------------------------------------


def slow_job(dashboard: Dashboard, description: str) -> dict[str, Any]:
    return dashboard.submit(
        dashboard.keys.alice,
        "sleep",
        [{"ms": 4000} for _ in range(50)],
        concurrency=1,
        description=description,
    )


def test_cancel_one_job_from_the_list(tabs: Tabs, dashboard: Dashboard) -> None:
    job = slow_job(dashboard, unique("to cancel"))
    page = tabs.page(dashboard.keys.alice, "/")
    row = page.locator(f'tr[data-id="{job["id"]}"]')
    expect(row.get_by_role("link", name=re.compile("job_"))).to_have_attribute("href", f"/jobs/{job['id']}")
    row.get_by_role("button", name="Cancel").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Keep running")).to_be_visible()
    dialog.get_by_role("button", name="Keep running").click()
    expect(dialog).to_be_hidden()
    assert dashboard.job(dashboard.keys.alice, job["id"])["status"] in {"queued", "running"}

    row.get_by_role("button", name="Cancel").click()
    dialog.get_by_role("button", name="Cancel job").click()
    expect(page.locator(".toast")).to_contain_text("Cancelled")
    expect(row.locator(".badge")).to_have_text(re.compile("Cancell(ing|ed)"))
    assert dashboard.job(dashboard.keys.alice, job["id"])["status"] in {"cancelling", "cancelled"}


def test_pause_and_resume_a_job_from_its_page(tabs: Tabs, dashboard: Dashboard) -> None:
    job = slow_job(dashboard, unique("to pause"))
    try:
        page = tabs.page(dashboard.keys.alice, f"/jobs/{job['id']}")
        page.get_by_role("button", name="Pause", exact=True).click()
        expect(page.locator(".toast").last).to_contain_text("Paused")
        expect(page.locator("#job-status")).to_contain_text("Paused")
        expect(page.locator("#reason")).to_contain_text("Paused by alice")
        assert dashboard.job(dashboard.keys.alice, job["id"])["status"] == "paused"
        page.get_by_role("button", name="Resume", exact=True).click()
        expect(page.locator(".toast").last).to_contain_text("Resumed")
        expect(page.locator("#job-status")).to_contain_text(re.compile("Running|Queued"))
        expect(page.get_by_role("button", name="Pause", exact=True)).to_be_visible()
        expect(page.locator("#timeline")).to_contain_text("Resumed")
    finally:
        dashboard.api(dashboard.keys.alice, "POST", f"/api/v1/jobs/{job['id']}/cancel")


def test_a_job_waiting_for_quota_says_so_and_goes_on_when_it_is_raised(tabs: Tabs, dashboard: Dashboard) -> None:
    quinn = dashboard.server.create_key("quinn", "member")  # an owner of its own: the quota holds no one else
    dashboard.api(dashboard.keys.admin, "PUT", "/api/v1/quotas/quinn", json={"items": 2})
    job = dashboard.submit(quinn, "echo", [{"n": i} for i in range(5)], description=unique("over budget"))
    wait_until(
        lambda: (now := dashboard.job(quinn, job["id"]))["status"] == "paused" and now["counts"]["running"] == 0,
        what="the job to pause at the budget",
        timeout=60,
    )
    listing = tabs.page(quinn, "/")
    row = listing.locator(f'tr[data-id="{job["id"]}"]')
    expect(row.locator(".reason-note")).to_have_text("waiting for quota")
    page = tabs.page(quinn, f"/jobs/{job['id']}")
    expect(page.locator("#reason")).to_contain_text("Waiting for quota")
    expect(page.locator("#reason")).to_contain_text("quinn's items balance is spent (2 of 2)")
    expect(page.locator("#timeline")).to_contain_text("balance is spent")
    dashboard.api(dashboard.keys.admin, "PUT", "/api/v1/quotas/quinn", json={"items": 10})
    expect(page.locator("#job-status")).to_contain_text("Completed", timeout=30_000)
    expect(page.locator("#reason")).to_be_empty()


def failing_job(dashboard: Dashboard) -> dict[str, Any]:
    items = [{"custom_id": f"bad-{i}", "failure_rate": 1, "permanent": True} for i in range(5)]
    items += [{"custom_id": f"good-{i}", "failure_rate": 0} for i in range(5)]
    job = dashboard.submit(dashboard.keys.alice, "flaky", items, max_attempts=1, description=unique("half fail"))
    return dashboard.wait_finished(dashboard.keys.alice, job["id"])


def test_retry_failed_items_and_see_their_error_group(tabs: Tabs, dashboard: Dashboard) -> None:
    job = failing_job(dashboard)
    assert job["counts"]["failed"] == 5
    page = tabs.page(dashboard.keys.alice, f"/jobs/{job['id']}")
    group = page.locator(".group")
    expect(group).to_have_count(1)
    expect(group.locator(".group-count")).to_have_text("5")
    expect(group).to_contain_text("ItemError [flaky]: simulated failure")
    with page.expect_download() as exported:
        group.get_by_role("link", name="Export this group").click()
    assert sorted(json.loads(line)["key"] for line in Path(exported.value.path()).read_text().splitlines()) == [
        f"bad-{i}" for i in range(5)
    ]

    page.get_by_label("Item status").select_option("failed")
    expect(page.locator("#item-rows tr")).to_have_count(5)
    page.locator("#item-rows").get_by_role("button", name="Details").first.click()
    expect(page.locator(".item-detail")).to_contain_text("not retryable")

    group.get_by_role("button", name="Retry this group").click()
    expect(page.locator(".toast").last).to_contain_text("5 items of this group queued again")
    dashboard.wait_finished(dashboard.keys.alice, job["id"])
    page.get_by_role("button", name="Retry failed").click()
    expect(page.locator(".toast").last).to_contain_text("Failed items queued again (5 items)")
    wait_until(
        lambda: dashboard.job(dashboard.keys.alice, job["id"])["finished"],
        what="the retried items to fail again",
        timeout=60,
    )
    expect(page.locator("#timeline")).to_contain_text("Retried")


def test_download_results_from_the_job_page(tabs: Tabs, dashboard: Dashboard) -> None:
    job = failing_job(dashboard)
    page = tabs.page(dashboard.keys.alice, f"/jobs/{job['id']}")
    with page.expect_download() as results:
        page.get_by_role("link", name=re.compile("Results \\(JSONL\\)")).click()
    lines = Path(results.value.path()).read_text().splitlines()
    assert sorted(json.loads(line)["key"] for line in lines) == [f"good-{i}" for i in range(5)]
    with page.expect_download() as errors:
        page.get_by_role("link", name=re.compile("Errors \\(JSONL\\)")).click()
    assert len(Path(errors.value.path()).read_text().splitlines()) == 5
    assert results.value.suggested_filename == f"{job['id']}-results.jsonl"


def test_bulk_retry_of_every_job_matching_the_filter(tabs: Tabs, dashboard: Dashboard) -> None:
    word = uuid.uuid4().hex[:10]
    item = {"failure_rate": 1, "permanent": True}
    jobs = [
        dashboard.submit(dashboard.keys.alice, "flaky", [item], max_attempts=1, description=f"bulk {word} {n}")
        for n in range(53)
    ]
    for job in jobs:
        dashboard.wait_finished(dashboard.keys.alice, job["id"])
    page = tabs.page(dashboard.keys.alice, f"/?q=bulk+{word}")
    expect(page.locator("#job-rows tr")).to_have_count(50)
    page.get_by_role("checkbox", name="Select every job on this page").check()
    expect(page.locator("#bulk-count")).to_have_text("50 jobs selected")
    page.get_by_role("button", name="Select all jobs matching this filter").click()
    expect(page.locator("#bulk-count")).to_have_text("All 53 jobs matching this filter selected")
    page.locator("#bulkbar").get_by_role("button", name="Retry failed").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Retry failed items of 53 jobs?")
    dialog.get_by_role("button", name="Retry failed").click()
    expect(page.locator(".toast").last).to_contain_text("53 jobs queued again")
    retried = [dashboard.wait_finished(dashboard.keys.alice, job["id"]) for job in jobs]
    events = [dashboard.api(dashboard.keys.alice, "GET", f"/api/v1/jobs/{job['id']}/events")["data"] for job in retried]
    assert all(any(e["type"] == "retried" for e in timeline) for timeline in events)


# -- finding jobs ----------------------------------------------------------------------------------------------


def test_filter_and_search_live_in_the_url(tabs: Tabs, dashboard: Dashboard) -> None:
    word = uuid.uuid4().hex[:10]
    alpha = dashboard.submit(dashboard.keys.alice, "echo", [1], description=f"alpha {word}")
    beta = dashboard.submit(dashboard.keys.alice, "echo", [2], description=f"beta {word}")
    dashboard.wait_finished(dashboard.keys.alice, alpha["id"])
    dashboard.wait_finished(dashboard.keys.alice, beta["id"])
    page = tabs.page(dashboard.keys.alice, "/")
    search = page.locator('input[type="search"]')
    search.fill(f"alpha {word}")
    search.press("Enter")
    expect(page.locator("#job-rows tr")).to_have_count(1)
    expect(page.locator(f'tr[data-id="{alpha["id"]}"]')).to_be_visible()
    assert "q=alpha" in page.url
    with page.expect_download() as exported:
        page.get_by_role("link", name="Export CSV").click()
    csv_lines = Path(exported.value.path()).read_text().splitlines()
    assert len(csv_lines) == 2 and csv_lines[0].startswith("id,") and csv_lines[1].startswith(alpha["id"])
    page.get_by_role("link", name="Failed", exact=True).click()
    expect(page.locator("#jobs-empty")).to_contain_text("No jobs match")
    assert "tab=failed" in page.url
    page.get_by_role("link", name="Completed", exact=True).click()
    expect(page.locator("#job-rows tr")).to_have_count(1)
    page.reload()  # a bookmarked view comes back the same
    expect(page.locator('input[type="search"]')).to_have_value(f"alpha {word}")
    expect(page.get_by_role("link", name="Completed", exact=True)).to_have_attribute("aria-current", "page")
    expect(page.locator("#job-rows tr")).to_have_count(1)
    page.go_back()
    expect(page.locator("#job-rows tr")).to_have_count(0)


# -- roles, sizes, themes, accessibility -----------------------------------------------------------------------


def test_a_viewer_sees_no_action_buttons(tabs: Tabs, dashboard: Dashboard) -> None:
    job = failing_job(dashboard)
    page = tabs.page(dashboard.keys.vera, "/")
    expect(page.locator(f'tr[data-id="{job["id"]}"]')).to_be_visible()
    expect(page.get_by_role("button", name=ACTION_BUTTONS)).to_have_count(0)
    expect(page.get_by_role("checkbox")).to_have_count(0)
    page.goto(f"/jobs/{job['id']}")
    expect(page.locator(".group")).to_have_count(1)
    expect(page.get_by_role("button", name=ACTION_BUTTONS)).to_have_count(0)
    expect(page.get_by_role("button", name="Retry this group")).to_have_count(0)
    page.goto("/new")
    expect(page.get_by_role("button", name="Start batch")).to_be_disabled()


def no_horizontal_scroll(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_every_page_fits_a_375_px_phone(tabs: Tabs, dashboard: Dashboard) -> None:
    job = failing_job(dashboard)
    page = tabs.page(dashboard.keys.alice, None, viewport={"width": 375, "height": 740}, is_mobile=True)
    for path in [*PAGES, f"/jobs/{job['id']}"]:
        page.goto(path)
        page.wait_for_load_state("networkidle")
        assert no_horizontal_scroll(page), f"{path} scrolls sideways at 375 px"
        expect(page.get_by_role("banner").get_by_role("link", name="New batch")).to_be_visible()
    login = tabs.page(None, "/login", viewport={"width": 375, "height": 740})
    assert no_horizontal_scroll(login)


def luminance(css_color: str) -> float:
    r, g, b = (int(x) / 255 for x in re.findall(r"\d+", css_color)[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_dark_mode_follows_the_system(tabs: Tabs, dashboard: Dashboard) -> None:
    dark = tabs.page(dashboard.keys.alice, "/", color_scheme="dark")
    light = tabs.page(dashboard.keys.alice, "/", color_scheme="light")
    colors = "[getComputedStyle(document.body).backgroundColor, getComputedStyle(document.body).color]"
    dark_bg, dark_text = dark.evaluate(colors)
    light_bg, light_text = light.evaluate(colors)
    assert luminance(dark_bg) < 0.15 and luminance(dark_text) > 0.8, (dark_bg, dark_text)
    assert luminance(light_bg) > 0.85 and luminance(light_text) < 0.2, (light_bg, light_text)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_serious_accessibility_violations_on_any_page(tabs: Tabs, dashboard: Dashboard, scheme: str) -> None:
    from axe_playwright_python.sync_playwright import Axe

    job = failing_job(dashboard)
    axe = Axe()
    found: dict[str, list[str]] = {}

    def check(page: Page, name: str) -> None:
        page.wait_for_load_state("networkidle")
        violations = axe.run(page).response["violations"]
        bad = [
            f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
            for v in violations
            if v["impact"] in {"serious", "critical"}
        ]
        if bad:
            found[name] = bad

    page = tabs.page(dashboard.keys.alice, None, color_scheme=scheme)
    for path in [*PAGES, f"/jobs/{job['id']}"]:
        page.goto(path)
        check(page, path)
    page.goto(f"/jobs/{job['id']}")
    page.locator("#item-rows").get_by_role("button", name="Details").first.click()
    page.get_by_role("button", name="Delete").click()  # the open dialog too
    expect(page.get_by_role("dialog")).to_be_visible()
    check(page, "delete dialog")
    page.get_by_role("button", name="Keep job").click()
    check(tabs.page(None, "/login", color_scheme=scheme), "/login")
    assert not found, json.dumps(found, indent=2)


def test_keyboard_reaches_the_table_and_focus_is_visible(tabs: Tabs, dashboard: Dashboard) -> None:
    failing_job(dashboard)
    page = tabs.page(dashboard.keys.alice, "/")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    outline: Callable[[], str] = lambda: page.evaluate("getComputedStyle(document.activeElement).outlineStyle")  # noqa: E731
    assert outline() != "none"
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("!!document.activeElement.closest('#job-rows')"):
            break
    else:
        pytest.fail("Tab never reached the jobs table")
    assert outline() != "none"
