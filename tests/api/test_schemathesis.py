"""Property-based fuzzing of every route from /openapi.json with schemathesis' default checks: no 5xx, every
status, header, content type and body as documented, invalid requests rejected, unsupported methods answered
405 with a correct Allow header. Runs in-process against a real SQLite database.

One default check is left out: ``positive_data_acceptance`` expects every schema-valid request to succeed, but
the API rightly refuses schema-valid requests that break rules a schema cannot say: the handler must exist, items
must be valid and unique, a cursor must come from a previous page, a file id must be an upload's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from batchyard import Batchyard, Settings
from batchyard.api import create_app
from batchyard.auth import AuthService, Role

MAX_EXAMPLES = 25  # per operation; locally, 60 random examples per operation passed twice as well


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, str]]:
    data = Path(tmp_path_factory.mktemp("fuzz"))
    app = Batchyard(Settings(data_dir=data, database_url=f"sqlite:///{data / 'b.db'}", max_upload_bytes=10_000))
    key, _ = AuthService(app.store).create_key("fuzzer", Role.ADMIN)
    app.submit("echo", [{"n": i} for i in range(3)], owner="fuzzer").wait(timeout=30)
    api = create_app(batchyard=app)
    yield api, key
    app.close()


@pytest.fixture(scope="module")
def api_schema(fuzz_app: tuple[object, str]) -> schemathesis.BaseSchema:
    api, _ = fuzz_app
    # The event stream never ends by itself; tests/api/test_stream.py covers it.
    return schemathesis.openapi.from_asgi("/openapi.json", api).exclude(path="/api/v1/stream")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True,  # the same examples every run: no flakes
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_every_route_holds_its_contract(case: schemathesis.Case, fuzz_app: tuple[object, str]) -> None:
    _, key = fuzz_app
    case.call_and_validate(headers={"Authorization": f"Bearer {key}"},
                           excluded_checks=[schemathesis.checks.positive_data_acceptance])
