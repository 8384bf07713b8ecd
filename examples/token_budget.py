"""Pausing by the app's own rules: a content app checks its user's token balance (kept in the app's own
database, here a SQLite file) before each article, and pauses the job with a message when it runs short. The
user tops up, the job resumes and finishes. Keywords already written are skipped, not failed.

Run it:   python examples/token_budget.py
Or as a worker: `batchyard worker --app examples.token_budget:app`.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from batchyard import Batchyard, ItemContext, PauseJob, SkipItem

app = Batchyard()
TOKENS_PER_ARTICLE = 300
ACCOUNTS = Path(tempfile.mkdtemp()) / "content_app.db"  # the app's own database, not Batchyard's


def balance() -> int:
    with sqlite3.connect(ACCOUNTS) as db:
        return int(db.execute("SELECT tokens FROM accounts WHERE user = 'ada'").fetchone()[0])


def spend(tokens: int) -> None:
    with sqlite3.connect(ACCOUNTS) as db:
        db.execute("UPDATE accounts SET tokens = tokens - ? WHERE user = 'ada'", (tokens,))


def check_balance(item: dict[str, Any], ctx: ItemContext) -> None:
    """The admit hook: runs before each article; the job pauses when the balance cannot pay for one."""
    if item.get("written"):
        raise SkipItem(f"an article on {item['keyword']!r} exists already")
    left = balance()
    if left < TOKENS_PER_ARTICLE:
        raise PauseJob(f"Token balance exhausted: {left} of 1,200 left")


@app.handler("article", concurrency=1, admit=check_balance)
def article(item: dict[str, Any], ctx: ItemContext) -> dict[str, str]:
    spend(TOKENS_PER_ARTICLE)
    ctx.add_usage(tokens=TOKENS_PER_ARTICLE)
    return {"title": f"Ten things about {item['keyword']}"}


if __name__ == "__main__":
    with sqlite3.connect(ACCOUNTS) as db:
        db.execute("CREATE TABLE accounts (user TEXT PRIMARY KEY, tokens INTEGER)")
        db.execute("INSERT INTO accounts VALUES ('ada', 1200)")  # enough for 4 articles
    keywords = ["tea", "coffee", "cocoa", "mate", "chai", "kombucha"]
    items = [{"custom_id": k, "keyword": k, "written": k == "coffee"} for k in keywords]
    job = app.submit("article", items, description="articles for ada")

    view = job.wait(return_when_paused=True)  # the in-process worker runs until the hook pauses the job
    paused = view.job
    print(f"{paused.status} ({paused.status_reason}): {paused.status_message}")
    print(f"  {paused.succeeded} written, {paused.skipped} skipped, {paused.queued} waiting")

    with sqlite3.connect(ACCOUNTS) as db:  # the user buys more tokens
        db.execute("UPDATE accounts SET tokens = tokens + 600 WHERE user = 'ada'")
    job.resume()
    done = job.wait().job
    print(f"{done.status}: {done.succeeded} written, {done.skipped} skipped, {balance()} tokens left")
    for item in job.items():
        outcome = item.result["title"] if item.result else (item.error or {}).get("message")
        print(f"  {item.key}: {item.status}, {outcome}")
