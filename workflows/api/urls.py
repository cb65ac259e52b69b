from django.urls import path

import ticketing.api.converters  # noqa: F401 - registers api_id
from workflows.api import views

urlpatterns = [
    path("workflow-runs/", views.WorkflowRunListView.as_view(), name="workflow-run-list"),
    path("workflow-runs/<api_id:pk>/", views.WorkflowRunDetailView.as_view(), name="workflow-run-detail"),
]
