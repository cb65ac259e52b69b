"""Ticket types: staff create/update/read, availability; public read."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from ticketing.api.base import ApiView, PublicApiView
from ticketing.api.permissions import ORDER_READERS
from ticketing.api.serializers.ticket_types import (
    AvailabilitySerializer,
    PublicTicketTypeSerializer,
    TicketTypeCreateSerializer,
    TicketTypeSerializer,
    TicketTypeUpdateSerializer,
)
from ticketing.exceptions import NotFound
from ticketing.models import Event, EventStatus, TicketType
from ticketing.selectors import ticket_type_availability
from ticketing.services.catalog import ticket_type_create
from ticketing.services.catalog_edit import ticket_type_update

TAGS = ["ticket types"]


class EventTicketTypesView(ApiView):
    read_roles = ORDER_READERS

    @extend_schema(tags=TAGS, responses=TicketTypeSerializer(many=True))
    def get(self, request: Request, pk: int) -> Response:
        event = self.get_scoped(Event.objects.all(), pk)
        ticket_types = TicketType.objects.filter(event=event).order_by("position", "id")
        return Response(TicketTypeSerializer(ticket_types, many=True).data)

    @extend_schema(tags=TAGS, request=TicketTypeCreateSerializer, responses={201: TicketTypeSerializer})
    def post(self, request: Request, pk: int) -> Response:
        data = self.parse(TicketTypeCreateSerializer, request.data)
        event = self.get_scoped(Event.objects.all(), pk)
        ticket_type = ticket_type_create(event=event, **data)
        return Response(TicketTypeSerializer(ticket_type).data, status=status.HTTP_201_CREATED)


class TicketTypeDetailView(ApiView):
    read_roles = ORDER_READERS

    @extend_schema(tags=TAGS, responses=TicketTypeSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(TicketTypeSerializer(self.get_scoped(TicketType.objects.all(), pk)).data)

    @extend_schema(tags=TAGS, request=TicketTypeUpdateSerializer, responses=TicketTypeSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        data = self.parse(TicketTypeUpdateSerializer, request.data)
        ticket_type = self.get_scoped(TicketType.objects.all(), pk)
        ticket_type = ticket_type_update(ticket_type_id=ticket_type.pk, changes=data)
        return Response(TicketTypeSerializer(ticket_type).data)


class TicketTypeAvailabilityView(ApiView):
    read_roles = ORDER_READERS

    @extend_schema(tags=TAGS, responses=AvailabilitySerializer)
    def get(self, request: Request, pk: int) -> Response:
        ticket_type = self.get_scoped(TicketType.objects.all(), pk)
        return Response(AvailabilitySerializer(ticket_type_availability(ticket_type=ticket_type)).data)


# --- public -------------------------------------------------------------------------


def _public_ticket_types() -> QuerySet[TicketType]:
    return TicketType.objects.filter(is_active=True, event__status=EventStatus.ON_SALE)


class PublicEventTicketTypesView(PublicApiView):
    @extend_schema(tags=["public"], responses=PublicTicketTypeSerializer(many=True), auth=[])
    def get(self, request: Request, pk: int) -> Response:
        if not Event.objects.filter(pk=pk, status=EventStatus.ON_SALE).exists():
            raise NotFound("This event does not exist or is not on sale.")
        ticket_types = _public_ticket_types().filter(event_id=pk).order_by("position", "id")
        return Response(PublicTicketTypeSerializer(ticket_types, many=True).data)


class PublicAvailabilityView(PublicApiView):
    @extend_schema(tags=["public"], responses=AvailabilitySerializer, auth=[])
    def get(self, request: Request, pk: int) -> Response:
        ticket_type = _public_ticket_types().filter(pk=pk).first()
        if ticket_type is None:
            raise NotFound("This ticket type does not exist or is not on sale.")
        return Response(AvailabilitySerializer(ticket_type_availability(ticket_type=ticket_type)).data)
