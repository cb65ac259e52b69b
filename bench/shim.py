"""A stand-in for POST /api/v1/public/checkouts/ and GET /api/v1/public/orders/<code>/
while the real endpoints are not merged yet (bench.run --api shim, or --api auto
when the project's URL conf has no such route).

It calls the same workflow (start_checkout) through the same DRF stack
(PublicApiView: throttling, the one error format) and answers the documented
contract: 201 {"order_code", "payment_url", "expires_at", "total_cents",
"currency"}, 409 {"code": "sold_out" | "seat_unavailable", ...}, 429 busy with
Retry-After. Figures measured through it are labelled "api": "shim".
"""

from __future__ import annotations

from typing import Any

from django.urls import include, path
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from ticketing.api.base import PublicApiView
from ticketing.exceptions import NotFound
from ticketing.models import Order
from workflows.checkout.start import start_checkout

__all__ = ["urlpatterns"]


class ShimCheckoutView(PublicApiView):
    def post(self, request: Request) -> Response:
        data: dict[str, Any] = request.data if isinstance(request.data, dict) else {}
        started = start_checkout(
            event_id=data.get("event"),
            buyer_name=data.get("buyer_name", ""),
            buyer_email=data.get("buyer_email", ""),
            tickets=data.get("tickets") or [],
            seat_ids=data.get("seats") or [],
        )
        return Response(
            {
                "order_code": started.order_code,
                "payment_url": started.payment_url,
                "expires_at": started.expires_at.isoformat() if started.expires_at else None,
                "total_cents": started.total_cents,
                "currency": started.currency,
            },
            status=status.HTTP_201_CREATED,
        )


class ShimOrderView(PublicApiView):
    def get(self, request: Request, code: str) -> Response:
        order = Order.objects.filter(code=code).only("code", "status").first()
        if order is None:
            raise NotFound()
        return Response({"code": order.code, "status": order.status})


urlpatterns = [
    path("api/v1/public/checkouts/", ShimCheckoutView.as_view()),
    path("api/v1/public/orders/<str:code>/", ShimOrderView.as_view()),
    path("", include("config.urls")),
]
