"""``batchyard quotas ...``: budgets per owner (and project) and a cap on an owner's items running at once.

Locally they act on the database (as ``batchyard keys`` does); with ``--url`` on a server, through its REST API
(setting and removing take an admin key).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from batchyard.cli.common import AppOption, JsonOption, KeyOption, UrlOption, open_app, open_client, out, print_json
from batchyard.core.quotas import Budget, amount_text, utc_minute

if TYPE_CHECKING:
    from batchyard.wire import QuotaOut

quotas_app = typer.Typer(
    name="quotas",
    no_args_is_help=True,
    rich_markup_mode="rich",
    help="Budgets per owner: items, tokens or cost per [cyan]day, month or total[/], and a cap on items running at "
    "once. When a budget is spent the owner's jobs pause (nothing fails) and resume by themselves when it is "
    "raised or its period rolls over: [cyan]set, show, list, remove[/].",
)

ProjectOption = Annotated[
    str | None,
    typer.Option("--project", metavar="NAME", help="The quota of one project of the owner (default: the owner's)."),
]
NO_LIMIT_WORDS = ("none", "unlimited", "off")


def _limit(kind: type[int] | type[float], name: str) -> Any:
    def parse(value: str | None) -> int | float | str | None:
        if value is None:
            return None
        if value.strip().lower() in NO_LIMIT_WORDS:
            return "none"
        try:
            number = kind(value.replace("_", "").replace(",", ""))
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise typer.BadParameter(f"{value!r} is not {what}; write e.g. 1000, or 'none' for no limit") from None
        if number < 0:
            raise typer.BadParameter(f"{name} cannot be negative; write 0 to allow nothing, or 'none' for no limit")
        return number

    return parse


@contextlib.contextmanager
def _quotas(ctx: typer.Context, url: str | None, key: str | None, app: str | None) -> Iterator[_Quotas]:
    if url:
        with open_client(url, key, app) as client:
            yield _Quotas(client=client)
    else:
        with open_app(ctx, app) as by:
            yield _Quotas(local=by)


class _Quotas:
    """The local services or a server's REST API, answering with the same wire model."""

    def __init__(self, *, client: Any = None, local: Any = None) -> None:
        self.client = client
        self.local = local

    def get(self, owner: str, project: str | None) -> QuotaOut:
        from batchyard.wire import QuotaOut

        if self.client is not None:
            result: QuotaOut = self.client.get_quota(owner, project=project)
            return result
        return QuotaOut.of(self.local.quotas.get(owner, project=project))

    def list(self, owner: str | None) -> list[QuotaOut]:
        from batchyard.wire import QuotaOut

        if self.client is not None:
            result: list[QuotaOut] = self.client.list_quotas(owner=owner)
            return result
        return [QuotaOut.of(v) for v in self.local.quotas.list(owner=owner)]

    def set(self, owner: str, changes: dict[str, Any], project: str | None) -> QuotaOut:
        from batchyard.wire import QuotaOut

        if self.client is not None:
            result: QuotaOut = self.client.set_quota(owner, changes, project=project)
            return result
        return QuotaOut.of(self.local.quotas.set(owner, changes, project=project))

    def remove(self, owner: str, project: str | None) -> QuotaOut:
        from batchyard.wire import QuotaOut

        if self.client is not None:
            result: QuotaOut = self.client.delete_quota(owner, project=project)
            return result
        return QuotaOut.of(self.local.quotas.remove(owner, project=project))


@quotas_app.command("set")
def set_quota(
    ctx: typer.Context,
    owner: Annotated[str, typer.Argument(metavar="OWNER", show_default=False, help="Whose jobs the quota holds.")],
    items: Annotated[
        str | None,
        typer.Option(
            "--items",
            metavar="N",
            callback=_limit(int, "--items"),
            help="Items that may start per period (exact: no item beyond it starts; retries do not count again). "
            "'none' removes the limit.",
        ),
    ] = None,
    tokens: Annotated[
        str | None,
        typer.Option(
            "--tokens",
            metavar="N",
            callback=_limit(int, "--tokens"),
            help="Tokens that may be spent per period (checked before each claim: items already running finish, so "
            "it can be passed by what was in flight). 'none' removes the limit.",
        ),
    ] = None,
    cost: Annotated[
        str | None,
        typer.Option(
            "--cost",
            metavar="X",
            callback=_limit(float, "--cost"),
            help="Cost that may be spent per period (checked like --tokens). 'none' removes the limit.",
        ),
    ] = None,
    period: Annotated[
        str | None,
        typer.Option(
            "--period",
            metavar="day|month|total",
            help="When budgets start again: day or month (calendar, UTC), or total (a balance you top up). "
            "A new quota's is total.",
        ),
    ] = None,
    max_running: Annotated[
        str | None,
        typer.Option(
            "--max-running",
            metavar="N",
            callback=_limit(int, "--max-running"),
            help="Items of the owner running at once, at most, so one tenant cannot take every worker. 'none' "
            "removes the cap.",
        ),
    ] = None,
    project: ProjectOption = None,
    json_output: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
    app: AppOption = None,
) -> None:
    """Create or change an owner's quota. Only the limits you pass change; the others stay as they are.

    Raising a spent budget resumes the jobs it paused at once. With --url it takes an admin key.

    [bold]Examples[/]

      [cyan]batchyard quotas set alice --items 100000 --period month[/]

      [cyan]batchyard quotas set alice --cost 25 --max-running 50[/]

      [cyan]batchyard quotas set alice --tokens none[/]
    """
    if period is not None and period not in ("day", "month", "total"):
        raise typer.BadParameter(f"{period!r} is not a period: day, month or total", param_hint="--period")
    given = {"items": items, "tokens": tokens, "cost": cost, "max_running": max_running}
    changes: dict[str, Any] = {k: (None if v == "none" else v) for k, v in given.items() if v is not None}
    if period is not None:
        changes["period"] = period
    if not changes:
        raise typer.BadParameter(
            "say what to set: --items, --tokens, --cost, --period or --max-running", param_hint="OPTIONS"
        )
    with _quotas(ctx, url, key, app) as quotas:
        quota = quotas.set(owner, changes, project)
    if json_output:
        print_json(quota.model_dump(mode="json"))
        return
    out.print(f"[green]✔[/] Quota of [bold]{escape(_scope(quota))}[/] set.", soft_wrap=True)
    out.print(quota_panel(quota, time.time()), soft_wrap=True)
    if quota.resumed_jobs:
        out.print(
            f"[green]Resumed {len(quota.resumed_jobs)} job(s)[/]: {', '.join(quota.resumed_jobs)}", soft_wrap=True
        )


