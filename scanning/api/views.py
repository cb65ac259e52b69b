"""Scanning over the API.

- POST /scanning/scans/: a gate device records a scan (device token only,
  throttled per device). Idempotent on the body's `nonce`, so the
  Idempotency-Key header is not used here.
- Staff and tokens (owner, manager, box office, scanner): list devices and
  scans of their organizations; owners and managers add and revoke devices.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from scanning.api.authentication import DeviceTokenAuthentication
from scanning.api.permissions import SCAN_READERS, IsActiveDevice
from scanning.api.serializers import (
    DeviceCreatedSerializer,
    DeviceCreateSerializer,
    DeviceFilterSerializer,
    DeviceSerializer,
    ScanAnswerSerializer,
    ScanCreateSerializer,
    ScanFilterSerializer,
    ScanSerializer,
    scan_answer,
)
from scanning.api.throttling import DeviceRateThrottle
from scanning.models import Device, Scan
from scanning.services.devices import device_create, device_revoke
from ticketing.api.base import ApiView
from ticketing.api.fields import ReasonSerializer
from ticketing.api.idempotency import HEADER
from ticketing.api.pagination import ApiPagination
from ticketing.api.permissions import audit_actor
from ticketing.api.schema import ApiAutoSchema
from ticketing.models import Event
from workflows.scanning.process_scan import process_scan

TAGS = ["scanning"]


class DeviceListView(ApiView):
    """Scanning devices of your organizations; add one (its token is in the
    answer, once)."""

    read_roles = SCAN_READERS
    pagination_class = ApiPagination

    @extend_schema(tags=TAGS, parameters=[DeviceFilterSerializer], responses=DeviceSerializer(many=True))
    def get(self, request: Request) -> Response:
        filters = self.parse(DeviceFilterSerializer, request.query_params)
        devices = self.scoped(Device.objects.all())
        if "event" in filters:
            devices = devices.filter(event_id=filters["event"])
        if filters.get("active") is not None:
            devices = devices.filter(revoked_at__isnull=filters["active"])
        return self.paginated(request, devices.order_by("-created_at", "-id"), DeviceSerializer)

    @extend_schema(tags=TAGS, request=DeviceCreateSerializer, responses={201: DeviceCreatedSerializer})
    def post(self, request: Request) -> Response:
        data = self.parse(DeviceCreateSerializer, request.data)
        event = self.get_scoped(Event.objects.all(), data["event"])
        device, token = device_create(event=event, name=data["name"], gate=data["gate"], created_by=request.user)
        body = DeviceCreatedSerializer(device).data
        body["token"] = token
        return Response(body, status=status.HTTP_201_CREATED)


class DeviceDetailView(ApiView):
    """One scanning device (never its token)."""

    read_roles = SCAN_READERS

    @extend_schema(tags=TAGS, responses=DeviceSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(DeviceSerializer(self.get_scoped(Device.objects.all(), pk)).data)


class DeviceRevokeView(ApiView):
    """Revoke a device: its token stops working at once. Idempotent."""

    @extend_schema(tags=TAGS, request=ReasonSerializer, responses=DeviceSerializer)
    def post(self, request: Request, pk: int) -> Response:
        data = self.parse(ReasonSerializer, request.data)
        device = self.get_scoped(Device.objects.all(), pk)
        device, _ = device_revoke(device_id=device.pk, by=audit_actor(request), reason=data["reason"] or "API: revoke")
        return Response(DeviceSerializer(device).data)


class _ScanCollectionSchema(ApiAutoSchema):
    """The device's POST is idempotent on its nonce: no Idempotency-Key."""

    def get_override_parameters(self) -> list[Any]:
        params = super().get_override_parameters()
        if self.method != "POST":
            return params
        return [p for p in params if not (isinstance(p, OpenApiParameter) and p.name == HEADER)]


class ScanCollectionView(ApiView):
    """GET: staff list scans. POST: a device records one.

    One path, two audiences: authentication, permission and throttling are
    chosen by method, so a device token is refused on GET and a staff
    credential on POST (401)."""

    read_roles = SCAN_READERS
    pagination_class = ApiPagination
    schema = _ScanCollectionSchema()

    def _device_request(self) -> bool:
        return getattr(getattr(self, "request", None), "method", None) == "POST"

    def get_authenticators(self) -> list[BaseAuthentication]:
        if self._device_request():
            return [DeviceTokenAuthentication()]
        return list(super().get_authenticators())

    def get_permissions(self) -> Sequence[Any]:
        if self._device_request():
            return [IsActiveDevice()]
        return super().get_permissions()

    def get_throttles(self) -> list[BaseThrottle]:
        if self._device_request():
            return [DeviceRateThrottle()]
        return list(super().get_throttles())

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        if request.method == "POST":
            # Skip the Idempotency-Key claim (ApiView's mixin): the nonce is
            # the key, and it lives with the scan.
            APIView.initial(self, request, *args, **kwargs)
            return
        super().initial(request, *args, **kwargs)

    @extend_schema(
        tags=TAGS,
        parameters=[ScanFilterSerializer],
        responses=ScanSerializer(many=True),
        description="Scans at the gates of your organizations' events, newest first.",
    )
    def get(self, request: Request) -> Response:
        filters = self.parse(ScanFilterSerializer, request.query_params)
        scans = self.scoped(Scan.objects.select_related("device"))
        for field in ("event", "device", "ticket"):
            if field in filters:
                scans = scans.filter(**{f"{field}_id": filters[field]})
        for field in ("result", "direction"):
            if field in filters:
                scans = scans.filter(**{field: filters[field]})
        if "since" in filters:
            scans = scans.filter(server_time__gte=filters["since"])
        if "until" in filters:
            scans = scans.filter(server_time__lt=filters["until"])
        return self.paginated(request, scans.order_by("-server_time", "-id"), ScanSerializer)

    @extend_schema(
        tags=TAGS,
        request=ScanCreateSerializer,
        responses={201: ScanAnswerSerializer, 200: ScanAnswerSerializer},
        description="Record a scan from a device. 201 with the answer; 200 with the first answer when the "
        "device's nonce was seen before. A refused ticket is a result (e.g. 'already_inside'), not an error.",
    )
    def post(self, request: Request) -> Response:
        data = self.parse(ScanCreateSerializer, request.data)
        device = request.user
        assert isinstance(device, Device)
        outcome = process_scan(
            device=device,
            code=data["code"],
            direction=data["direction"],
            nonce=data["nonce"],
            device_time=data["device_time"],
            device_sequence=data["device_sequence"],
        )
        return Response(scan_answer(outcome), status=status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK)


class ScanDetailView(ApiView):
    """One recorded scan."""

    read_roles = SCAN_READERS

    @extend_schema(tags=TAGS, responses=ScanSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(ScanSerializer(self.get_scoped(Scan.objects.select_related("device"), pk)).data)
