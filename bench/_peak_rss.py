"""Run a command and report its peak RSS: ``python _peak_rss.py COMMAND...`` (a helper for ``engine.py``).

The command's output passes through; then one last line ``{"maxrss_kb": ..., "returncode": ...}``.

Why a launcher: on Linux a child's ``ru_maxrss`` starts from the RSS of the process that spawned it (the
child runs in the parent's memory until it execs, and the kernel keeps that high-water mark), so a command
started straight from the big benchmark process would report at least the benchmark's own size. This small
process spawns it instead, so ``getrusage(RUSAGE_CHILDREN)`` is the command's own peak (or this launcher's
size, some 10 MB, if that were larger).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys


def main() -> int:
    returncode = subprocess.call(sys.argv[1:])
    sys.stdout.flush()
    maxrss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"maxrss_kb": maxrss_kb, "returncode": returncode}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
