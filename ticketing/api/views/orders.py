"""Orders and tickets: staff read, with filters; cancel a pending order,
refund an order or some tickets, transfer or revoke a ticket."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from ticketing.api.base import ApiView
from ticketing.api.fields import ReasonSerializer
from ticketing.api.pagination import ApiPagination
from ticketing.api.permissions import BOX_OFFICE, ORDER_READERS, REFUNDERS, audit_actor
from ticketing.api.serializers.orders import (
    OrderDetailSerializer,
    OrderFilterSerializer,
    OrderSerializer,
    RefundRequestSerializer,
    RefundSerializer,
    TicketSerializer,
    TicketTransferSerializer,
)
from ticketing.api.views.checkouts import order_checkout_cancel
from ticketing.models import Order, Ticket
from workflows.payments.refund_order import refund_order
from workflows.ticketing.revoke_ticket import revoke_ticket
from workflows.ticketing.transfer_ticket import transfer_ticket


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


class OrderCancelView(ApiView):
    write_roles = BOX_OFFICE

    @extend_schema(tags=["orders"], request=None, responses={202: OrderSerializer})
    def post(self, request: Request, pk: int) -> Response:
        order = self.get_scoped(Order.objects.all(), pk)
        order_checkout_cancel(order=order)
        order.refresh_from_db()
        return Response(OrderSerializer(order).data, status=status.HTTP_202_ACCEPTED)


class OrderRefundView(ApiView):
    write_roles = REFUNDERS

    @extend_schema(
        tags=["orders"], request=RefundRequestSerializer, responses={200: RefundSerializer, 202: RefundSerializer}
    )
    def post(self, request: Request, pk: int) -> Response:
        data = self.parse(RefundRequestSerializer, request.data)
        order = self.get_scoped(Order.objects.all(), pk)
        outcome = refund_order(
            order_code=order.code,
            ticket_ids=data.get("tickets"),
            by=audit_actor(request),
            reason=data["reason"] or "API: refund",
        )
        order.refresh_from_db()
        body = RefundSerializer({**outcome, "order": order}).data
        done = outcome["status"] == "refunded"
        return Response(body, status=status.HTTP_200_OK if done else status.HTTP_202_ACCEPTED)


class TicketTransferView(ApiView):
    write_roles = BOX_OFFICE

    @extend_schema(tags=["tickets"], request=TicketTransferSerializer, responses=TicketSerializer)
    def post(self, request: Request, pk: int) -> Response:
        data = self.parse(TicketTransferSerializer, request.data)
        ticket = self.get_scoped(Ticket.objects.all(), pk)
        ticket = transfer_ticket(
            ticket_id=ticket.pk,
            holder_name=data["holder_name"],
            holder_email=data["holder_email"],
            by=audit_actor(request),
        )
        return Response(TicketSerializer(Ticket.objects.select_related("order").get(pk=ticket.pk)).data)


class TicketRevokeView(ApiView):
    write_roles = BOX_OFFICE

    @extend_schema(tags=["tickets"], request=ReasonSerializer, responses=TicketSerializer)
    def post(self, request: Request, pk: int) -> Response:
        data = self.parse(ReasonSerializer, request.data)
        ticket = self.get_scoped(Ticket.objects.all(), pk)
        ticket = revoke_ticket(ticket_id=ticket.pk, by=audit_actor(request), reason=data["reason"] or "API: revoke")
        return Response(TicketSerializer(Ticket.objects.select_related("order").get(pk=ticket.pk)).data)
