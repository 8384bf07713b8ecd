"""Quotas as people manage them: read one (an admin, or the owner itself), set or remove one (an admin).

The rules of what a quota holds back are in :mod:`batchyard.core.quotas`; the claim path applies them in the
store. Setting a quota *changes* only the limits it is given (``None`` clears one), so ``quotas set alice
--tokens 5000`` keeps alice's item budget; raising a spent budget resumes the jobs it paused at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from batchyard.core.quotas import OWNER_WIDE, PERIODS, Budget, QuotaLimits, Usage, period_bounds, spent_budget
from batchyard.errors import InvalidRequest, NotFound
from batchyard.services.auth import LOCAL_ADMIN, Principal, check_owner_name
from batchyard.store import Store

LIMIT_FIELDS = ("items", "tokens", "cost", "max_running")
MAX_COUNT = 10**15  # items and tokens: far past any real budget, inside a 64-bit column


@dataclass(frozen=True, slots=True)
class QuotaView:
    """A quota and where its scope stands this period. ``limits`` None: no quota (nothing is limited)."""

    owner: str
    project: str | None
    limits: QuotaLimits | None
    used: Usage | None = None
    running: int = 0
    paused_jobs: int = 0
    period_start: float | None = None
    resets_at: float | None = None
    exhausted: Budget | None = None
    resumed: tuple[str, ...] = ()  # jobs a change resumed


class QuotaService:
    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, owner: str, principal: Principal = LOCAL_ADMIN, *, project: str | None = None) -> QuotaView:
        """The quota of ``owner`` (or of its ``project``): an admin may read anyone's, others their own (another
        owner's is reported missing, as everywhere)."""
        principal.check_owner(owner, f"quota for owner {owner!r}", param="owner")
        owner = check_owner_name(owner)
        limits = self.store.quotas.get(owner, _project(project))
        return self._view(owner, project, limits)

    def list(self, principal: Principal = LOCAL_ADMIN, *, owner: str | None = None) -> list[QuotaView]:
        """Every quota an admin may see (or of ``owner``); a non-admin's own."""
        scope = principal.owner_filter(owner, what="quotas")
        return [self._view(q.owner, q.project or None, q) for q in self.store.quotas.list_quotas(scope)]

    def set(
        self, owner: str, changes: dict[str, Any], principal: Principal = LOCAL_ADMIN, *, project: str | None = None
    ) -> QuotaView:
        """Create or change a quota (admins only). ``changes`` holds only what changes: ``period`` and the limits
        ``items``, ``tokens``, ``cost``, ``max_running`` (None clears a limit). A new quota's period is ``total``."""
        principal.check_owner(owner, f"quota for owner {owner!r}", param="owner")
        principal.require_admin()
        owner = check_owner_name(owner)
        unknown = set(changes) - {"period", *LIMIT_FIELDS}
        if unknown:
            raise InvalidRequest(f"unknown quota field(s): {', '.join(sorted(unknown))}", param=sorted(unknown)[0])
        current = self.store.quotas.get(owner, _project(project)) or QuotaLimits(owner, _project(project))
        limits = replace(current, **{name: _checked(name, value) for name, value in changes.items()})
        resumed = self.store.quotas.put(limits, actor=principal.owner)
        return replace(self._view(owner, project, limits), resumed=tuple(resumed))

    def remove(self, owner: str, principal: Principal = LOCAL_ADMIN, *, project: str | None = None) -> QuotaView:
        """Remove a quota (admins only): nothing of its scope is limited any more; what it paused resumes."""
        principal.check_owner(owner, f"quota for owner {owner!r}", param="owner")
        principal.require_admin()
        owner = check_owner_name(owner)
        gone, resumed = self.store.quotas.delete(owner, _project(project))
        if not gone:
            where = f"{owner}/{project}" if project else owner
            raise NotFound(f"no quota for {where}", param="owner")
        return QuotaView(owner, project, None, resumed=tuple(resumed))

    def _view(self, owner: str, project: str | None, limits: QuotaLimits | None) -> QuotaView:
        if limits is None:
            return QuotaView(owner, project, None)
        used, running, paused, now = self.store.quotas.status(limits)
        start, end = period_bounds(limits.period, now)
        return QuotaView(
            owner,
            project,
            limits,
            used=used,
            running=running,
            paused_jobs=paused,
            period_start=start,
            resets_at=end,
            exhausted=spent_budget(limits, used) if limits.has_budget else None,
        )


def _project(project: str | None) -> str:
    if project is None or project == OWNER_WIDE:
        return OWNER_WIDE
    project = project.strip()
    if not project or len(project) > 200:
        raise InvalidRequest("a project is 1 to 200 characters", param="project")
    return project


def _checked(name: str, value: Any) -> Any:
    """One field of a quota change, checked: what is wrong, and what is accepted."""
    if name == "period":
        if value not in PERIODS:
            raise InvalidRequest(f"period must be one of {', '.join(PERIODS)}, not {value!r}", param="period")
        return value
    if value is None:
        return None
    if name == "cost":
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise InvalidRequest("cost must be a number >= 0 (or null for no limit)", param="cost")
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise InvalidRequest(f"{name} must be a whole number from 0 to {MAX_COUNT} (or null for no limit)", param=name)
    return value
