"""Mounted at /metrics by config.urls."""

from django.urls import path

from workflows.metrics import metrics_view

urlpatterns = [path("", metrics_view, name="metrics")]
