"""Seat maps (live seat status) and seat holds, over the seating services."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from seating.api.serializers import (
    SeatHoldCreateSerializer,
    SeatHoldFilterSerializer,
    SeatHoldSerializer,
    SeatMapSerializer,
)
from seating.models import SeatHold
from seating.selectors import seat_map_for_event
from seating.services.best_available import seat_hold_best_available
from seating.services.holds import seat_hold_create, seat_hold_release
from ticketing.api.base import ApiView, PublicApiView
from ticketing.api.fields import ReasonSerializer
from ticketing.api.pagination import ApiPagination
from ticketing.api.permissions import BOX_OFFICE, audit_actor
from ticketing.exceptions import NotFound
from ticketing.models import Event, EventStatus

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
