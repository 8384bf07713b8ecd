"""A worker resource shared by items: something slow to start (a headless browser, a model, a connection pool)
made once per worker process, used by every item, and cleaned up when the worker stops.

Run it:   python examples/shared_resource.py
Or as a worker: `batchyard worker --app examples.shared_resource:app`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from batchyard import Batchyard, ItemContext

app = Batchyard()
starts: list[float] = []


class Renderer:
    """Stands in for a headless browser: slow to launch, then cheap per page. Thread-safe (sync handlers run in
    threads and share it)."""

    def __init__(self) -> None:
        time.sleep(0.5)  # launching takes a while: once per worker, not once per item
        self.pages = 0
        self._lock = threading.Lock()

    def render(self, name: str) -> str:
        with self._lock:
            self.pages += 1
        return f"<h1>Hello, {name}!</h1>"


@app.resource("renderer")
def renderer() -> Iterator[Renderer]:
    starts.append(time.monotonic())
    browser = Renderer()
    yield browser  # handlers get this as ctx.resources["renderer"]
    print(f"renderer closed after {browser.pages} pages")  # runs when the worker stops


@app.handler("page", concurrency=8, resources=["renderer"])
def page(item: dict[str, str], ctx: ItemContext) -> dict[str, int]:
    html = ctx.resources["renderer"].render(item["name"])
    ctx.save_artifact(f"{ctx.key}.html", html)
    return {"bytes": len(html)}


if __name__ == "__main__":
    recipients = [{"custom_id": f"recipient-{i}", "name": f"reader {i}"} for i in range(100)]
    view = app.submit("page", recipients, description="welcome pages").wait()
    print(f"{view.job.status}: {view.job.succeeded}/{view.job.total} pages, renderer started {len(starts)} time(s)")
