"""Workflow runs and their steps: staff read."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from ticketing.api.base import ApiView
from ticketing.api.pagination import ApiPagination
from ticketing.api.permissions import RUN_READERS
from workflows.api.serializers import WorkflowRunDetailSerializer, WorkflowRunFilterSerializer, WorkflowRunSerializer
from workflows.models import WorkflowRun

TAGS = ["workflow runs"]


class WorkflowRunListView(ApiView):
    read_roles = RUN_READERS
    pagination_class = ApiPagination

    @extend_schema(tags=TAGS, parameters=[WorkflowRunFilterSerializer], responses=WorkflowRunSerializer(many=True))
    def get(self, request: Request) -> Response:
        filters = self.parse(WorkflowRunFilterSerializer, request.query_params)
        runs = self.scoped(WorkflowRun.objects.all())
        for name in ("workflow_type", "status", "business_key"):
            if name in filters:
                runs = runs.filter(**{name: filters[name]})
        return self.paginated(request, runs.order_by("-created_at", "-id"), WorkflowRunSerializer)


class WorkflowRunDetailView(ApiView):
    read_roles = RUN_READERS

    @extend_schema(tags=TAGS, responses=WorkflowRunDetailSerializer)
    def get(self, request: Request, pk: int) -> Response:
        run = self.get_scoped(WorkflowRun.objects.prefetch_related("steps"), pk)
        return Response(WorkflowRunDetailSerializer(run).data)
