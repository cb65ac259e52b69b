"""Outbound webhook events of the order lifecycle.

Each event goes through `webhook_event_publish`, which records the deliveries
and their outbox messages in the transaction it runs in, so an event is sent
if and only if that transaction commits.

- order.created: `order_created_publish`, called by the entry points (the
  API's checkout start, the checkout page) once StartCheckout has returned
  an order to the buyer. Not from inside the workflow: its start phase is the
  hot path of a rush, and an order it voids again (sold out while reserving)
  was never the buyer's. (So a free order, paid inside StartCheckout, is
  announced paid just before it is announced created.)
- order.cancelled: when a pending order is cancelled or its hold expires
  unpaid (django-fsm's post_transition, connected in apps.py), inside the
  transaction that saves the change; `status` in the payload says which.
  Cancelling through the API only asks the checkout to end (it closes the
  payment page first, and a payment caught in flight wins): this event says
  that it did. Orders voided by a failed StartCheckout are not announced,
  as they never were created for the caller.
- order.paid, then ticket.issued per ticket: `order_paid_publish`, called by
  CompleteCheckout inside the transaction that marks the order paid, so they
  are sent if and only if the order is paid, even through a crash right
  after its commit; CompleteCheckout pays an order once.

Payloads are the API's own representations (ticketing.api.serializers): an
integrator sees the same fields as in GET /api/v1/orders/{id}/.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.dispatch import receiver
from django_fsm.signals import post_transition

from ticketing.api.serializers.orders import OrderSerializer, TicketSerializer
from ticketing.models import Order, OrderStatus, Ticket, TicketStatus, WebhookSubscription
from ticketing.services.outbound_webhooks import webhook_event_publish

logger = logging.getLogger(__name__)

ENDED_UNPAID = frozenset({OrderStatus.CANCELLED, OrderStatus.EXPIRED})
# The reason StartCheckout's compensation (workflows.checkout.start.void_order)
# gives when it voids the order of a checkout that failed; tested in
# tests/api/test_checkouts.py.
VOIDED_REASON = "checkout could not be completed"


def order_payload(order: Order) -> dict[str, Any]:
    return {"order": dict(OrderSerializer(order).data)}


def subscribed_event_types(*, organization_id: int, event_types: tuple[str, ...]) -> set[str]:
    """Which of `event_types` an active subscription of the organization wants (one query)."""
    # Unordered: this runs on every checkout and payment.
    subscriptions = WebhookSubscription.objects.filter(organization_id=organization_id, is_active=True).order_by()
    return {t for s in subscriptions for t in event_types if s.wants(t)}


def anyone_subscribed(table: str) -> str:
    """An SQL expression for ticketing.rows.select's `annotate`, correlated
    to `table`'s organization_id: whether that organization has an active
    webhook subscription. A hot path learns it from a query it makes anyway
    (the checkout's read of its ticket types, CompleteCheckout's lock of the
    order), and then skips the subscriptions' own query when nobody listens."""
    return (
        'EXISTS (SELECT 1 FROM "ticketing_webhooksubscription" AS "subscription" '  # noqa: S608
        f'WHERE "subscription"."organization_id" = "{table}"."organization_id" AND "subscription"."is_active")'
    )


def order_created_publish(*, order_id: int, organization_id: int, subscribed: bool = True) -> None:
    """order.created, in its own transaction (the order's committed already).
    One query when nobody listens, none if the caller knows it already
    (`subscribed` False, from `anyone_subscribed`): it runs in the checkout
    request."""
    if not subscribed:
        return
    if not subscribed_event_types(organization_id=organization_id, event_types=("order.created",)):
        return
    with transaction.atomic():
        order = Order.objects.get(pk=order_id)
        webhook_event_publish(organization_id=organization_id, event_type="order.created", payload=order_payload(order))


@receiver(post_transition, sender=Order, dispatch_uid="ticketing.integrations.order_cancelled")
def publish_order_cancelled(sender: type, instance: Order, source: str, target: str, **kwargs: Any) -> None:
    # Inside the service's transaction (ticketing.audit insists on it): the
    # event commits or rolls back with the change.
    if source == target or target not in ENDED_UNPAID:
        return
    if (kwargs.get("method_kwargs") or {}).get("reason") == VOIDED_REASON:
        return
    webhook_event_publish(
        organization_id=instance.organization_id, event_type="order.cancelled", payload=order_payload(instance)
    )


def order_paid_publish(*, order_id: int, organization_id: int, subscribed: bool = True) -> int:
    """order.paid and one ticket.issued per valid ticket, in the caller's
    transaction (the one that marks the order paid). Returns the number of
    events published. One query when nobody listens, none if the caller
    knows it already (`subscribed` False, from `anyone_subscribed` read in
    this transaction): this runs in the payment confirmation, a hot path."""
    assert transaction.get_connection().in_atomic_block, "published with the payment that causes it"
    if not subscribed:
        return 0
    wanted = subscribed_event_types(organization_id=organization_id, event_types=("order.paid", "ticket.issued"))
    if not wanted:
        return 0
    published = 0
    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        return 0
    if "order.paid" in wanted:
        webhook_event_publish(organization_id=organization_id, event_type="order.paid", payload=order_payload(order))
        published += 1
    if "ticket.issued" in wanted:
        tickets = Ticket.objects.filter(order_id=order.pk, status=TicketStatus.VALID).select_related("order")
        for ticket in tickets:
            webhook_event_publish(
                organization_id=organization_id,
                event_type="ticket.issued",
                payload={"ticket": dict(TicketSerializer(ticket).data)},
            )
            published += 1
    return published


def event_publish_if_wanted(*, organization_id: int, event_type: str, payload: dict[str, Any]) -> None:
    """Publish `event_type` inside the caller's transaction when a subscription
    wants it (one query when nobody listens). For the events that workflows
    announce as part of their own change: order.refunded, ticket.transferred,
    ticket.revoked, settlement.completed, payout.paid, payout.failed, and
    checkin.created (an admitted entry, workflows.scanning.process_scan)."""
    assert transaction.get_connection().in_atomic_block, "published with the change that causes it"
    if subscribed_event_types(organization_id=organization_id, event_types=(event_type,)):
        webhook_event_publish(organization_id=organization_id, event_type=event_type, payload=payload)


def ticket_payload(ticket: Ticket) -> dict[str, Any]:
    return {"ticket": dict(TicketSerializer(ticket).data)}
