"""The job filter as query parameters: one dependency shared by the job list, its CSV export and the history, so
each takes exactly the same filters (``status`` names and groups, ``handler``, ``project``, ``tag``, ``owner``,
``created_after``/``created_before``, ``q``). Bulk actions take the same fields in a JSON body
(:class:`JobFilterIn`)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from fastapi import Depends, Query
from pydantic import AfterValidator, ConfigDict, Field, StringConstraints, WithJsonSchema

from batchyard.api.bodies import RequestModel
from batchyard.core.jobfilter import STATUS_HELP, STATUS_PATTERN, parse_statuses
from batchyard.core.records import JobFilter
from batchyard.errors import InvalidRequest

# The job list's sort orders (core/cursors.JOB_SORT_KEYS), "-" first for descending.
SortField = Literal[
    "created_at", "-created_at", "priority", "-priority", "updated_at", "-updated_at", "total", "-total"
]


def _status_words(value: str) -> str:
    if _STATUS_WORDS.fullmatch(value):
        return value
    try:
        parse_statuses([value], param="status")
    except InvalidRequest as exc:
        raise ValueError(exc.message.removeprefix("status: ")) from None
    raise ValueError("write statuses in lower case, separated by commas without blanks (e.g. running,queued)")


_STATUS_WORDS = re.compile(STATUS_PATTERN)


# One value of ``status``: checked by parse_statuses (a clear message naming the bad word); the schema shows the
# same rule as a pattern (a pattern checked by pydantic would answer with the regular expression instead).
StatusWords = Annotated[
    str,
    StringConstraints(max_length=200),
    AfterValidator(_status_words),
    WithJsonSchema({"type": "string", "maxLength": 200, "pattern": STATUS_PATTERN}),
]
NO_NUL = r"^[^\x00]*$"  # PostgreSQL cannot store NUL in text: such a value can match nothing
MAX_EPOCH_SECONDS = 1e11


def job_filter(
    status: Annotated[list[StatusWords] | None, Query(description=STATUS_HELP)] = None,
    handler: Annotated[str | None, Query(max_length=200, description="Only this handler's jobs")] = None,
    project: Annotated[str | None, Query(max_length=200, description="Only this project's jobs")] = None,
    tag: Annotated[str | None, Query(max_length=64, description="Only jobs with this tag")] = None,
    owner: Annotated[
        str | None,
        Query(max_length=200, description="Admins only: one owner's jobs. Others may name only themselves (403)"),
    ] = None,
    created_after: Annotated[
        float | None, Query(ge=0, le=MAX_EPOCH_SECONDS, description="Created at or after (epoch seconds)")
    ] = None,
    created_before: Annotated[
        float | None, Query(ge=0, le=MAX_EPOCH_SECONDS, description="Created before (epoch seconds)")
    ] = None,
    q: Annotated[
        str | None,
        Query(max_length=200, description="Search: a job id or its prefix, or text in the description or tags"),
    ] = None,
) -> JobFilter:
    return JobFilter(
        owner=owner,
        statuses=parse_statuses(status),
        handler=handler,
        project=project,
        tag=tag,
        created_after=created_after,
        created_before=created_before,
        search=q or None,
    )


JobFilterDep = Annotated[JobFilter, Depends(job_filter)]


class JobFilterIn(RequestModel):
    """The job list's filters as a JSON object (every field optional; what ``GET /api/v1/jobs`` takes)."""

    model_config = ConfigDict(extra="forbid", strict=True)  # a JSON false is not a time, nor "1" a number

    status: list[StatusWords] | None = Field(None, max_length=20, description=STATUS_HELP)
    handler: str | None = Field(None, max_length=200, pattern=NO_NUL)
    project: str | None = Field(None, max_length=200, pattern=NO_NUL)
    tag: str | None = Field(None, max_length=64, pattern=NO_NUL)
    owner: str | None = Field(None, max_length=200, pattern=NO_NUL, description="Admins only")
    created_after: float | None = Field(None, ge=0, le=MAX_EPOCH_SECONDS)
    created_before: float | None = Field(None, ge=0, le=MAX_EPOCH_SECONDS)
    q: str | None = Field(None, max_length=200, pattern=NO_NUL, description="Id prefix, description or tag")

    def to_filter(self) -> JobFilter:
        return JobFilter(
            owner=self.owner,
            statuses=parse_statuses(self.status, param="filter.status"),
            handler=self.handler,
            project=self.project,
            tag=self.tag,
            created_after=self.created_after,
            created_before=self.created_before,
            search=self.q or None,
        )
