"""/api/v1/: every resource of the API; anything else is a 404 in the API's error format."""

from django.urls import include, path, re_path

import ticketing.api.converters  # noqa: F401 - registers api_id
from ticketing.api.views import checkouts, events, orders, ticket_types
from ticketing.api.views.misc import not_found

app_name = "api"

urlpatterns = [
    # public
    path("public/events/", events.PublicEventListView.as_view(), name="public-event-list"),
    path("public/events/<api_id:pk>/", events.PublicEventDetailView.as_view(), name="public-event-detail"),
    path(
        "public/events/<api_id:pk>/ticket-types/",
        ticket_types.PublicEventTicketTypesView.as_view(),
        name="public-event-ticket-types",
    ),
    path(
        "public/ticket-types/<api_id:pk>/availability/",
        ticket_types.PublicAvailabilityView.as_view(),
        name="public-availability",
    ),
    path("public/checkouts/", checkouts.PublicCheckoutStartView.as_view(), name="public-checkout-start"),
    path("public/orders/<str:code>/", checkouts.PublicOrderDetailView.as_view(), name="public-order-detail"),
    path("public/orders/<str:code>/cancel/", checkouts.PublicOrderCancelView.as_view(), name="public-order-cancel"),
    # staff and tokens
    path("events/", events.EventListView.as_view(), name="event-list"),
    path("events/<api_id:pk>/", events.EventDetailView.as_view(), name="event-detail"),
    path("events/<api_id:pk>/open-sales/", events.EventOpenSalesView.as_view(), name="event-open-sales"),
    path("events/<api_id:pk>/close-sales/", events.EventCloseSalesView.as_view(), name="event-close-sales"),
    path("events/<api_id:pk>/cancel/", events.EventCancelView.as_view(), name="event-cancel"),
    path("events/<api_id:pk>/ticket-types/", ticket_types.EventTicketTypesView.as_view(), name="event-ticket-types"),
    path("ticket-types/<api_id:pk>/", ticket_types.TicketTypeDetailView.as_view(), name="ticket-type-detail"),
    path(
        "ticket-types/<api_id:pk>/availability/",
        ticket_types.TicketTypeAvailabilityView.as_view(),
        name="ticket-type-availability",
    ),
    path("orders/", orders.OrderListView.as_view(), name="order-list"),
    path("orders/<api_id:pk>/", orders.OrderDetailView.as_view(), name="order-detail"),
    path("orders/<api_id:pk>/cancel/", orders.OrderCancelView.as_view(), name="order-cancel"),
    path("orders/<api_id:pk>/refunds/", orders.OrderRefundView.as_view(), name="order-refunds"),
    path("tickets/<api_id:pk>/", orders.TicketDetailView.as_view(), name="ticket-detail"),
    path("tickets/<api_id:pk>/transfer/", orders.TicketTransferView.as_view(), name="ticket-transfer"),
    path("tickets/<api_id:pk>/revoke/", orders.TicketRevokeView.as_view(), name="ticket-revoke"),
    path("", include("seating.api.urls")),
    path("", include("workflows.api.urls")),
    path("", include("scanning.api.urls")),
    re_path(r"^.*$", not_found, name="not-found"),
]
