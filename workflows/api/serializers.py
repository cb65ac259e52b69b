from __future__ import annotations

from rest_framework import serializers

from workflows.models import RunStatus, WorkflowRun, WorkflowStep


class WorkflowStepSerializer(serializers.ModelSerializer):
    class Meta:
        model = WorkflowStep
        fields = [
            "id",
            "sequence",
            "name",
            "kind",
            "status",
            "external",
            "attempt",
            "next_attempt_at",
            "result",
            "error",
            "compensates",
            "child_run",
            "started_at",
            "finished_at",
            "duration_ms",
        ]
        read_only_fields = fields


class WorkflowRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = WorkflowRun
        fields = [
            "id",
            "organization",
            "workflow_type",
            "version",
            "business_key",
            "status",
            "input",
            "output",
            "error",
            "parent",
            "wake_at",
            "deadline",
            "cancel_requested",
            "created_at",
            "started_at",
            "updated_at",
            "finished_at",
        ]
        read_only_fields = fields


class WorkflowRunDetailSerializer(WorkflowRunSerializer):
    steps = WorkflowStepSerializer(many=True, read_only=True)

    class Meta(WorkflowRunSerializer.Meta):
        fields = [*WorkflowRunSerializer.Meta.fields, "steps"]
        read_only_fields = fields


class WorkflowRunFilterSerializer(serializers.Serializer):
    workflow_type = serializers.CharField(required=False, max_length=100)
    status = serializers.ChoiceField(choices=RunStatus.choices, required=False)
    business_key = serializers.CharField(required=False, max_length=200)
