"""Reading an OpenAI Batch API input file: one request per JSONL line, checked as OpenAI checks it.

A line is ``{"custom_id": str, "method": "POST", "url": <the batch's endpoint>, "body": {...}}``. Every problem
is collected with its 1-based line, a stable code, the offending parameter and a message, in the shape of the
batch's ``errors.data[]`` (``{code, message, param, line}``); the codes are OpenAI's where it has published them
(``invalid_json_line``, ``missing_required_parameter``) and its peers' otherwise (``invalid_url``,
``duplicate_custom_id``, ``model_mismatch``, ``streaming_unsupported``, ``too_many_tasks``, ``empty_file``).

:class:`BatchInputReader` streams: it yields checked requests in chunks (an item per line: key = ``custom_id``,
payload = the line's JSON object as written) and holds only the custom_ids seen. After the first problem it yields
nothing more but reads on, so every bad line is reported; at the end it raises :class:`BatchInputRejected`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from batchyard.core.storable import is_storable
from batchyard.data.ingest import ParsedItem

# The endpoints a batch may target: the SDK's Literal for ``batches.create(endpoint=...)``.
BATCH_ENDPOINTS: tuple[str, ...] = (
    "/v1/responses",
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/completions",
    "/v1/moderations",
    "/v1/images/generations",
    "/v1/images/edits",
    "/v1/videos",
)
# Endpoints whose requests name their model (OpenAI's API requires it there); the others may leave it out.
MODEL_REQUIRED_ENDPOINTS = frozenset({"/v1/responses", "/v1/chat/completions", "/v1/embeddings", "/v1/completions"})
REQUIRED_FIELDS = ("custom_id", "method", "url", "body")
MAX_EMBEDDING_INPUTS = 50_000  # OpenAI's limit for an /v1/embeddings batch, summed over its requests
MAX_CUSTOM_ID_CHARS = 512
_WHITESPACE = b" \t\r\n"


@dataclass(frozen=True, slots=True)
class LineProblem:
    """One entry of a failed batch's ``errors.data``; ``line`` is 1-based, None for the file as a whole."""

    code: str
    message: str
    param: str | None = None
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "param": self.param, "line": self.line}


class BatchInputRejected(Exception):
    """The input file has problems: the first ``problems`` (at most the reader's limit) and how many in all."""

    def __init__(self, problems: list[LineProblem], total: int) -> None:
        first = problems[0] if problems else None
        where = f"line {first.line}: " if first is not None and first.line is not None else ""
        super().__init__(f"{total} problem(s) in the batch input file; {where}{first.message if first else ''}")
        self.problems = problems
        self.total = total


