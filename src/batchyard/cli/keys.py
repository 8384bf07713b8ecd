"""``batchyard keys ...``: API keys for the HTTP API, managed on the local database (the server's)."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.text import Text

from batchyard.cli.common import (
    AppOption,
    JsonOption,
    err,
    hint_command,
    open_app,
    out,
    print_json,
)
from batchyard.core import humanize
from batchyard.core.records import ApiKeyRecord
from batchyard.core.roles import Role
from batchyard.errors import InvalidRequest, NotFound
from batchyard.services.auth import KEY_PREFIX

if TYPE_CHECKING:
    from rich.table import Table

    from batchyard.services.keys import KeyService

keys_app = typer.Typer(
    name="keys",
    no_args_is_help=True,
    rich_markup_mode="rich",
    help="API keys for the HTTP API: [cyan]create, list, revoke[/]. They act on the database the server uses "
    "(--data-dir / --db, as for [cyan]batchyard serve[/]).",
)


@keys_app.command("create")
def create(
    ctx: typer.Context,
    owner: Annotated[
        str,
        typer.Option(
            "--owner",
            metavar="NAME",
            show_default=False,
            help="Whose jobs and files the key reaches (members and viewers see only their owner's).",
        ),
    ],
    role: Annotated[
        Role,
        typer.Option(
            "--role",
            metavar="admin|member|viewer",
            case_sensitive=False,
            help="admin: everything of every owner; member: its owner's jobs and files; viewer: read-only.",
        ),
    ] = Role.MEMBER,
    name: Annotated[
        str | None,
        typer.Option("--name", metavar="TEXT", help="A note to recognise the key by in lists, e.g. 'ci' or 'laptop'."),
    ] = None,
    app: AppOption = None,
) -> None:
    """Create an API key and print it, and nothing else, on stdout.

    Only a hash of the key is stored: it is shown this once. A note about it goes to stderr.

    [bold]Examples[/]

      [cyan]batchyard keys create --owner alice --role member --name laptop[/]

      [cyan]export BATCHYARD_API_KEY=$(batchyard keys create --owner ci --role member)[/]
    """
    with open_app(ctx, app) as by:
        key, record = by.keys.create(owner=owner, role=role, name=name)
    sys.stdout.write(key + "\n")
    sys.stdout.flush()
    err.print(
        f"[green]✔[/] Created key [cyan]{record.id}[/] ({record.prefix}…) for owner [bold]"
        f"{escape(record.owner)}[/], role {record.role}. It is shown only this once: keep it somewhere safe.",
        soft_wrap=True,
    )
    err.print(
        "[dim]Use it as 'Authorization: Bearer <key>', or BATCHYARD_API_KEY=<key> with --url for the CLI.[/]",
        soft_wrap=True,
    )


@keys_app.command("list")
def list_keys(
    ctx: typer.Context,
    owner: Annotated[str | None, typer.Option("--owner", metavar="NAME", help="Only this owner's keys.")] = None,
    json_output: JsonOption = False,
    app: AppOption = None,
) -> None:
    """List API keys (by id and prefix; the keys themselves are not stored), oldest first.

    [bold]Examples[/]

      [cyan]batchyard keys list[/]

      [cyan]batchyard keys list --owner alice --json[/]
    """
    with open_app(ctx, app) as by:
        records = by.keys.list(owner=owner)
    if json_output:
        from batchyard.wire import KeyOut

        print_json([KeyOut.of(r).model_dump(mode="json") for r in records])
    elif not records:
        which = f" for owner {owner!r}" if owner else ""
        create_hint = hint_command(ctx, app, "keys create", "--owner", "NAME", "--role", "member")
        out.print(f"No API keys{escape(which)} yet. Create one: [cyan]{create_hint}[/]", soft_wrap=True)
    else:
        out.print(keys_table(records, time.time()))


@keys_app.command("revoke")
def revoke(
    ctx: typer.Context,
    key_id: Annotated[
        str,
        typer.Argument(
            metavar="KEY_ID", show_default=False, help="The key's id (key_...) or prefix (by_...), from keys list."
        ),
    ],
    json_output: JsonOption = False,
    app: AppOption = None,
) -> None:
    """Revoke an API key: every request with it is refused (401) from now on. It cannot be undone.

    [bold]Examples[/]

      [cyan]batchyard keys revoke key_0123456789abcdef[/]

      [cyan]batchyard keys revoke by_AbCdEfGh[/]
    """
    with open_app(ctx, app) as by:
        record = find_key(by.keys, key_id)
        newly = by.keys.revoke(record.id)
        record = by.keys.get(record.id)
    if json_output:
        from batchyard.wire import KeyOut

        print_json({**KeyOut.of(record).model_dump(mode="json"), "already_revoked": not newly})
    elif newly:
        out.print(
            f"[green]✔[/] Revoked [cyan]{record.id}[/] ({record.prefix}…, owner {escape(record.owner)}, "
            f"role {record.role})",
            soft_wrap=True,
        )
    else:
        out.print(
            f"[yellow]{record.id} was already revoked[/] "
            f"({humanize.ago(record.revoked_at, time.time())}); nothing changed.",
            soft_wrap=True,
        )


def find_key(keys: KeyService, key_id: str) -> ApiKeyRecord:
    """A key by id, or by prefix (``by_`` and 8 characters, as listed). Never by the secret itself."""
    key_id = key_id.strip()
    with contextlib.suppress(NotFound):
        return keys.get(key_id)
    if key_id.startswith(KEY_PREFIX):
        matches = [r for r in keys.list() if r.prefix == key_id]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidRequest(
                f"prefix {key_id!r} matches {len(matches)} keys "
                f"({', '.join(r.id for r in matches)}); revoke one by its id",
                param="key_id",
            )
    raise NotFound(
        f"no API key {key_id!r}: pass an id (key_...) or prefix (by_...) from 'batchyard keys list'", param="key_id"
    )


def keys_table(records: list[ApiKeyRecord], now: float) -> Table:
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold", pad_edge=False, box=None, padding=(0, 2, 0, 0))
    table.add_column("ID", style="cyan", no_wrap=True)
    table.add_column("Prefix", no_wrap=True)
    table.add_column("Owner", no_wrap=True, max_width=24, overflow="ellipsis")
    table.add_column("Role", no_wrap=True)
    table.add_column("Name", max_width=24, overflow="ellipsis")
    table.add_column("Created", justify="right", no_wrap=True)
    table.add_column("Last used", justify="right", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    for r in records:
        status = (
            Text(f"revoked {humanize.ago(r.revoked_at, now)}", style="red")
            if r.revoked_at is not None
            else Text("active", style="green")
        )
        table.add_row(
            r.id,
            f"{r.prefix}…",
            escape(r.owner),
            r.role,
            escape(r.name or "-"),
            humanize.ago(r.created_at, now),
            humanize.ago(r.last_used_at, now) if r.last_used_at else "never",
            status,
            style="dim" if r.revoked_at is not None else None,
        )
    return table
