"""Every error Batchyard raises derives from :class:`BatchyardError`; each maps to one HTTP status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class BatchyardError(Exception):
    """Root of Batchyard's errors. ``status`` is the HTTP status the API answers with."""

    status = 500
    code: str | None = "internal_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = "") -> None:
        """``code`` replaces the class's code for this error (None: an error without a code, as OpenAI sends
        some); the default keeps it."""
        super().__init__(message)
        self.message = message
        self.param = param
        if code != "":
            self.code = code

    def to_dict(self) -> dict[str, Any]:
        return {"message": self.message, "type": type(self).__name__, "param": self.param, "code": self.code}


_INVALID_VALUE = (
    "the request contains a value the database cannot store (such as a NUL character); remove it and try again"
)


class ConfigError(BatchyardError):
    status = 500
    code = "config_error"


class NotFound(BatchyardError):
    status = 404
    code = "not_found"


class Unauthenticated(BatchyardError):
    """No credentials, or a bad, revoked or expired key, token or session."""

    status = 401
    code = "unauthenticated"


class Forbidden(BatchyardError):
    """The caller is known but its role does not allow this (a viewer writing, a member acting as admin)."""

    status = 403
    code = "forbidden"


class FileTooLarge(BatchyardError):
    """An upload went past the size limit; nothing of it was kept."""

    status = 413
    code = "file_too_large"


class IdempotencyKeyReused(BatchyardError):
    """The same Idempotency-Key came with a different request."""

    status = 422
    code = "idempotency_key_reused"


class DuplicateIdempotencyKey(BatchyardError):
    """Another request with the same owner and Idempotency-Key created its job first (they raced): replay that
    job. Raised by the store where the key's row is inserted, instead of the driver's unique violation."""

    status = 409
    code = "idempotency_key_in_use"


class NotReady(BatchyardError):
    """What was asked for does not exist yet (e.g. result files of a running job)."""

    status = 409
    code = "not_ready"


class InvalidRequest(BatchyardError):
    status = 400
    code = "invalid_request"


class UnknownHandler(InvalidRequest):
    code = "unknown_handler"


class InvalidValue(InvalidRequest):
    """The database refused a value the request carried (such as a NUL character, which PostgreSQL text cannot
    hold, or a number out of a column's range): the client's mistake, so a 400. Raised by the store in place of
    the driver's DataError; answered as an ``InvalidRequest``."""

    code = "invalid_value"

    def __init__(self, message: str = _INVALID_VALUE, *, param: str | None = None) -> None:
        super().__init__(message, param=param)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "type": "InvalidRequest"}


class IllegalTransition(BatchyardError):
    """A lifecycle move that the current status does not allow (409 over HTTP)."""

    status = 409
    code = "illegal_transition"

    def __init__(self, message: str, *, current: str) -> None:
        super().__init__(message)
        self.current = current

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "current_status": self.current}


@dataclass(frozen=True)
class InputProblem:
    """One problem found in submitted input: where (1-based line), a stable code and a human message."""

    line: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message} [{self.code}]"


class InputInvalid(BatchyardError):
    """The input had problems; nothing was created. ``problems`` holds the first ones, ``total`` counts all."""

    status = 422
    code = "invalid_input"

    def __init__(self, problems: list[InputProblem], total: int, *, source: str = "input") -> None:
        shown = "; ".join(str(p) for p in problems[:3])
        more = f" (and {total - 3} more)" if total > 3 else ""
        super().__init__(f"{source} has {total} problem{'s' if total != 1 else ''}: {shown}{more}")
        self.problems = problems
        self.total = total
        self.source = source

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "total": self.total,
            "problems": [{"line": p.line, "code": p.code, "message": p.message} for p in self.problems],
        }


class StoreUnavailable(BatchyardError):
    status = 503
    code = "store_unavailable"


class FeedClosed(BatchyardError):
    """The server is shutting down: the live feed takes no new streams."""

    status = 503
    code = "shutting_down"


