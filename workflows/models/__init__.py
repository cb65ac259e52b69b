from workflows.models.outbox import OutboxMessage
from workflows.models.run import ACTIVE_STATUSES, FINISHED_STATUSES, RunStatus, WorkflowRun
from workflows.models.signal import WorkflowSignal
from workflows.models.step import StepKind, StepStatus, WorkflowStep

__all__ = [
    "ACTIVE_STATUSES",
    "FINISHED_STATUSES",
    "OutboxMessage",
    "RunStatus",
    "StepKind",
    "StepStatus",
    "WorkflowRun",
    "WorkflowSignal",
    "WorkflowStep",
]
