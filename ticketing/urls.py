from django.urls import path

from ticketing.views.checkout import checkout_page
from ticketing.views.events import (
    event_detail,
    event_index,
    seat_best_available_page,
    seat_map_page,
    seat_map_status,
)
from ticketing.views.health import healthz
from ticketing.views.orders import (
    order_calendar,
    order_cancel,
    order_detail,
    order_pay,
    order_resend_email,
    order_status,
    ticket_detail,
)
from ticketing.views.seat_holds import seat_hold_page, seat_release_page

app_name = "ticketing"

urlpatterns = [
    path("", event_index, name="event-index"),
    path("healthz", healthz, name="healthz"),
    path("events/<int:event_id>/", event_detail, name="event-detail"),
    path("events/<int:event_id>/seats/", seat_map_page, name="seat-map"),
    path("events/<int:event_id>/seats/status.json", seat_map_status, name="seat-map-status"),
    path("events/<int:event_id>/seats/best/", seat_best_available_page, name="seat-best-available"),
    path("events/<int:event_id>/seats/hold/", seat_hold_page, name="seat-hold"),
    path("events/<int:event_id>/seats/release/", seat_release_page, name="seat-release"),
    path("events/<int:event_id>/checkout/", checkout_page, name="checkout"),
    path("orders/<str:code>/", order_detail, name="order-detail"),
    path("orders/<str:code>/status.json", order_status, name="order-status"),
    path("orders/<str:code>/pay/", order_pay, name="order-pay"),
    path("orders/<str:code>/cancel/", order_cancel, name="order-cancel"),
    path("orders/<str:code>/resend/", order_resend_email, name="order-resend-email"),
    path("orders/<str:code>/calendar.ics", order_calendar, name="order-calendar"),
    path("tickets/<str:code>/", ticket_detail, name="ticket-detail"),
]
