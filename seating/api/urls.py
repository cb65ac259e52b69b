from django.urls import path, re_path

import ticketing.api.converters  # noqa: F401 - registers api_id
from seating.api import views
from seating.api.serializers import HOLD_TOKEN_PATTERN

urlpatterns = [
    path("public/events/<api_id:pk>/seat-map/", views.PublicSeatMapView.as_view(), name="public-seat-map"),
    path(
        "public/events/<api_id:pk>/seat-holds/",
        views.PublicEventSeatHoldCreateView.as_view(),
        name="public-event-seat-holds",
    ),
    # A malformed token never reaches a view (nor the database): the API's 404.
    re_path(
        rf"^public/seat-holds/(?P<token>{HOLD_TOKEN_PATTERN})/release/$",
        views.PublicSeatHoldReleaseView.as_view(),
        name="public-seat-hold-release",
    ),
    path("events/<api_id:pk>/seat-map/", views.SeatMapView.as_view(), name="seat-map"),
    path("events/<api_id:pk>/seat-holds/", views.EventSeatHoldsView.as_view(), name="event-seat-holds"),
    path("seat-holds/<api_id:pk>/", views.SeatHoldDetailView.as_view(), name="seat-hold-detail"),
    path("seat-holds/<api_id:pk>/release/", views.SeatHoldReleaseView.as_view(), name="seat-hold-release"),
]
