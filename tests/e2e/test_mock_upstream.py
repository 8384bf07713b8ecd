"""``batchyard mock-upstream`` as the tests and benchmarks use it: a real subprocess answering like OpenAI."""

from __future__ import annotations

import httpx
import pytest

from tests.upstream import MockUpstreamProcess, start_mock_upstream


def test_every_endpoint_answers_deterministically_with_usage(mock_upstream: MockUpstreamProcess) -> None:
    with httpx.Client(base_url=mock_upstream.url, timeout=10) as client:
        models = client.get("/models").json()
        assert models["object"] == "list" and {m["id"] for m in models["data"]} >= {"mock-chat", "mock-embed"}

        chat = {"model": "mock-chat", "messages": [{"role": "user", "content": "hi there"}]}
        first, second = client.post("/chat/completions", json=chat), client.post("/chat/completions", json=chat)
        assert first.status_code == 200 and first.headers["x-request-id"].startswith("req_mock_")
        assert first.json()["choices"] == second.json()["choices"]
        assert first.json()["choices"][0]["message"]["content"] == "Mock reply to: hi there"
        usage = first.json()["usage"]
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0

        text = client.post("/completions", json={"model": "mock-chat", "prompt": "once", "max_tokens": 2}).json()
        assert text["object"] == "text_completion" and len(text["choices"][0]["text"]) <= 8

        embedded = client.post("/embeddings", json={"model": "mock-embed", "input": ["a", "b"], "dimensions": 4})
        vectors = [d["embedding"] for d in embedded.json()["data"]]
        assert len(vectors) == 2 and all(len(v) == 4 for v in vectors) and vectors[0] != vectors[1]
        assert sum(x * x for x in vectors[0]) == pytest.approx(1.0, abs=1e-4)
        assert embedded.json()["usage"]["prompt_tokens"] == embedded.json()["usage"]["total_tokens"]

        response = client.post("/responses", json={"model": "mock-chat", "input": "hello"}).json()
        assert response["object"] == "response" and response["output"][0]["content"][0]["text"].endswith("hello")
        assert response["usage"]["input_tokens"] > 0 and response["usage"]["output_tokens"] > 0

        moderated = client.post("/moderations", json={"model": "mock-moderation", "input": ["ok", "forbidden"]})
        assert [r["flagged"] for r in moderated.json()["results"]] == [False, True]

        missing = client.post("/chat/completions", json={"messages": []})
        assert missing.status_code == 400 and missing.json()["error"]["code"] == "missing_required_parameter"
        assert client.post("/chat/completions", content=b"{not json").status_code == 400

    stats = mock_upstream.stats()
    assert stats["by_key"]["hi there"] == 2
    assert stats["by_status"]["200"] == 7 and stats["by_status"]["400"] == 2
    mock_upstream.reset()
    assert mock_upstream.stats()["requests"] == 0


def test_injected_failures_only_when_asked() -> None:
    with start_mock_upstream("--rate-limit-rate", "1", "--retry-after", "7") as limited:
        answer = httpx.post(f"{limited.url}/embeddings", json={"model": "m", "input": "x"}, timeout=10)
        assert answer.status_code == 429 and answer.headers["retry-after"] == "7"
        assert answer.json()["error"]["code"] == "rate_limit_exceeded"
    with start_mock_upstream("--error-rate", "1", "--api-key", "sk-k") as failing:
        url = f"{failing.url}/embeddings"
        assert httpx.post(url, json={"model": "m", "input": "x"}, timeout=10).status_code == 401
        answer = httpx.post(url, json={"model": "m", "input": "x"}, headers={"Authorization": "Bearer sk-k"})
        assert answer.status_code == 500 and answer.json()["error"]["type"] == "server_error"


def test_a_request_can_script_its_own_failures(mock_upstream: MockUpstreamProcess) -> None:
    body = {"model": "m", "input": "scripted", "mock": {"fail": [429, 503], "retry_after": 0.5}}
    statuses = [httpx.post(f"{mock_upstream.url}/embeddings", json=body, timeout=10) for _ in range(3)]
    assert [a.status_code for a in statuses] == [429, 503, 200]
    assert statuses[0].headers["retry-after"] == "0.5"
    assert "mock" not in statuses[2].text
    assert len(mock_upstream.stats()["arrivals"]["scripted"]) == 3
