"""Running a cancelled job again: an import stalls on a slow upstream, someone cancels it, the upstream comes
back, and `retry` runs the job again. Its cancelled items are queued with fresh attempts, the items that had
finished keep their results, and the new result files hold old and new results together.

Run it:   python examples/rerun_cancelled.py
From the command line the same is `batchyard jobs retry JOB_ID` (`--only-failed` for the failed items only).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from batchyard import Batchyard, ItemContext

app = Batchyard()
upstream_up = threading.Event()
run = {"number": 1}


@app.handler("import_rows", concurrency=2)
async def import_rows(item: dict[str, Any], ctx: ItemContext) -> dict[str, Any]:
    if item["row"] >= 3 and not upstream_up.is_set():
        await asyncio.sleep(3600)  # the upstream hangs; cancelling the job interrupts this
    return {"row": item["row"], "imported_in_run": run["number"]}


def first_three_done(job_id: str) -> bool:
    return app.service.get(job_id).job.succeeded >= 3


if __name__ == "__main__":
    job = app.submit("import_rows", [{"custom_id": f"row-{i}", "row": i} for i in range(6)])
    waiting = threading.Thread(target=job.wait)  # wait() runs the job in this process until it ends
    waiting.start()
    while not first_three_done(job.id):
        threading.Event().wait(0.05)
    job.cancel()  # the upstream is down: give up for now
    waiting.join()
    cancelled = job.refresh().job
    print(f"{cancelled.status}: {cancelled.succeeded} imported, {cancelled.cancelled} cancelled")

    upstream_up.set()
    run["number"] = 2
    print(f"queued again: {job.retry()} items")  # a cancelled job: its cancelled (and failed) items
    done = job.wait().job
    timeline = ", ".join(event.type for event in app.service.events(job.id))
    print(f"{done.status}: {done.succeeded} imported; timeline: {timeline}")
    for item in job.results():
        print(f"  {item.key}: run {item.result['imported_in_run']}")