@quotas_app.command("show")
def show(
    ctx: typer.Context,
    owner: Annotated[str, typer.Argument(metavar="OWNER", show_default=False, help="Whose quota to show.")],
    project: ProjectOption = None,
    json_output: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
    app: AppOption = None,
) -> None:
    """Show an owner's quota: each budget's use this period, when it resets, what runs and what is paused.

    [bold]Examples[/]

      [cyan]batchyard quotas show alice[/]

      [cyan]batchyard quotas show alice --json | jq .remaining[/]
    """
    with _quotas(ctx, url, key, app) as quotas:
        quota = quotas.get(owner, project)
    if json_output:
        print_json(quota.model_dump(mode="json"))
        return
    out.print(quota_panel(quota, time.time()), soft_wrap=True)


@quotas_app.command("list")
def list_quotas(
    ctx: typer.Context,
    owner: Annotated[str | None, typer.Option("--owner", metavar="NAME", help="Only this owner's.")] = None,
    json_output: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
    app: AppOption = None,
) -> None:
    """List quotas (an admin's: every owner's; anyone else's: their own).

    [bold]Examples[/]

      [cyan]batchyard quotas list[/]
    """
    with _quotas(ctx, url, key, app) as quotas:
        found = quotas.list(owner)
    if json_output:
        print_json([q.model_dump(mode="json") for q in found])
        return
    if not found:
        out.print("No quotas: nothing is limited. Set one: [cyan]batchyard quotas set OWNER --items N[/]")
        return
    now = time.time()
    for quota in found:
        out.print(quota_panel(quota, now), soft_wrap=True)
        out.print()


@quotas_app.command("remove")
def remove(
    ctx: typer.Context,
    owner: Annotated[str, typer.Argument(metavar="OWNER", show_default=False, help="Whose quota to remove.")],
    project: ProjectOption = None,
    json_output: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
    app: AppOption = None,
) -> None:
    """Remove a quota: nothing of the owner (or project) is limited any more, and the jobs it paused resume."""
    with _quotas(ctx, url, key, app) as quotas:
        quota = quotas.remove(owner, project)
    if json_output:
        print_json(quota.model_dump(mode="json"))
        return
    resumed = f"; resumed {len(quota.resumed_jobs)} job(s)" if quota.resumed_jobs else ""
    out.print(f"[green]✔[/] Removed the quota of [bold]{escape(_scope(quota))}[/]{resumed}.", soft_wrap=True)


def _scope(quota: QuotaOut) -> str:
    return f"{quota.owner} (project {quota.project})" if quota.project else quota.owner


def quota_panel(quota: QuotaOut, now: float) -> str:
    """A quota as people read it (Rich markup): one line a budget, used and left."""
    from batchyard.core import humanize

    scope = escape(_scope(quota))
    if not quota.limited:
        return f"[bold]{scope}[/] has no quota: nothing is limited."
    if quota.period == "total":
        head = f"[bold]Quota of {scope}[/] — a balance (never resets)"
    else:
        assert quota.resets_at is not None
        head = (
            f"[bold]Quota of {scope}[/] — per {quota.period}, resets {utc_minute(quota.resets_at)} "
            f"(in {humanize.duration(quota.resets_at - now)})"
        )
    lines = [head]
    for budget in Budget:
        name = budget.value
        limit = getattr(quota, name)
        used = getattr(quota.usage, name) if quota.usage else 0
        if limit is None:
            lines.append(
                f"  {name.capitalize():<12}no limit" + (f" ({amount_text(budget, used)} used)" if used else "")
            )
            continue
        left = max(0.0, limit - used)
        style = "red" if left <= 0 else "yellow" if limit and left / limit < 0.1 else "green"
        lines.append(
            f"  {name.capitalize():<12}{amount_text(budget, used)} of {amount_text(budget, limit)} used, "
            f"[{style}]{amount_text(budget, left)} left[/]"
        )
    cap = "no cap" if quota.max_running is None else f"at most {quota.max_running:,}"
    lines.append(f"  {'Running':<12}{quota.running:,} now ({cap})")
    if quota.exhausted:
        lines.append(
            f"  [yellow]⏸ The {quota.exhausted} budget is spent: {quota.paused_jobs} job(s) paused until it is raised"
            + (" or the period rolls over" if quota.period != "total" else "")
            + "[/]"
        )
    elif quota.paused_jobs:
        lines.append(f"  [yellow]⏸ {quota.paused_jobs} job(s) paused for quota[/]")
    return "\n".join(lines)
