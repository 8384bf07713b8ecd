"""One long task per job, reporting its progress as it goes: a job of one item moves 0 -> 50 -> 100 % with the
current step in words, instead of showing 0 % until it ends.

Run it:   python examples/long_task.py
Or:       batchyard worker --app examples.long_task:app   (then `batchyard jobs watch JOB_ID` shows the steps)
"""

from __future__ import annotations

import threading
import time

from batchyard import Batchyard, ItemContext

app = Batchyard()
CHUNK = 1000


@app.handler("import_file", concurrency=2)
def import_file(item: dict[str, int], ctx: ItemContext) -> dict[str, int]:
    rows = item["rows"]
    imported = 0
    ctx.progress(0, rows, "reading the header")
    while imported < rows:
        time.sleep(0.2)  # stands in for parsing and inserting one chunk of rows
        imported = min(rows, imported + CHUNK)
        ctx.progress(imported, rows, f"imported {imported:,} of {rows:,} rows")  # cheap: call it as often as you like
    return {"rows": imported}


if __name__ == "__main__":
    job = app.submit("import_file", [{"custom_id": "orders.csv", "rows": 10_000}], description="orders import")
    runner = threading.Thread(target=job.wait)  # no worker running? wait() processes the job in-process
    runner.start()
    shown = None
    while runner.is_alive():  # what `jobs show`, the API and the dashboard see meanwhile
        view = job.refresh().to_dict()
        step = view["current"][0]["message"] if view["current"] else None
        if step and step != shown:
            print(f"{view['percent']:5.1f}%  {step}")
            shown = step
        time.sleep(0.05)
    runner.join()
    final = job.refresh()
    print(f"{final.job.status}: {next(job.results()).result['rows']:,} rows in one item")
