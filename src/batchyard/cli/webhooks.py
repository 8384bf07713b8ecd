"""``batchyard webhooks ...``: webhook endpoints, on the local database (the server's) or a server (``--url``)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from batchyard.cli.common import AppOption, JsonOption, KeyOption, UrlOption, open_app, open_client, out, print_json
from batchyard.core import humanize
from batchyard.core.notifications import EVENT_TYPES

if TYPE_CHECKING:
    from rich.table import Table

    from batchyard.wire import DeliveryOut, WebhookOut

webhooks_app = typer.Typer(
    name="webhooks",
    no_args_is_help=True,
    rich_markup_mode="rich",
    help=f"""Webhook endpoints: [cyan]add, list, remove[/], and each one's [cyan]deliveries[/] ([cyan]redeliver[/]).

Batchyard POSTs a JSON event to each endpoint when a job of its owner ends or pauses: {", ".join(EVENT_TYPES)}.

Every request is signed as Standard Webhooks says (headers webhook-id, webhook-timestamp, webhook-signature) with the endpoint's secret, shown once by [cyan]add[/]; verify it with the [bold]standardwebhooks[/] package. Failed deliveries are retried for about 27 hours (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h).

They act on the database the server uses (--data-dir / --db), or on a server with --url and --key.""",  # noqa: E501
)


EventOption = Annotated[
    list[str] | None,
    typer.Option(
        "--event",
        "-e",
        metavar="EVENT",
        help=f"An event to send (repeatable): {', '.join(EVENT_TYPES)}. None given: all of them.",
    ),
]
OwnerOption = Annotated[
    str | None,
    typer.Option("--owner", metavar="NAME", help="Whose jobs (default: yours; another owner's takes an admin key)."),
]


class _Local:
    """The local database, through the app's services (as the local admin)."""

    def __init__(self, by: Any) -> None:
        self.by = by

    def add(self, url: str, events: list[str], owner: str | None) -> dict[str, Any]:
        from batchyard.wire import NewWebhookOut

        record, secret = self.by.webhooks.create(url=url, events=events, owner=owner)
        return NewWebhookOut.of_new(record, secret).model_dump(mode="json")

    def listing(self, owner: str | None) -> list[WebhookOut]:
        from batchyard.wire import WebhookOut

        found: list[WebhookOut] = []
        cursor = None
        while True:
            records, cursor = self.by.webhooks.list_webhooks(owner=owner, cursor=cursor, limit=200)
            found += [WebhookOut.of(r) for r in records]
            if cursor is None:
                return found

    def remove(self, webhook_id: str) -> None:
        self.by.webhooks.delete(webhook_id)

    def deliveries(self, webhook_id: str, limit: int) -> list[DeliveryOut]:
        from batchyard.wire import DeliveryOut

        return [DeliveryOut.of(d) for d in self.by.webhooks.deliveries(webhook_id, limit=limit)[0]]

    def redeliver(self, webhook_id: str, delivery_id: str) -> dict[str, Any]:
        from batchyard.wire import RedeliveryOut

        return RedeliveryOut.of(self.by.webhooks.redeliver(webhook_id, delivery_id)).model_dump(mode="json")

    def secret(self, owner: str | None) -> dict[str, Any]:
        whose, secret = self.by.webhooks.default_secret(owner=owner)
        return {"owner": whose, "secret": secret}


