"""``batchyard run``'s jobs: an OpenAI batch input file run through the ``openai`` handler, found again on rerun.

A run is a job of the ``openai`` handler whose items are the file's request lines (checked as OpenAI checks a
batch file: ``data/openai_input.py``; a bad file creates nothing). It is keyed by the input's content and the
output path: the idempotency key ``run:<sha256 of the input>:<sha256 of the output path>``. Running the same
command again (after Ctrl-C, a crash, a reboot) finds that job instead of making another, so requests already
answered are not sent again; only the unfinished ones run. A changed input file, or another output path, is
another run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from batchyard.core.records import JobSpec
from batchyard.data.blobs import LocalStorage
from batchyard.data.openai_input import BatchInputReader, BatchInputRejected
from batchyard.data.openai_output import BATCH_CANCELLED, BATCH_EXPIRED
from batchyard.data.run_output import RunOutput, detect_endpoint, run_key, write_run_output
from batchyard.errors import DuplicateIdempotencyKey, InputInvalid, InputProblem
from batchyard.registry import HandlerRegistry
from batchyard.services.jobs import JobService, JobView
from batchyard.settings import Settings
from batchyard.store import Store

RUN_HANDLER = "openai"
RUN_OWNER = "local"
MAX_RUN_REQUESTS = 100_000_000  # no per-batch request limit for a local run (OpenAI's 50,000 is for its API)


@dataclass(frozen=True)
class RunStart:
    view: JobView
    resumed: bool  # found again (a previous run of the same input and output), not created now
    key: str


class RunService:
    def __init__(self, store: Store, storage: LocalStorage, settings: Settings, registry: HandlerRegistry) -> None:
        self.store = store
        self.storage = storage
        self.settings = settings
        self.jobs = JobService(store, storage, settings, registry)

    def start(self, input_path: Path, output_path: Path) -> RunStart:
        """The run's job: found again by its key, or created from the checked input (InputInvalid if bad)."""
        key, content = run_key(input_path, output_path)
        found = self.store.jobs.find_idempotent_job(RUN_OWNER, key)
        if found is not None:
            return RunStart(self.jobs.get(found[1]), True, key)
        endpoint = detect_endpoint(input_path)
        spec = JobSpec(
            handler=RUN_HANDLER,
            owner=RUN_OWNER,
            params={"endpoint": endpoint},
            description=f"batchyard run {input_path.name} -> {output_path.name}",
            tags=("run",),
            source=input_path.name,
            max_attempts=self.settings.max_attempts,
            backoff_base_seconds=self.settings.backoff_base_seconds,
            backoff_max_seconds=self.settings.backoff_max_seconds,
        )
        with input_path.open("rb") as stream:
            reader = BatchInputReader(
                stream,
                endpoint=endpoint,
                max_requests=MAX_RUN_REQUESTS,
                max_line_bytes=self.settings.max_line_bytes,
                max_problems=self.settings.max_input_errors,
            )
            try:
                record = self.store.jobs.create_job(spec, reader, idempotency=(key, content))
            except BatchInputRejected as rejected:
                problems = [InputProblem(p.line or 0, p.code, p.message) for p in rejected.problems]
                raise InputInvalid(problems, rejected.total, source=input_path.name) from None
            except DuplicateIdempotencyKey:  # another run of the same command created it first
                found = self.store.jobs.find_idempotent_job(RUN_OWNER, key)
                if found is None:
                    raise
                return RunStart(self.jobs.get(found[1]), True, key)
        return RunStart(self.jobs.view(record, samples=[]), False, key)

    def write_output(self, job_id: str, output: Path, errors: Path | None) -> RunOutput:
        """Write a finished run's OpenAI-format output (and errors) file from its items."""
        job = self.store.jobs.get_job(job_id)
        code = BATCH_EXPIRED if job.status == "expired" else BATCH_CANCELLED
        return write_run_output(job_id, self.store.items.iter_item_rows(job_id), output, errors, unexecuted_code=code)
