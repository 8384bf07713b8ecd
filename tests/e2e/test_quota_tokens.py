"""Token and cost budgets with the ``openai`` handler: a real ``batchyard worker`` against a real
``batchyard mock-upstream``. Tokens are known only after each answer, so the budget is checked before each claim:
the job pauses once it is spent, passing it by at most what was in flight (``max_running`` bounds that)."""

from __future__ import annotations

from pathlib import Path

from batchyard import Batchyard, Settings
from tests.e2e.test_openai_handler import WorkerProcess, chat_line
from tests.upstream import MockUpstreamProcess

from ..waits import wait_until

TOKEN_BUDGET = 300
MAX_RUNNING = 3


def test_a_token_budget_pauses_an_openai_job_and_removing_it_finishes_the_job(
    tmp_path: Path, mock_upstream: MockUpstreamProcess
) -> None:
    data_dir = tmp_path / "data"
    app = Batchyard(Settings(data_dir=data_dir))
    app.quotas.set("local", {"tokens": TOKEN_BUDGET, "max_running": MAX_RUNNING, "period": "day"})
    job = app.submit("openai", [chat_line(i) for i in range(80)], params={"endpoint": "/v1/chat/completions"})
    worker = WorkerProcess(data_dir, "--upstream", mock_upstream.url)
    try:

        def paused_and_still() -> bool:
            record = app.service.get(job.id).job
            return record.status == "paused" and record.running == 0

        wait_until(paused_and_still, timeout=60, what="the job to pause on its token budget")
        record = app.service.get(job.id).job
        assert record.status_reason == "quota_exhausted" and "tokens budget for this day" in (
            record.status_message or ""
        )
        spent = int(record.usage["total_tokens"])
        per_item = [
            item.result["body"]["usage"]["total_tokens"]
            for item in app.store.items.iter_items(job.id)
            if item.status == "succeeded"
        ]
        assert spent == sum(per_item) >= TOKEN_BUDGET
        # Passed by at most what was in flight when it ran out: fewer than MAX_RUNNING items' worth.
        assert spent - TOKEN_BUDGET < MAX_RUNNING * max(per_item)
        assert 0 < record.succeeded < 80 and record.queued == 80 - record.succeeded
        quota = app.quotas.get("local")
        assert quota.used is not None and quota.used.tokens == spent and quota.exhausted == "tokens"

        resumed = app.quotas.set("local", {"tokens": None})
        assert resumed.resumed == (job.id,)
        wait_until(lambda: app.service.get(job.id).finished, timeout=60, what="the job to finish")
        final = app.service.get(job.id).job
        assert (final.status, final.succeeded, final.status_reason) == ("completed", 80, None)
    finally:
        worker.stop()
        app.close()
