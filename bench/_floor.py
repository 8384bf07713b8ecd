"""The floor row: the least a SQLite-backed batch engine must do, as a bare loop with raw ``sqlite3``.

Insert every item (one ``executemany``), claim them a chunk at a time (``UPDATE ... RETURNING``), mark each
chunk done with a result (``executemany``), then write a results JSONL in input order. No leases, counters,
events, retries or second process: it bounds what Batchyard can reach on SQLite on this machine.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
from pathlib import Path

# The same pragmas as Batchyard's SQLite engine, so the comparison is like for like.
PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA cache_size=-65536",
    "PRAGMA temp_store=MEMORY",
)
QUEUED, RUNNING, DONE = 0, 1, 2


def floor_seconds(n: int, chunk: int = 1000) -> float:
    """Seconds to push ``n`` no-op items through insert → claim → complete → results file."""
    with tempfile.TemporaryDirectory(prefix="batchyard-floor-") as tmp:
        db = sqlite3.connect(Path(tmp) / "floor.db", isolation_level=None)
        try:
            for pragma in PRAGMAS:
                db.execute(pragma)
            db.execute(
                "CREATE TABLE items (id INTEGER PRIMARY KEY, status INTEGER NOT NULL, "
                "payload TEXT NOT NULL, result TEXT)"
            )
            db.execute("CREATE INDEX items_status ON items (status, id)")
            started = time.perf_counter()
            _run(db, n, chunk, Path(tmp) / "results.jsonl")
            return time.perf_counter() - started
        finally:
            db.close()


def _run(db: sqlite3.Connection, n: int, chunk: int, results_path: Path) -> None:
    db.execute("BEGIN IMMEDIATE")
    db.executemany(
        "INSERT INTO items (id, status, payload) VALUES (?, ?, ?)",
        ((i, QUEUED, json.dumps({"n": i})) for i in range(n)),
    )
    db.execute("COMMIT")
    claim = (
        "UPDATE items SET status = ? WHERE id IN "
        "(SELECT id FROM items WHERE status = ? ORDER BY id LIMIT ?) RETURNING id, payload"
    )
    done = 0
    while True:
        db.execute("BEGIN IMMEDIATE")
        rows = db.execute(claim, (RUNNING, QUEUED, chunk)).fetchall()
        db.execute("COMMIT")
        if not rows:
            break
        # The "handler": echo the payload back as the result.
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "UPDATE items SET status = ?, result = ? WHERE id = ?",
            ((DONE, payload, item_id) for item_id, payload in rows),
        )
        db.execute("COMMIT")
        done += len(rows)
    if done != n:
        raise RuntimeError(f"floor loop finished {done} of {n} items")
    with open(results_path, "w", encoding="utf-8") as out:
        for item_id, result in db.execute("SELECT id, result FROM items WHERE status = ? ORDER BY id", (DONE,)):
            out.write(f'{{"seq":{item_id},"result":{result}}}\n')
