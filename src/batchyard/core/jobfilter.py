"""How a job filter's statuses are written: names and groups, repeated or comma-separated. Pure.

``status=running&status=queued``, ``status=running,queued`` and ``status=active`` all work, in any mix. A group
stands for several statuses: ``active`` (not finished yet: queued, running, paused, finalizing, cancelling) and
``finished`` (completed, failed, cancelled, expired). Over HTTP a value must match :data:`STATUS_PATTERN` (lower
case, no blanks); Python callers may also write them in any case with blanks around the commas.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from batchyard.core.lifecycle import ACTIVE_JOB_STATUSES, TERMINAL_JOB_STATUSES, JobStatus
from batchyard.errors import InvalidRequest

STATUS_GROUPS: dict[str, frozenset[JobStatus]] = {
    "active": ACTIVE_JOB_STATUSES,
    "finished": TERMINAL_JOB_STATUSES,
}
STATUS_WORDS: tuple[str, ...] = (*(s.value for s in JobStatus), *STATUS_GROUPS)
# Every value parse_statuses accepts (one query parameter's value), for an OpenAPI ``pattern``.
_WORD = "|".join(STATUS_WORDS)
STATUS_PATTERN = rf"^(?:{_WORD})(?:,(?:{_WORD}))*$"
STATUS_HELP = (
    "Statuses, repeated (status=running&status=queued) or comma-separated (status=running,queued): "
    f"{', '.join(s.value for s in JobStatus)}; or a group: active (queued, running, paused, finalizing, "
    "cancelling), finished (completed, failed, cancelled, expired)"
)


def parse_statuses(values: Iterable[str] | None, *, param: str = "status") -> tuple[str, ...]:
    """The job statuses ``values`` name, each once, in the lifecycle's order; () for no condition.

    Raises :class:`InvalidRequest` naming ``param`` for a word that is neither a status nor a group."""
    wanted: set[str] = set()
    for value in values or ():
        if not isinstance(value, str):
            raise InvalidRequest(f"{param}: expected status names, got {value!r}", param=param)
        for word in value.split(","):
            name = word.strip().lower()
            if name in STATUS_GROUPS:
                wanted.update(s.value for s in STATUS_GROUPS[name])
            elif name in JobStatus.__members__.values():
                wanted.add(name)
            else:
                raise InvalidRequest(
                    f"{param}: unknown status {word.strip()!r}; use one of {', '.join(STATUS_WORDS)} "
                    "(several: repeat the parameter or separate them with commas)",
                    param=param,
                )
    return tuple(s.value for s in JobStatus if s.value in wanted)


JOB_ID_PREFIX = "job_"
JOB_ID_HEX_DIGITS = 20  # store.jobs.new_job_id: 12 of milliseconds, 8 random
_ID_PREFIX = re.compile(rf"{JOB_ID_PREFIX}([0-9a-f]{{1,{JOB_ID_HEX_DIGITS}}})")


def id_prefix_range(text: str) -> tuple[str, str | None] | None:
    """For a search that is a job id or a prefix of one (``job_`` then lower-case hex digits): the ids it
    matches as a range [low, high) of the primary key (high None: no upper bound). Else None.

    The upper bound is the prefix's hex number plus one, written with as many digits: ``job_01a9`` matches
    ``job_01a9`` <= id < ``job_01aa``. Digits and letters compare the same way in every collation, unlike the
    punctuation a "prefix + highest character" bound would need."""
    match = _ID_PREFIX.fullmatch(text)
    if match is None:
        return None
    digits = match[1]
    following = int(digits, 16) + 1
    if following >= 16 ** len(digits):
        return text, None
    return text, f"{JOB_ID_PREFIX}{following:0{len(digits)}x}"
