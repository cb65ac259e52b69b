"""Events: staff list/create/update and the sales actions; public read of on-sale events."""

from __future__ import annotations

from collections.abc import Callable

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from ticketing.api.base import ApiView, PublicApiView
from ticketing.api.fields import ReasonSerializer
from ticketing.api.pagination import ApiPagination
from ticketing.api.permissions import audit_actor
from ticketing.api.serializers.events import (
    EventCreateSerializer,
    EventFilterSerializer,
    EventSerializer,
    EventUpdateSerializer,
    PublicEventSerializer,
)
from ticketing.exceptions import InvalidInput, NotFound
from ticketing.models import Event, Organization
from ticketing.selectors import events_on_sale
from ticketing.services.catalog import event_create
from ticketing.services.catalog_edit import event_update
from ticketing.services.events import event_cancel, event_close_sales, event_open_sales

TAGS = ["events"]


class EventListView(ApiView):
    pagination_class = ApiPagination

    @extend_schema(tags=TAGS, parameters=[EventFilterSerializer], responses=EventSerializer(many=True))
    def get(self, request: Request) -> Response:
        filters = self.parse(EventFilterSerializer, request.query_params)
        events = self.scoped(Event.objects.all())
        if "status" in filters:
            events = events.filter(status=filters["status"])
        if "starts_after" in filters:
            events = events.filter(starts_at__gte=filters["starts_after"])
        if "starts_before" in filters:
            events = events.filter(starts_at__lt=filters["starts_before"])
        return self.paginated(request, events.order_by(filters["ordering"], "id"), EventSerializer)

    @extend_schema(tags=TAGS, request=EventCreateSerializer, responses={201: EventSerializer})
    def post(self, request: Request) -> Response:
        data = self.parse(EventCreateSerializer, request.data)
        organization = self._target_organization(data.pop("organization", None))
        event = event_create(organization=organization, **data)
        return Response(EventSerializer(event).data, status=status.HTTP_201_CREATED)

    def _target_organization(self, organization_id: int | None) -> Organization:
        organizations = self.scoped(Organization.objects.all())
        if organization_id is None:
            candidates = list(organizations[:2])
            if len(candidates) != 1:
                raise InvalidInput(detail={"organization": ["Name the organization of the event."]})
            return candidates[0]
        organization = organizations.filter(pk=organization_id).first()
        if organization is None:
            raise NotFound("This organization does not exist.", detail={"organization": organization_id})
        return organization


class EventDetailView(ApiView):
    @extend_schema(tags=TAGS, responses=EventSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(EventSerializer(self.get_scoped(Event.objects.all(), pk)).data)

    @extend_schema(tags=TAGS, request=EventUpdateSerializer, responses=EventSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        data = self.parse(EventUpdateSerializer, request.data)
        event = self.get_scoped(Event.objects.all(), pk)
        event = event_update(event_id=event.pk, changes=data)
        return Response(EventSerializer(event).data)


class _EventActionView(ApiView):
    def transition(self, request: Request, pk: int, service: Callable[..., Event], verb: str) -> Response:
        data = self.parse(ReasonSerializer, request.data)
        event = self.get_scoped(Event.objects.all(), pk)
        event = service(event_id=event.pk, by=audit_actor(request), reason=data["reason"] or f"API: {verb}")
        return Response(EventSerializer(event).data)


class EventOpenSalesView(_EventActionView):
    @extend_schema(tags=TAGS, request=ReasonSerializer, responses=EventSerializer)
    def post(self, request: Request, pk: int) -> Response:
        return self.transition(request, pk, event_open_sales, "open sales")


class EventCloseSalesView(_EventActionView):
    @extend_schema(tags=TAGS, request=ReasonSerializer, responses=EventSerializer)
    def post(self, request: Request, pk: int) -> Response:
        return self.transition(request, pk, event_close_sales, "close sales")


class EventCancelView(_EventActionView):
    @extend_schema(tags=TAGS, request=ReasonSerializer, responses=EventSerializer)
    def post(self, request: Request, pk: int) -> Response:
        return self.transition(request, pk, event_cancel, "cancel")


# --- public -------------------------------------------------------------------------


class PublicEventListView(PublicApiView):
    pagination_class = ApiPagination

    @extend_schema(tags=["public"], responses=PublicEventSerializer(many=True), auth=[])
    def get(self, request: Request) -> Response:
        return self.paginated(request, events_on_sale(), PublicEventSerializer)


class PublicEventDetailView(PublicApiView):
    @extend_schema(tags=["public"], responses=PublicEventSerializer, auth=[])
    def get(self, request: Request, pk: int) -> Response:
        event = events_on_sale().filter(pk=pk).first()
        if event is None:
            raise NotFound("This event does not exist or is not on sale.")
        return Response(PublicEventSerializer(event).data)