class _Remote:
    """A server, through its REST API."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def add(self, url: str, events: list[str], owner: str | None) -> dict[str, Any]:
        made = self.client.create_webhook(url, events=events, owner=owner)
        return dict(made.model_dump(mode="json"))

    def listing(self, owner: str | None) -> list[WebhookOut]:
        return list(self.client.list_webhooks(owner=owner))

    def remove(self, webhook_id: str) -> None:
        self.client.delete_webhook(webhook_id)

    def deliveries(self, webhook_id: str, limit: int) -> list[DeliveryOut]:
        return list(self.client.webhook_deliveries(webhook_id, limit=limit))

    def redeliver(self, webhook_id: str, delivery_id: str) -> dict[str, Any]:
        return dict(self.client.redeliver(webhook_id, delivery_id).model_dump(mode="json"))

    def secret(self, owner: str | None) -> dict[str, Any]:
        return dict(self.client.webhook_secret(owner=owner).model_dump(mode="json"))


@contextlib.contextmanager
def _backend(ctx: typer.Context, url: str | None, key: str | None, app: str | None) -> Iterator[_Local | _Remote]:
    if url:
        with open_client(url, key, app) as client:
            yield _Remote(client)
    else:
        with open_app(ctx, app) as by:
            yield _Local(by)


@webhooks_app.command("add")
def add(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(metavar="URL", show_default=False, help="The http(s) URL to POST to.")],
    event: EventOption = None,
    owner: OwnerOption = None,
    json_output: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
    app: AppOption = None,
) -> None:
    """Add an endpoint and print its signing secret (shown only this once).

    Loopback, private and link-local URLs are refused unless BATCHYARD_ALLOW_PRIVATE_URLS=true (where the
    server runs); cloud metadata addresses always.

    [bold]Examples[/]

      [cyan]batchyard webhooks add https://example.com/hooks --event job.completed --event job.failed[/]

      [cyan]batchyard webhooks add https://example.com/all --url http://127.0.0.1:8000 --json[/]
    """
    with _backend(ctx, url, key, app) as backend:
        made = backend.add(target, list(event or []), owner)
    if json_output:
        print_json(made)
        return
    events = ", ".join(made["events"]) or "every event"
    out.print(
        f"[green]✔[/] Added webhook [bold cyan]{made['id']}[/] for owner {escape(made['owner'])}: "
        f"{escape(made['url'])} ({events})",
        soft_wrap=True,
    )
    out.print(f"  Signing secret (shown only now): [bold]{made['secret']}[/]", soft_wrap=True)
    out.print("  [dim]Verify requests with it, e.g. standardwebhooks.Webhook(secret).verify(body, headers).[/]")


@webhooks_app.command("list")
def list_webhooks(
    ctx: typer.Context,
    owner: Annotated[str | None, typer.Option("--owner", metavar="NAME", help="Only this owner's.")] = None,
    json_output: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
    app: AppOption = None,
) -> None:
    """List webhook endpoints, oldest first (never their secrets).

    [bold]Examples[/]

      [cyan]batchyard webhooks list[/]

      [cyan]batchyard webhooks list --json[/]
    """
    with _backend(ctx, url, key, app) as backend:
        found = backend.listing(owner)
    if json_output:
        print_json([w.model_dump(mode="json") for w in found])
    elif not found:
        out.print("No webhooks yet. Add one: [cyan]batchyard webhooks add URL --event job.completed[/]")
    else:
        out.print(webhooks_table(found, time.time()))


@webhooks_app.command("remove")
def remove(
    ctx: typer.Context,
    webhook_id: Annotated[str, typer.Argument(metavar="ID", show_default=False, help="The endpoint's id (wh_...).")],
    json_output: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
    app: AppOption = None,
) -> None:
    """Remove an endpoint: nothing more is sent to it (its pending deliveries and its log go too).

    [bold]Example[/]

      [cyan]batchyard webhooks remove wh_0123456789abcdef[/]
    """
    with _backend(ctx, url, key, app) as backend:
        backend.remove(webhook_id)
    if json_output:
        print_json({"id": webhook_id, "deleted": True})
    else:
        out.print(f"[green]✔[/] Removed webhook [cyan]{escape(webhook_id)}[/]")


@webhooks_app.command("deliveries")
def deliveries(
    ctx: typer.Context,
    webhook_id: Annotated[str, typer.Argument(metavar="ID", show_default=False, help="The endpoint's id (wh_...).")],
    limit: Annotated[int, typer.Option(min=1, max=200, metavar="N", help="How many attempts.")] = 20,
    json_output: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
    app: AppOption = None,
) -> None:
    """An endpoint's latest delivery attempts, newest first: status code, time, duration, error.

    [bold]Example[/]

      [cyan]batchyard webhooks deliveries wh_0123456789abcdef --limit 50[/]
    """
    with _backend(ctx, url, key, app) as backend:
        found = backend.deliveries(webhook_id, limit)
    if json_output:
        print_json([d.model_dump(mode="json") for d in found])
    elif not found:
        out.print(f"No deliveries to {escape(webhook_id)} yet.")
    else:
        out.print(deliveries_table(found, time.time()))


@webhooks_app.command("redeliver")
def redeliver(
    ctx: typer.Context,
    webhook_id: Annotated[str, typer.Argument(metavar="ID", show_default=False, help="The endpoint's id (wh_...).")],
    delivery_id: Annotated[
        str,
        typer.Argument(metavar="DELIVERY", show_default=False, help="An attempt's id from deliveries, or a msg_ id."),
    ],
    json_output: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
    app: AppOption = None,
) -> None:
    """Send a delivery's message again now (the same webhook-id and body), with a fresh retry schedule."""
    with _backend(ctx, url, key, app) as backend:
        again = backend.redeliver(webhook_id, delivery_id)
    if json_output:
        print_json(again)
    else:
        out.print(f"[green]✔[/] {again['webhook_id']} ({again['event_type']}) will be sent again now")