class WorkerCrashed(BatchyardError):
    """A worker stopped because one of its own tasks failed unexpectedly (logged with its traceback when it
    happened). Its items go back to the queue as suspects; a supervisor should start it again."""

    status = 503
    code = "worker_crashed"


class EmailDeliveryError(BatchyardError):
    """A notification email was not sent. ``retryable``: worth sending again later (the server was unreachable,
    timed out or answered 4xx); otherwise final (a 5xx rejection, every recipient refused, a TLS or login
    failure, no SMTP server configured). ``smtp_code`` is the server's reply code when it gave one; ``refused``
    maps refused recipients to their (code, reply)."""

    status = 502
    code = "email_delivery_failed"

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        smtp_code: int | None = None,
        refused: dict[str, tuple[int, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.smtp_code = smtp_code
        self.refused = refused or {}

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "retryable": self.retryable, "smtp_code": self.smtp_code}


# Raised by the HTTP client (batchyard.client); here so the CLI tells them apart without importing httpx -------


class ApiError(BatchyardError):
    """The server answered with an error. ``status`` is the HTTP status, ``code`` the error's code."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "HTTPError",
        code: str = "http_error",
        param: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, param=param)
        self.status = status
        self.type = type_
        self.code = code
        self.body = body or {}

    def to_dict(self) -> dict[str, Any]:
        return {**self.body, "message": self.message, "type": self.type, "param": self.param, "code": self.code}

    def input_invalid(self, source: str = "input") -> InputInvalid | None:
        """The error as :class:`InputInvalid` (its problem list by line) when the server rejected the input."""
        problems = self.body.get("problems")
        if self.code != "invalid_input" or not isinstance(problems, list):
            return None
        parsed = [
            InputProblem(int(p.get("line") or 0), str(p.get("code") or ""), str(p.get("message") or ""))
            for p in problems
            if isinstance(p, dict)
        ]
        total = self.body.get("total")
        return InputInvalid(parsed, total if isinstance(total, int) else len(parsed), source=source)


class ServerUnreachable(BatchyardError):
    """No HTTP answer at all: nothing listening, DNS failure, timeout, connection dropped."""

    status = 503
    code = "server_unreachable"


# Raised by handlers -------------------------------------------------------------------------------------------


class ItemError(Exception):
    """Raise from a handler to fail an item. ``retryable=False`` makes the failure final at once.

    ``retry_after`` (seconds) is the least wait before the next attempt (an upstream's ``Retry-After``).
    ``detail`` is structured data about the failure, stored with the item's error under ``"detail"`` (the
    ``openai`` handler puts an upstream's answer there: ``{"status_code", "request_id", "body"}``); it must be
    JSON-serializable."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        retry_after: float | None = None,
        code: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.code = code
        self.detail = detail


class PermanentError(ItemError):
    """A failure that retrying cannot fix (bad input, an upstream 4xx)."""

    def __init__(self, message: str, *, code: str | None = None, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message, retryable=False, code=code, detail=detail)


class ResourceUnavailable(ItemError):
    """A worker resource the item needs could not be started (or is waiting out its backoff after failing):
    the item fails retryably with code ``resource_unavailable`` and runs again once the resource may be up."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, retryable=True, retry_after=retry_after, code="resource_unavailable")


class ItemCancelled(Exception):
    """Raised by ``ctx.check_cancelled()`` when the item's job is being cancelled; the item ends ``cancelled``."""


class PauseJob(Exception):
    """Raise from a handler or an ``admit`` hook to pause the item's job by the app's own rules (a balance ran
    out, a limit was reached). The job pauses with ``status_reason`` ``paused_by_handler`` and this message; the
    item goes back to the queue without counting an attempt, other items in flight finish, and nothing more of
    the job starts until someone resumes it (``batchyard jobs resume``, ``POST /api/v1/jobs/{id}/resume``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SkipItem(Exception):
    """Raise from a handler or an ``admit`` hook to end the item as ``skipped`` with this message: it counts as
    processed (not failed) and the result files say why."""

    def __init__(self, message: str = "skipped") -> None:
        super().__init__(message)
        self.message = message
