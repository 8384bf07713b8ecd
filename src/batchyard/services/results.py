"""What a job hands back: its result files, stored once the job finished or built from the items so far, and the
job list as CSV. Everything streams with bounded memory.

Once a job's result files are written they are read from storage. Before that (the job still runs),
``results.jsonl``, ``errors.jsonl`` and ``results.csv`` are built on the fly from the items finished so far and
marked ``partial``; ``artifacts.zip`` only exists once the job has finished.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO

from batchyard.core.cursors import JOB_SORT_KEYS
from batchyard.core.lifecycle import TERMINAL_ITEM_STATUSES
from batchyard.core.records import JobFilter, JobQuery, JobRecord
from batchyard.data.blobs import LocalStorage, job_prefix
from batchyard.data.results import (
    ARTIFACTS_ZIP,
    RESULTS_CSV,
    CsvWriter,
    csv_cell,
    elsewhere_message,
    iter_partial_lines,
    no_artifacts_message,
)
from batchyard.errors import NotFound, NotReady
from batchyard.services.auth import LOCAL_ADMIN, Principal
from batchyard.services.jobs import JobService
from batchyard.store import Store

CHUNK_BYTES = 64 * 1024  # built-on-the-fly files are handed out in pieces about this big
FILE_CHUNK_BYTES = 1 << 20
MAX_JOBS_CSV_ROWS = 100_000
JOBS_CSV_PAGE = 1000
JOBS_CSV_COLUMNS = [
    "id",
    "handler",
    "status",
    "owner",
    "project",
    "total",
    "succeeded",
    "failed",
    "cancelled",
    "skipped",
    "percent",
    "created_at",
    "finished_at",
    "cost",
    "description",
    "tags",
    "started_at",
    "duration_seconds",
]
_FINISHED_ITEM_STATUSES = frozenset(s.value for s in TERMINAL_ITEM_STATUSES)


@dataclass(frozen=True)
class ResultFile:
    """One result file of a job, ready to stream: ``chunks`` (closes what it opened when exhausted or closed)."""

    job: JobRecord
    name: str
    chunks: Iterator[bytes]
    partial: bool  # built from the items finished so far: the job has not written its files yet
    size: int | None  # known for a stored file only


class ResultService:
    def __init__(self, store: Store, storage: LocalStorage, jobs: JobService) -> None:
        self.store = store
        self.storage = storage
        self.jobs = jobs

    def open(self, job_id: str, name: str, principal: Principal = LOCAL_ADMIN) -> ResultFile:
        """One result file of a job the principal may see: the stored file once written, else built from the
        items so far. ``artifacts.zip`` is NotReady before the job finished, NotFound if the handler saved none."""
        job = self.jobs.job_record(job_id, principal)
        if name in job.result_files:
            stored = f"{job_prefix(job.id)}/{name}"
            try:
                size = self.storage.size(stored)
                stream = self.storage.open_read(stored)
            except FileNotFoundError:  # a retry removed the files after we read the job: build them instead
                pass
            else:
                return ResultFile(job, name, _file_chunks(stream), partial=False, size=size)
            if name == ARTIFACTS_ZIP and name in self.jobs.job_record(job_id, principal).result_files:
                # Not a retry: another machine wrote it into its own data dir (the items hold no artifacts to rebuild)
                raise NotFound(elsewhere_message(job.id, name, job.result_files[name]), param="job_id")
        if name == ARTIFACTS_ZIP:
            if job.files_written_at is not None:
                raise NotFound(no_artifacts_message(job.id, job.result_files), param="job_id")
            raise NotReady(
                f"artifacts.zip is built when job {job.id} finishes; it is {job.status} "
                f"({job.percent:.0f}% done). results.jsonl and results.csv have the results so far",
                param="job_id",
            )
        lines = self._partial_csv(job.id) if name == RESULTS_CSV else iter_partial_lines(self.store, job.id, name)
        return ResultFile(job, name, _encoded(lines), partial=True, size=None)

    def _partial_csv(self, job_id: str) -> Iterator[str]:
        """results.csv as it would be written now, for the items finished so far (same columns as the final one)."""
        out = io.StringIO()
        writer = CsvWriter(out)
        for row in self.store.items.iter_item_rows(job_id):
            if row[2] in _FINISHED_ITEM_STATUSES:
                writer.add(row)
                if out.tell() >= CHUNK_BYTES:
                    yield out.getvalue()
                    out.seek(0)
                    out.truncate()
        writer.close()
        yield out.getvalue()

    def jobs_csv(
        self, principal: Principal = LOCAL_ADMIN, where: JobFilter | None = None, *, sort: str = "-created_at"
    ) -> Iterator[bytes]:
        """The jobs the principal can see that match ``where`` (an admin: every owner's) as CSV, in the order of
        ``sort`` (a job list sort), at most MAX_JOBS_CSV_ROWS. Times are ISO 8601 in UTC. The owner check runs
        now, before the first byte; rows are read page by page (keyset) as the answer is sent."""
        scoped = self.jobs.scoped(where or JobFilter(), principal)
        return _encoded(self._job_rows(scoped, sort))

    def _job_rows(self, where: JobFilter, sort: str) -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([csv_cell(c) for c in JOBS_CSV_COLUMNS])
        field = JOB_SORT_KEYS[sort.lstrip("-")].field
        written = 0
        after: tuple[Any, str] | None = None
        while written < MAX_JOBS_CSV_ROWS:
            limit = min(JOBS_CSV_PAGE, MAX_JOBS_CSV_ROWS - written)
            page = self.store.jobs.list_jobs(JobQuery.of(where, sort=sort, after=after, limit=limit))
            writer.writerows(_job_cells(job) for job in page)
            written += len(page)
            yield out.getvalue()
            out.seek(0)
            out.truncate()
            if len(page) < limit:
                return
            after = (getattr(page[-1], field), page[-1].id)


def _job_cells(job: JobRecord) -> list[Any]:
    cells = [
        job.id,
        job.handler,
        job.status,
        job.owner,
        job.project or "",
        job.total,
        job.succeeded,
        job.failed,
        job.cancelled,
        job.skipped,
        f"{job.percent:.2f}",
        _iso(job.created_at),
        _iso(job.finished_at),
        f"{job.cost:.6f}",
        job.description or "",
        " ".join(job.tags),
        _iso(job.started_at),
        "" if job.started_at is None or job.finished_at is None else f"{job.finished_at - job.started_at:.3f}",
    ]
    return [csv_cell(cell) for cell in cells]


def _iso(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _encoded(pieces: Iterable[str]) -> Iterator[bytes]:
    """Join small text pieces into chunks of about CHUNK_BYTES, UTF-8 encoded."""
    buffer: list[str] = []
    size = 0
    for piece in pieces:
        buffer.append(piece)
        size += len(piece)
        if size >= CHUNK_BYTES:
            yield "".join(buffer).encode()
            buffer, size = [], 0
    if buffer:
        yield "".join(buffer).encode()


def _file_chunks(stream: BinaryIO) -> Iterator[bytes]:
    with stream:
        while chunk := stream.read(FILE_CHUNK_BYTES):
            yield chunk
