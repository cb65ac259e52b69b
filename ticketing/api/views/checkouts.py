"""Checkouts for buyers: start one, read and cancel the order by its code.

A seated checkout may bring the buyer's seat hold (its token, with the same
seats): the order adopts that hold instead of holding the seats again.

No token is needed (the public throttle limits each IP); a token caller may
use them too. The unguessable order code is the buyer's credential: these
views never show another order, nor personal data. Starting a checkout is the
hot path of a rush: one workflow call, then one read of the order (its fee
breakdown, the order.created webhook event) and the subscription lookup."""

from __future__ import annotations

from django.db.models import Count, IntegerField, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from seating.exceptions import SeatHoldExpired, SeatHoldInUse, SeatHoldMismatch, SeatHoldNotFound
from seating.selectors import seat_hold_for_token
from ticketing.api.base import PublicApiView
from ticketing.api.idempotency import idempotent_public_code
from ticketing.api.serializers.checkouts import CheckoutSerializer, CheckoutStartSerializer, PublicOrderSerializer
from ticketing.exceptions import InvalidState, NotFound
from ticketing.integrations import order_created_publish
from ticketing.models import Order, OrderLine, OrderStatus, Ticket
from workflows.checkout.cancel import cancel_checkout
from workflows.checkout.start import checkout_exists, start_checkout
from workflows.exceptions import RunNotFound

TAGS = ["public"]
MAX_CODE_LENGTH = 32
FEE_FIELDS = (
    "subtotal_cents",
    "platform_fee_cents",
    "processor_fee_cents",
    "buyer_fees_cents",
    "donation_cents",
    "total_cents",
)


def order_with_counts(**lookup: object) -> Order | None:
    """The order with `quantity` (ordered) and `tickets_issued`, in one query."""
    quantity = (
        OrderLine.objects.filter(order=OuterRef("pk")).values("order").annotate(total=Sum("quantity")).values("total")
    )
    issued = Ticket.objects.filter(order=OuterRef("pk")).values("order").annotate(n=Count("id")).values("n")
    return (
        Order.objects.filter(**lookup)
        .annotate(
            quantity=Coalesce(Subquery(quantity, output_field=IntegerField()), Value(0)),
            tickets_issued=Coalesce(Subquery(issued, output_field=IntegerField()), Value(0)),
        )
        .first()
    )


def public_order(code: str) -> Order:
    order = order_with_counts(code=code) if 0 < len(code) <= MAX_CODE_LENGTH else None
    if order is None:
        raise NotFound("There is no order with this code.")
    return order


def seat_hold_adoptable_check(*, token: str, event_id: int, seat_ids: list[int]) -> None:
    """Refuse, before any run starts, a seat hold the checkout could not adopt:
    the read the checkout page makes too (ticketing.views.checkout). The
    same errors, in the same order, as seat_hold_adopt, which re-checks all
    of it under the seats' locks in the run."""
    held = seat_hold_for_token(token=token, event_id=event_id)
    if held is None:
        raise SeatHoldNotFound(detail={"event": event_id})
    if not held.live:
        raise SeatHoldExpired(detail={"status": held.status, "expires_at": held.expires_at.isoformat()})
    if held.reference:
        raise SeatHoldInUse(detail={"order": held.reference})
    # Duplicates are the cart's error (invalid_seat_selection), not a mismatch.
    if sorted(set(seat_ids)) != held.seat_ids:
        raise SeatHoldMismatch(detail={"held": held.seat_ids, "requested": sorted(set(seat_ids))})


def order_checkout_cancel(*, order: Order) -> None:
    """Ask the order's checkout to end unpaid. The checkout closes the payment
    page first (a payment caught in flight wins), so the order is cancelled
    asynchronously: callers answer 202. A repeat is harmless."""
    if order.status == OrderStatus.CANCELLED:
        return
    if order.status != OrderStatus.PENDING:
        raise InvalidState("Only a pending order can be cancelled.", detail={"status": order.status})
    try:
        cancel_checkout(order_code=order.code)
    except RunNotFound as exc:
        raise InvalidState("This order has no open checkout to cancel.", detail={"order": order.code}) from exc


class PublicCheckoutStartView(PublicApiView):
    @extend_schema(
        tags=TAGS,
        description=(
            "Start a checkout: general-admission `tickets` and/or `seats`. Seats are held for the order here, "
            "or, with `seat_hold_token`, the buyer's own seat hold (POST /api/v1/public/events/{id}/seat-holds/) "
            "is taken over by the order, no second hold. Answers the payment page and the fee breakdown."
        ),
        request=CheckoutStartSerializer,
        responses={201: CheckoutSerializer},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = self.parse(CheckoutStartSerializer, request.data)
        # With an Idempotency-Key the order's code comes from it, so a retry
        # whose first answer was lost (say, in a database outage) gets the
        # same checkout, not a second one.
        order_code = idempotent_public_code(request)
        seat_hold_token = data.get("seat_hold_token") or ""
        if seat_hold_token and not (order_code and checkout_exists(order_code=order_code)):
            seat_hold_adoptable_check(token=seat_hold_token, event_id=data["event"], seat_ids=data["seats"])
        started = start_checkout(
            event_id=data["event"],
            buyer_name=data["buyer_name"],
            buyer_email=data["buyer_email"],
            tickets=data.get("tickets") or [],
            seat_ids=data.get("seats") or [],
            donation_cents=data["donation_cents"],
            return_url=data.get("return_url"),
            seat_hold_token=seat_hold_token,
            order_code=order_code,
        )
        order_created_publish(
            order_id=started.order_id, organization_id=started.organization_id or 0, subscribed=started.subscribed
        )
        snapshot = started.fees or {}
        body = {
            "order_code": started.order_code,
            "order_id": started.order_id,
            "payment_url": started.payment_url,
            "expires_at": started.expires_at,
            "total_cents": started.total_cents,
            "currency": started.currency,
            "fees": {name: int(snapshot.get(name) or 0) for name in FEE_FIELDS},
        }
        return Response(CheckoutSerializer(body).data, status=status.HTTP_201_CREATED)


class PublicOrderDetailView(PublicApiView):
    @extend_schema(tags=TAGS, responses=PublicOrderSerializer, auth=[])
    def get(self, request: Request, code: str) -> Response:
        return Response(PublicOrderSerializer(public_order(code)).data)


class PublicOrderCancelView(PublicApiView):
    @extend_schema(tags=TAGS, request=None, responses={202: PublicOrderSerializer}, auth=[])
    def post(self, request: Request, code: str) -> Response:
        order_checkout_cancel(order=public_order(code))
        return Response(PublicOrderSerializer(public_order(code)).data, status=status.HTTP_202_ACCEPTED)
