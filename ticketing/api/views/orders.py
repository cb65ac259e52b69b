"""Orders and tickets: staff read, with filters."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from ticketing.api.base import ApiView
from ticketing.api.pagination import ApiPagination
from ticketing.api.permissions import ORDER_READERS
from ticketing.api.serializers.orders import (
    OrderDetailSerializer,
    OrderFilterSerializer,
    OrderSerializer,
    TicketSerializer,
)
from ticketing.models import Order, Ticket


class OrderListView(ApiView):
    read_roles = ORDER_READERS
    pagination_class = ApiPagination

    @extend_schema(tags=["orders"], parameters=[OrderFilterSerializer], responses=OrderSerializer(many=True))
    def get(self, request: Request) -> Response:
        filters = self.parse(OrderFilterSerializer, request.query_params)
        orders = self.scoped(Order.objects.all())
        if "event" in filters:
            orders = orders.filter(event_id=filters["event"])
        if "status" in filters:
            orders = orders.filter(status=filters["status"])
        if "email" in filters:
            orders = orders.filter(buyer_email__iexact=filters["email"])
        if "created_after" in filters:
            orders = orders.filter(created_at__gte=filters["created_after"])
        if "created_before" in filters:
            orders = orders.filter(created_at__lt=filters["created_before"])
        return self.paginated(request, orders.order_by(filters["ordering"], "-id"), OrderSerializer)


class OrderDetailView(ApiView):
    read_roles = ORDER_READERS

    @extend_schema(tags=["orders"], responses=OrderDetailSerializer)
    def get(self, request: Request, pk: int) -> Response:
        queryset = Order.objects.prefetch_related("lines", "tickets")
        return Response(OrderDetailSerializer(self.get_scoped(queryset, pk)).data)


class TicketDetailView(ApiView):
    read_roles = ORDER_READERS

    @extend_schema(tags=["tickets"], responses=TicketSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(TicketSerializer(self.get_scoped(Ticket.objects.select_related("order"), pk)).data)
