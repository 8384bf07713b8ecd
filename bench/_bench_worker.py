"""Run one Batchyard worker until SIGTERM (a helper process for ``engine.py``; not for direct use)."""

from __future__ import annotations

import argparse
import sys

from batchyard import Batchyard


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--concurrency", type=int, default=1000)
    args = parser.parse_args()
    app = Batchyard(
        data_dir=args.data_dir, database_url=args.database_url, worker_concurrency=args.concurrency, demo_handlers=True
    )
    try:
        stats = app.run_worker()
    finally:
        app.close()
    print(f"worker stopped: claimed={stats.claimed} flushed={stats.flushed}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
