"""Webhooks: endpoints (add with their secret shown once, list, get, delete), their delivery log, redelivery,
and the owner's default secret (for jobs' own ``webhook_url``). Who may do what: :mod:`batchyard.services.webhooks`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import Field

from batchyard.api.bodies import PlainText, RequestModel
from batchyard.api.deps import BatchyardDep, PrincipalDep
from batchyard.core.notifications import EVENT_TYPES
from batchyard.wire import (
    DeliveryOut,
    ErrorResponse,
    NewWebhookOut,
    Page,
    RedeliveryOut,
    WebhookOut,
    WebhookSecretOut,
)

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])
_E = {"model": ErrorResponse}
MAX_PAGE = 200


class WebhookCreate(RequestModel):
    url: PlainText = Field(min_length=1, max_length=2000, description="http(s) URL that receives the POSTs")
    events: list[PlainText] = Field(
        default_factory=list,
        max_length=len(EVENT_TYPES),
        description=f"Events to send: {', '.join(EVENT_TYPES)}. Empty or left out: all of them",
    )
    owner: PlainText | None = Field(None, max_length=200, description="Admins only; default: the caller's owner")


@router.post(
    "",
    status_code=201,
    summary="Add a webhook endpoint (its signing secret is shown only in this answer)",
    responses={400: _E, 401: _E, 403: _E, 422: _E},
)
def create_webhook(body: WebhookCreate, app: BatchyardDep, principal: PrincipalDep) -> NewWebhookOut:
    record, secret = app.webhooks.create(principal, url=body.url, events=body.events, owner=body.owner)
    return NewWebhookOut.of_new(record, secret)


@router.get("", summary="List webhook endpoints, oldest first", responses={400: _E, 401: _E, 403: _E})
def list_webhooks(
    app: BatchyardDep,
    principal: PrincipalDep,
    owner: Annotated[str | None, Query(max_length=200, description="Admins only")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=100, description="next_cursor of the previous page")] = None,
) -> Page[WebhookOut]:
    records, next_cursor = app.webhooks.list_webhooks(principal, owner=owner, cursor=cursor, limit=limit)
    return Page[WebhookOut](
        data=[WebhookOut.of(r) for r in records], has_more=next_cursor is not None, next_cursor=next_cursor
    )


@router.get(
    "/secret",
    summary="The owner's default signing secret (made on first use), for jobs' own webhook_url",
    responses={400: _E, 401: _E, 403: _E},
)
def default_secret(
    app: BatchyardDep,
    principal: PrincipalDep,
    owner: Annotated[str | None, Query(max_length=200, description="Admins only")] = None,
) -> WebhookSecretOut:
    whose, secret = app.webhooks.default_secret(principal, owner=owner)
    return WebhookSecretOut(owner=whose, secret=secret)


@router.get("/{webhook_id}", summary="Get a webhook endpoint (never its secret)", responses={401: _E, 404: _E})
def get_webhook(webhook_id: str, app: BatchyardDep, principal: PrincipalDep) -> WebhookOut:
    return WebhookOut.of(app.webhooks.get(webhook_id, principal))


@router.delete(
    "/{webhook_id}",
    status_code=204,
    summary="Delete a webhook endpoint (its pending messages and log too)",
    responses={401: _E, 403: _E, 404: _E},
)
def delete_webhook(webhook_id: str, app: BatchyardDep, principal: PrincipalDep) -> Response:
    app.webhooks.delete(webhook_id, principal)
    return Response(status_code=204)


@router.get(
    "/{webhook_id}/deliveries",
    summary="The endpoint's delivery attempts, newest first",
    responses={400: _E, 401: _E, 404: _E},
)
def list_deliveries(
    webhook_id: str,
    app: BatchyardDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=30, description="next_cursor of the previous page")] = None,
) -> Page[DeliveryOut]:
    records, next_cursor = app.webhooks.deliveries(webhook_id, principal, cursor=cursor, limit=limit)
    return Page[DeliveryOut](
        data=[DeliveryOut.of(r) for r in records], has_more=next_cursor is not None, next_cursor=next_cursor
    )


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    summary="Send a delivery's message again now (same webhook-id and body, a fresh retry schedule)",
    responses={401: _E, 403: _E, 404: _E},
)
def redeliver(webhook_id: str, delivery_id: str, app: BatchyardDep, principal: PrincipalDep) -> RedeliveryOut:
    """`delivery_id` is an attempt's `id` from the delivery log, or the message's `webhook_id` (`msg_...`)."""
    return RedeliveryOut.of(app.webhooks.redeliver(webhook_id, delivery_id, principal))
