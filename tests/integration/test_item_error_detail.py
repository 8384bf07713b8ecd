"""``ItemError(detail=...)``: the handler's structured data is stored with the item's error, beside the usual keys."""

from __future__ import annotations

from typing import Any

from batchyard import Batchyard, ItemContext
from batchyard.errors import ItemError, PermanentError

from .helpers import assert_counters_match_items, running_worker, wait_finished


def test_an_item_error_keeps_its_detail(app: Batchyard) -> None:
    @app.handler("upstreamish", max_attempts=2)
    async def upstreamish(item: dict[str, Any], ctx: ItemContext) -> None:
        if item["kind"] == "final":
            raise PermanentError(
                "upstream answered 400",
                code="http_400",
                detail={"status_code": 400, "request_id": "req_1", "body": {"error": {"message": "bad"}}},
            )
        if item["kind"] == "odd":
            raise ItemError("odd detail", retryable=False, code="odd", detail={"when": {1, 2}})  # not JSON
        raise ItemError("no answer", retryable=False, code="upstream_unreachable")

    job = app.submit("upstreamish", [{"key": k, "kind": k} for k in ("final", "odd", "plain")])
    with running_worker(app):
        view = wait_finished(app, job.id, timeout=30)
    assert view.job.failed == 3
    errors = {item.key: item.error for item in job.errors()}

    final = errors["final"]
    assert final is not None
    assert final["detail"] == {"status_code": 400, "request_id": "req_1", "body": {"error": {"message": "bad"}}}
    assert (final["code"], final["message"], final["attempt"], final["type"]) == (
        "http_400",
        "upstream answered 400",
        1,
        "PermanentError",
    )
    assert "traceback" in final

    odd = errors["odd"]
    assert odd is not None and "unserializable" in odd["detail"]  # kept as text, the item still fails cleanly

    plain = errors["plain"]
    assert plain is not None and "detail" not in plain
    assert_counters_match_items(app, job.id)