@webhooks_app.command("secret")
def secret(
    ctx: typer.Context,
    owner: OwnerOption = None,
    json_output: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
    app: AppOption = None,
) -> None:
    """Print the owner's default signing secret, which signs jobs' own --webhook URLs (made on first use)."""
    with _backend(ctx, url, key, app) as backend:
        found = backend.secret(owner)
    if json_output:
        print_json(found)
    else:
        out.print(found["secret"])


def webhooks_table(found: list[WebhookOut], now: float) -> Table:
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold", pad_edge=False, box=None, padding=(0, 2, 0, 0))
    table.add_column("ID", style="cyan", no_wrap=True)
    table.add_column("Owner", no_wrap=True, max_width=24, overflow="ellipsis")
    table.add_column("URL", overflow="fold")
    table.add_column("Events", overflow="fold")
    table.add_column("Created", justify="right", no_wrap=True)
    for w in found:
        table.add_row(
            w.id, escape(w.owner), escape(w.url), ", ".join(w.events) or "all", humanize.ago(w.created_at, now)
        )
    return table


def deliveries_table(found: list[DeliveryOut], now: float) -> Table:
    from rich.table import Table
    from rich.text import Text

    styles = {"delivered": "green", "failed": "yellow", "gave_up": "red"}
    table = Table(show_edge=False, header_style="bold", pad_edge=False, box=None, padding=(0, 2, 0, 0))
    table.add_column("ID", style="cyan", no_wrap=True)
    table.add_column("When", justify="right", no_wrap=True)
    table.add_column("Event", no_wrap=True)
    table.add_column("Job", no_wrap=True)
    table.add_column("Outcome", no_wrap=True)
    table.add_column("Status", justify="right", no_wrap=True)
    table.add_column("Took", justify="right", no_wrap=True)
    table.add_column("Error", overflow="fold")
    table.add_column("webhook-id", style="dim", no_wrap=True)
    for d in found:
        table.add_row(
            d.id,
            humanize.ago(d.at, now),
            d.event_type,
            d.job_id,
            Text(d.outcome, style=styles.get(d.outcome, "")),
            str(d.status_code) if d.status_code is not None else "-",
            f"{d.duration_ms:.0f} ms",
            escape(d.error or ""),
            d.webhook_id,
        )
    return table
