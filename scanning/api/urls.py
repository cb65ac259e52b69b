from django.urls import path

import ticketing.api.converters  # noqa: F401 - registers api_id
from scanning.api import views

urlpatterns = [
    path("scanning/devices/", views.DeviceListView.as_view(), name="scanning-device-list"),
    path("scanning/devices/<api_id:pk>/", views.DeviceDetailView.as_view(), name="scanning-device-detail"),
    path("scanning/devices/<api_id:pk>/revoke/", views.DeviceRevokeView.as_view(), name="scanning-device-revoke"),
    path("scanning/scans/", views.ScanCollectionView.as_view(), name="scanning-scans"),
    path("scanning/scans/<api_id:pk>/", views.ScanDetailView.as_view(), name="scanning-scan-detail"),
]
