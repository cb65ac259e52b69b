"""Seat maps (live seat status) and seat holds, over the seating services.

Staff and tokens manage any hold of their organization's events. Buyers
(public, no credentials, throttled per IP) hold seats for themselves: the
chosen ones or the best available, exactly as the seat map page does, and get
the hold's token, which is their only credential for it: they send it with the
same seats to the public checkout, which adopts the hold for the order
(seating.services.holds.seat_hold_adopt), or release the hold by it. No public
endpoint lists or looks up holds by anything but their token."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from seating.api.serializers import (
    PublicSeatHoldCreateSerializer,
    PublicSeatHoldSerializer,
    SeatHoldCreateSerializer,
    SeatHoldFilterSerializer,
    SeatHoldSerializer,
    SeatMapSerializer,
)
from seating.exceptions import SeatHoldInUse, SeatHoldNotFound, UnknownCategory
from seating.models import PriceCategory, Seat, SeatHold, SeatHoldStatus
from seating.selectors import hold_is_live, seat_map_for_event
from seating.services.best_available import seat_hold_best_available
from seating.services.holds import seat_hold_create, seat_hold_release
from ticketing.api.base import ApiView, PublicApiView
from ticketing.api.fields import ReasonSerializer
from ticketing.api.pagination import ApiPagination
from ticketing.api.permissions import BOX_OFFICE, audit_actor
from ticketing.exceptions import NotFound, NotOnSale
from ticketing.models import Event, EventStatus
from workflows.checkout.cart import cart_price

TAGS = ["seating"]


def _seat_map_response(event_id: int) -> Response:
    seat_map = seat_map_for_event(event_id=event_id)
    if seat_map is None:
        raise NotFound("This event has no seating plan.")
    return Response(SeatMapSerializer(seat_map).data)


class SeatMapView(ApiView):
    read_roles = BOX_OFFICE

    @extend_schema(tags=TAGS, responses=SeatMapSerializer)
    def get(self, request: Request, pk: int) -> Response:
        event = self.get_scoped(Event.objects.all(), pk)
        return _seat_map_response(event.pk)


class PublicSeatMapView(PublicApiView):
    @extend_schema(tags=["public"], responses=SeatMapSerializer, auth=[])
    def get(self, request: Request, pk: int) -> Response:
        if not Event.objects.filter(pk=pk, status=EventStatus.ON_SALE).exists():
            raise NotFound("This event does not exist or is not on sale.")
        return _seat_map_response(pk)


class EventSeatHoldsView(ApiView):
    read_roles = BOX_OFFICE
    write_roles = BOX_OFFICE
    pagination_class = ApiPagination

    @extend_schema(tags=TAGS, parameters=[SeatHoldFilterSerializer], responses=SeatHoldSerializer(many=True))
    def get(self, request: Request, pk: int) -> Response:
        filters = self.parse(SeatHoldFilterSerializer, request.query_params)
        event = self.get_scoped(Event.objects.all(), pk)
        holds = SeatHold.objects.filter(event=event)
        if "status" in filters:
            holds = holds.filter(status=filters["status"])
        return self.paginated(request, holds.order_by("-id"), SeatHoldSerializer)

    @extend_schema(tags=TAGS, request=SeatHoldCreateSerializer, responses={201: SeatHoldSerializer})
    def post(self, request: Request, pk: int) -> Response:
        data = self.parse(SeatHoldCreateSerializer, request.data)
        event = self.get_scoped(Event.objects.all(), pk)
        expires_at = timezone.now() + timedelta(minutes=data["minutes"])
        if "seat_ids" in data:
            hold = seat_hold_create(
                event_id=event.pk,
                seat_ids=data["seat_ids"],
                expires_at=expires_at,
                reference=data["reference"],
                by=audit_actor(request),
            )
        else:
            hold = seat_hold_best_available(
                event_id=event.pk,
                category_id=data["category"],
                quantity=data["quantity"],
                expires_at=expires_at,
                reference=data["reference"],
                by=audit_actor(request),
            )
        return Response(SeatHoldSerializer(hold).data, status=status.HTTP_201_CREATED)


class SeatHoldDetailView(ApiView):
    read_roles = BOX_OFFICE
    write_roles = BOX_OFFICE

    @extend_schema(tags=TAGS, responses=SeatHoldSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(SeatHoldSerializer(self.get_scoped(SeatHold.objects.all(), pk)).data)


class SeatHoldReleaseView(ApiView):
    read_roles = BOX_OFFICE
    write_roles = BOX_OFFICE

    @extend_schema(tags=TAGS, request=ReasonSerializer, responses=SeatHoldSerializer)
    def post(self, request: Request, pk: int) -> Response:
        data = self.parse(ReasonSerializer, request.data)
        hold = self.get_scoped(SeatHold.objects.all(), pk)
        seat_hold_release(hold_id=hold.pk, by=audit_actor(request), reason=data["reason"] or "released through the API")
        hold.refresh_from_db()
        return Response(SeatHoldSerializer(hold).data)


# --- buyers: public holds by token ----------------------------------------------------


def _public_hold_body(hold: SeatHold, *, now: datetime) -> dict[str, Any]:
    """The hold as its buyer sees it: its seats named, the time left."""
    rows = Seat.objects.filter(pk__in=hold.seat_ids).order_by("pk")
    seats = [
        {
            "id": seat["id"],
            "label": seat["label"],
            "section": seat["row__section__name"],
            "row": seat["row__label"],
            "number": seat["number"],
            "category": seat["category_id"],
            "ticket_type": seat["category__ticket_type_id"],
            "price_cents": seat["category__ticket_type__price_cents"],
        }
        for seat in rows.values(
            "id",
            "label",
            "number",
            "row__label",
            "row__section__name",
            "category_id",
            "category__ticket_type_id",
            "category__ticket_type__price_cents",
        )
    ]
    live = hold_is_live(hold_status=hold.status, expires_at=hold.expires_at, now=now)
    return {
        "token": hold.token,
        "event": hold.event_id,
        "status": hold.status,
        "seats": seats,
        "expires_at": hold.expires_at,
        "seconds_left": max(0, int((hold.expires_at - now).total_seconds())) if live else 0,
    }


def _event_for_buyers(pk: int) -> Event:
    """A published event (404 for a draft, like every public read); holding
    needs it on sale (409 not_on_sale once sales closed)."""
    event = Event.objects.exclude(status=EventStatus.DRAFT).filter(pk=pk).first()
    if event is None:
        raise NotFound("This event does not exist or is not on sale.")
    if not event.is_on_sale:
        raise NotOnSale("This event is not on sale.", detail={"event": event.pk})
    return event


def _check_best_available_orderable(*, event: Event, category_id: int, quantity: int, now: datetime) -> None:
    """What the checkout would refuse for `quantity` seats of the category
    (its ticket type's sales window and per-order limits), refused before
    holding, as on the seat map page."""
    category = (
        PriceCategory.objects.select_related("ticket_type__event")
        .filter(pk=category_id, plan__event_id=event.pk)
        .first()
    )
    if category is None:
        raise UnknownCategory(detail={"category": category_id, "event": event.pk})
    category.ticket_type.check_orderable(quantity=quantity, at=now)


class PublicEventSeatHoldCreateView(PublicApiView):
    @extend_schema(
        tags=["public"],
        operation_id="public_events_seat_holds_create",
        summary="Hold seats for a buyer",
        description=(
            "Hold `seats` (ids from the public seat map), or the best available `quantity` seats of a "
            "`category`, all or nothing, for the seat hold time (15 minutes by default). The checks are the "
            "checkout's: the event on sale, the sales window and per-order limits of the seats' ticket types, "
            "seats of this event that are not blocked. Best available picks and holds under the seats' locks, "
            "so two buyers never get the same seats. Errors: 409 `seat_unavailable` (`detail.seat_ids` names "
            "the seats just taken; nothing is held), 409 `no_seats_available` (too few seats of the category "
            "left, or, with `detail.reason` `lost_race`, taken while choosing: try again), 409 `seat_blocked`, "
            "400 `unknown_seat`, `seat_wrong_event`, `unknown_category`, `invalid_seat_selection`, "
            "`orphan_seat`, `invalid_quantity`, 429 `busy`. Keep the returned token secret: send it with the "
            "same seats as `seat_hold_token` to POST /api/v1/public/checkouts/, or release the hold with it."
        ),
        request=PublicSeatHoldCreateSerializer,
        responses={201: PublicSeatHoldSerializer},
        auth=[],
    )
    def post(self, request: Request, pk: int) -> Response:
        data = self.parse(PublicSeatHoldCreateSerializer, request.data)
        event = _event_for_buyers(pk)
        now = timezone.now()
        expires_at = now + timedelta(minutes=settings.SEAT_HOLD_MINUTES)
        if "seats" in data:
            # The checkout's own validation, so a hold is never made for seats that cannot be bought.
            cart_price(event_id=event.pk, seat_ids=data["seats"], now=now)
            hold = seat_hold_create(event_id=event.pk, seat_ids=data["seats"], expires_at=expires_at, now=now)
        else:
            _check_best_available_orderable(
                event=event, category_id=data["category"], quantity=data["quantity"], now=now
            )
            hold = seat_hold_best_available(
                event_id=event.pk,
                category_id=data["category"],
                quantity=data["quantity"],
                expires_at=expires_at,
                now=now,
            )
        return Response(PublicSeatHoldSerializer(_public_hold_body(hold, now=now)).data, status=status.HTTP_201_CREATED)


class PublicSeatHoldReleaseView(PublicApiView):
    @extend_schema(
        tags=["public"],
        operation_id="public_seat_holds_release",
        summary="Release a buyer's seat hold",
        description=(
            "Give the held seats back, by the hold's token. Safe to repeat: a hold already released or "
            "expired answers 200 with its status. A hold that a checkout adopted belongs to that order: "
            "409 `seat_hold_in_use` (cancel the order instead). An unknown token: 404 `seat_hold_not_found`."
        ),
        request=None,
        responses={200: PublicSeatHoldSerializer},
        auth=[],
    )
    def post(self, request: Request, token: str) -> Response:
        hold = SeatHold.objects.filter(token=token).first()
        if hold is None:
            raise SeatHoldNotFound()
        if hold.reference and hold.status in (SeatHoldStatus.ACTIVE, SeatHoldStatus.CONVERTED):
            # Adopted by an order (or made by staff for one): the order's, not the token's, to let go.
            # Re-checked under the hold's lock by the service, as a checkout may adopt it meanwhile.
            raise SeatHoldInUse(detail={"order": hold.reference})
        seat_hold_release(hold_id=hold.pk, reason="released by the buyer through the API", unclaimed_only=True)
        hold.refresh_from_db()
        return Response(PublicSeatHoldSerializer(_public_hold_body(hold, now=timezone.now())).data)
