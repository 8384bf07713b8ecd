"""Submit one input file and exit without waiting (a helper process for ``engine.py``'s RSS row).

Prints one JSON line: the job id, its item count and the seconds the submit call took. The parent reads this
process's peak RSS when it exits.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from batchyard import Batchyard


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    app = Batchyard(data_dir=args.data_dir, database_url=args.database_url, demo_handlers=True)
    try:
        app.store  # noqa: B018 - create the schema before the clock starts
        started = time.perf_counter()
        job = app.submit("echo", args.path)
        seconds = time.perf_counter() - started
        total = app.service.get(job.id).job.total
    finally:
        app.close()
    print(json.dumps({"job_id": job.id, "total": total, "seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
