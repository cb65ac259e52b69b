from django.urls import path

import ticketing.api.converters  # noqa: F401 - registers api_id
from seating.api import views

urlpatterns = [
    path("public/events/<api_id:pk>/seat-map/", views.PublicSeatMapView.as_view(), name="public-seat-map"),
    path("events/<api_id:pk>/seat-map/", views.SeatMapView.as_view(), name="seat-map"),
    path("events/<api_id:pk>/seat-holds/", views.EventSeatHoldsView.as_view(), name="event-seat-holds"),
    path("seat-holds/<api_id:pk>/", views.SeatHoldDetailView.as_view(), name="seat-hold-detail"),
    path("seat-holds/<api_id:pk>/release/", views.SeatHoldReleaseView.as_view(), name="seat-hold-release"),
]
