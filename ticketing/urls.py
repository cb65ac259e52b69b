from django.urls import path

from ticketing.views.health import healthz
from ticketing.views.public import event_index

app_name = "ticketing"

urlpatterns = [
    path("", event_index, name="event-index"),
    path("healthz", healthz, name="healthz"),
]