class BatchInputReader:
    """Checks an input file for a batch on ``endpoint`` while it is read; an :class:`ItemSource` for the store.

    ``max_requests``: more requests than this is a problem (``too_many_tasks``) reported once. ``model`` is the
    model the requests use (the first one named), once read."""

    def __init__(
        self,
        stream: BinaryIO,
        *,
        endpoint: str,
        max_requests: int,
        max_line_bytes: int,
        max_problems: int = 1000,
    ) -> None:
        self._stream = stream
        self.endpoint = endpoint
        self.max_requests = max_requests
        self.max_line_bytes = max_line_bytes
        self.max_problems = max_problems
        self.model: str | None = None
        self._model_line = 0
        self.count = 0
        self.problems: list[LineProblem] = []
        self.total_problems = 0
        self._seen: dict[str, int] = {}
        self.embedding_inputs = 0

    def chunks(self, size: int) -> Iterator[list[ParsedItem]]:
        batch: list[ParsedItem] = []
        for item in self._items():
            if self.total_problems:
                continue  # read on to report every problem, insert nothing more
            batch.append(item)
            if len(batch) >= size:
                yield batch
                batch = []
        if not self.total_problems and batch:
            yield batch
        if not self.count and not self.total_problems:
            self._problem(
                "empty_file", "The batch input file contains no requests; add at least one JSONL line.", None, None
            )
        if self.total_problems:
            raise BatchInputRejected(self.problems, self.total_problems)

    def _problem(self, code: str, message: str, param: str | None, line: int | None) -> None:
        self.total_problems += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(LineProblem(code, message, param, line))

    def _items(self) -> Iterator[ParsedItem]:
        limit = self.max_line_bytes + 2
        line = 0
        while raw := self._stream.readline(limit):
            line += 1
            if len(raw) > self.max_line_bytes and not raw.endswith(b"\n"):
                self._skip_rest_of_line(limit)
                self._problem(
                    "invalid_request",
                    f"This line is longer than the limit of {self.max_line_bytes} bytes.",
                    None,
                    line,
                )
                continue
            text = raw.strip(_WHITESPACE)
            if line == 1 and text.startswith(b"\xef\xbb\xbf"):
                text = text[3:]
            if not text:
                continue
            item = self._check_line(text, line)
            if item is not None:
                yield item

    def _skip_rest_of_line(self, limit: int) -> None:
        while piece := self._stream.readline(limit):
            if piece.endswith(b"\n"):
                return

    def _check_line(self, text: bytes, line: int) -> ParsedItem | None:
        try:
            decoded = text.decode("utf-8")
            value = json.loads(decoded)
        except (UnicodeDecodeError, ValueError, RecursionError):
            self._problem("invalid_json_line", "This line is not parseable as valid JSON.", None, line)
            return None
        if not isinstance(value, dict):
            self._problem("invalid_request", "This line is not a JSON object.", None, line)
            return None
        before = self.total_problems
        for name in REQUIRED_FIELDS:
            if name not in value:
                self._problem("missing_required_parameter", f"Missing required parameter: '{name}'.", name, line)
        key = self._check_custom_id(value.get("custom_id"), line)
        self._check_method_and_url(value, line)
        self._check_body(value.get("body"), line)
        if self.total_problems > before or key is None:
            return None
        if not is_storable(decoded):
            self._problem("invalid_request", "This line contains a NUL character or an unpaired surrogate.", None, line)
            return None
        self.count += 1
        if self.endpoint == "/v1/embeddings" and self._too_many_inputs(value["body"].get("input"), line):
            return None
        if self.count > self.max_requests:
            if self.count == self.max_requests + 1:
                self._problem(
                    "too_many_tasks",
                    f"The batch input file has more than the maximum of {self.max_requests} requests; "
                    "split it into several batches.",
                    None,
                    line,
                )
            return None
        return ParsedItem(self.count - 1, line, key, decoded)

    def _too_many_inputs(self, given: Any, line: int) -> bool:
        before = self.embedding_inputs
        self.embedding_inputs += len(given) if isinstance(given, list) and given and not _is_tokens(given) else 1
        if self.embedding_inputs <= MAX_EMBEDDING_INPUTS:
            return False
        if before <= MAX_EMBEDDING_INPUTS:
            self._problem(
                "too_many_tasks",
                f"The batch's requests have more than the maximum of {MAX_EMBEDDING_INPUTS} embedding inputs in "
                "all; split it into several batches.",
                "body.input",
                line,
            )
        return True

    def _check_custom_id(self, custom_id: Any, line: int) -> str | None:
        if custom_id is None:
            return None  # reported as missing (or null) above
        if not isinstance(custom_id, str):
            self._problem("invalid_request", "custom_id must be a string.", "custom_id", line)
            return None
        if len(custom_id) > MAX_CUSTOM_ID_CHARS:
            self._problem(
                "invalid_request", f"custom_id is longer than {MAX_CUSTOM_ID_CHARS} characters.", "custom_id", line
            )
            return None
        first = self._seen.get(custom_id)
        if first is not None:
            self._problem(
                "duplicate_custom_id",
                f"The custom_id {custom_id!r} is already used on line {first}; each request needs a unique custom_id.",
                "custom_id",
                line,
            )
            return None
        self._seen[custom_id] = line
        return custom_id

    def _check_method_and_url(self, value: dict[str, Any], line: int) -> None:
        method = value.get("method")
        if "method" in value and method != "POST":
            self._problem("invalid_request", "method must be 'POST'.", "method", line)
        url = value.get("url")
        if "url" in value and url != self.endpoint:
            shown = url if isinstance(url, str) else json.dumps(url)
            self._problem(
                "invalid_url",
                f"The URL provided for this request ({shown[:100]!r}) does not match the batch endpoint "
                f"({self.endpoint!r}).",
                "url",
                line,
            )

    def _check_body(self, body: Any, line: int) -> None:
        if body is None:
            return  # missing: reported above
        if not isinstance(body, dict):
            self._problem("invalid_request", "body must be a JSON object.", "body", line)
            return
        if body.get("stream") not in (None, False):
            self._problem(
                "streaming_unsupported",
                "Streaming is not supported in a batch; remove 'stream' from the body or set it to false.",
                "body.stream",
                line,
            )
        model = body.get("model")
        if model is None:
            if self.endpoint in MODEL_REQUIRED_ENDPOINTS:
                self._problem(
                    "missing_required_parameter", "Missing required parameter: 'body.model'.", "body.model", line
                )
            return
        if not isinstance(model, str):
            self._problem("invalid_request", "body.model must be a string.", "body.model", line)
            return
        if self.model is None:
            self.model, self._model_line = model, line
        elif model != self.model:
            self._problem(
                "model_mismatch",
                f"This request uses model {model[:100]!r} but line {self._model_line} uses {self.model[:100]!r}; "
                "a batch's requests must all use the same model.",
                "body.model",
                line,
            )


def _is_tokens(value: list[Any]) -> bool:
    """An embeddings ``input`` that is one text as token ids (a list of ints), not a list of inputs."""
    return all(isinstance(v, int) for v in value)
