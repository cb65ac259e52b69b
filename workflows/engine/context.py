"""The context a workflow function runs with: its only way to do work.

Every call takes the next sequence number. If the run's history already has
that step, the recorded outcome is returned (or its failure raised) without
running anything: this is how a run resumes after a crash or a wake-up, by
replaying its function from the top. The function must therefore be
deterministic: it may branch only on its input and on step results.

A replay-only context (used to collect compensations) never does new work: it
raises StopReplay where the forward pass stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from workflows.engine import runs
from workflows.engine.attempts import execute, jsonable, save_step, write_step
from workflows.engine.interrupts import StopReplay, Suspend
from workflows.engine.leases import Lease
from workflows.engine.retry import DEFAULT_RETRY, RetryPolicy
from workflows.exceptions import ChildFailed, NonDeterministicWorkflow, SignalTimeout, StepFailed
from workflows.models import (
    FINISHED_STATUSES,
    RunStatus,
    StepKind,
    StepStatus,
    WorkflowRun,
    WorkflowSignal,
    WorkflowStep,
)


@dataclass(frozen=True)
class Step:
    """An action. Local (`external=False`): `fn()` runs in the transaction that
    records it. External: `fn(idempotency_key)` runs outside transactions.
    `compensate(result)` (external: `compensate(result, idempotency_key)`)
    undoes it if the run fails later; it is retried with the same policy."""

    name: str
    fn: Callable[..., Any]
    compensate: Callable[..., Any] | None = None
    retry: RetryPolicy = DEFAULT_RETRY
    external: bool = False


@dataclass(frozen=True)
class Child:
    """A child run; its output is the branch's result."""

    workflow_type: str
    business_key: str
    input: dict[str, Any] | None = None


@dataclass(frozen=True)
class Compensation:
    step: WorkflowStep  # the completed step to undo
    fn: Callable[..., Any]
    retry: RetryPolicy


class Context:
    def __init__(self, run: WorkflowRun, lease: Lease, *, replay_only: bool = False, fresh: bool = False) -> None:
        self._run = run
        self.lease = lease
        self.replay_only = replay_only
        # A fresh run (its first pass, by its starter) has no history to load.
        self.steps: dict[int, WorkflowStep] = (
            {} if fresh else {s.sequence: s for s in WorkflowStep.objects.filter(run_id=run.pk)}
        )
        self.compensations: list[Compensation] = []
        self._sequence = 0

    @property
    def run(self) -> WorkflowRun:
        return self._run

    # What the workflow is: readable before its run has a row (one_transaction).
    @property
    def input(self) -> dict[str, Any]:
        return self._run.input

    @property
    def workflow_type(self) -> str:
        return self._run.workflow_type

    @property
    def business_key(self) -> str:
        return self._run.business_key

    @property
    def organization_id(self) -> int | None:
        return self._run.organization_id

    # --- bookkeeping ----------------------------------------------------------------

    def _slot(self, name: str, kind: str) -> tuple[int, WorkflowStep | None]:
        self._sequence += 1
        row = self.steps.get(self._sequence)
        if row is not None and (row.name, row.kind) != (name, kind):
            if self.replay_only:
                raise StopReplay()
            raise NonDeterministicWorkflow(
                f"step {self._sequence} is {row.kind} {row.name!r} in the record; the code asks for {kind} {name!r}"
            )
        return self._sequence, row

    def new_row(self, sequence: int, name: str, kind: str, **fields: Any) -> WorkflowStep:
        """An unsaved step row. Its idempotency key is derived from the run and
        the sequence, so it is the same on every attempt and every replay."""
        return WorkflowStep(
            run_id=self.run.pk,
            sequence=sequence,
            name=name,
            kind=kind,
            idempotency_key=step_idempotency_key(self.run.pk, sequence),
            **fields,
        )

    def next_free_sequence(self) -> int:
        return max(self.steps, default=0) + 1

    def remember(self, row: WorkflowStep) -> WorkflowStep:
        self.steps[row.sequence] = row
        return row

    def _new_work(self) -> None:
        """Past this point the call does something not yet recorded."""
        if self.replay_only:
            raise StopReplay()

    # --- primitives ---------------------------------------------------------------

    def step(
        self,
        name: str,
        fn: Callable[..., Any],
        *,
        compensate: Callable[..., Any] | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        external: bool = False,
    ) -> Any:
        """Run an action once (see Step) and return its JSON result. Raises
        StepFailed once its retries are exhausted or it fails for good."""
        return self._step(Step(name, fn, compensate, retry, external))

    def _step(self, spec: Step) -> Any:
        sequence, row = self._slot(spec.name, StepKind.ACTION)
        if row is None or row.status != StepStatus.COMPLETED:
            if row is not None and row.status == StepStatus.FAILED:
                raise StepFailed(row.name, row.error or {})
            self._new_work()
            if row is not None and row.next_attempt_at and row.next_attempt_at > timezone.now():
                raise Suspend(row.next_attempt_at)
            if row is None:
                row = self.new_row(sequence, spec.name, StepKind.ACTION, external=spec.external)
            row = self.remember(execute(self, row=row, fn=spec.fn, args=(), retry=spec.retry))
        if spec.compensate is not None:
            self.compensations.append(Compensation(row, spec.compensate, spec.retry))
        return row.result

    def sleep_until(self, name: str, when: datetime) -> None:
        """A durable timer. `when` is recorded the first time; replays keep the
        recorded time, so `timezone.now() + delta` is safe to pass."""
        sequence, row = self._slot(name, StepKind.TIMER)
        if row is not None and row.status == StepStatus.COMPLETED:
            return
        self._new_work()
        now = timezone.now()
        if row is None:
            row = self.new_row(sequence, name, StepKind.TIMER)
            row = self.remember(
                save_step(self, row, allow_cancel=True, status=StepStatus.WAITING, next_attempt_at=when, started_at=now)
            )
        if row.next_attempt_at and row.next_attempt_at > now:
            raise Suspend(row.next_attempt_at)
        self.remember(save_step(self, row, status=StepStatus.COMPLETED, finished_at=now, duration_ms=_ms(row, now)))

    def sleep(self, name: str, delay: timedelta) -> None:
        self.sleep_until(name, timezone.now() + delay)

    def wait_signal(self, name: str, *, timeout: timedelta | None = None) -> Any:
        """Wait for the next signal `name` and return its payload. A signal
        that arrived earlier is consumed at once (in arrival order). Raises
        SignalTimeout when `timeout` passes first."""
        sequence, row = self._slot(name, StepKind.SIGNAL)
        if row is None or row.status not in (StepStatus.COMPLETED, StepStatus.FAILED):
            self._new_work()
            row = self.remember(self._try_consume(sequence, name, row, timeout))
        if row.status == StepStatus.COMPLETED:
            return row.result
        if row.status == StepStatus.FAILED:
            raise SignalTimeout(row.name, row.error or {})
        raise Suspend(row.next_attempt_at)

    def _try_consume(
        self, sequence: int, name: str, row: WorkflowStep | None, timeout: timedelta | None
    ) -> WorkflowStep:
        now = timezone.now()
        # The fence's lock on the run row makes this lease holder the only
        # consumer; the signal's consumption and the step commit together.
        with transaction.atomic():
            self.lease.fence(allow_cancel=True)
            if row is None:
                row = write_step(
                    self.new_row(sequence, name, StepKind.SIGNAL),
                    status=StepStatus.WAITING,
                    started_at=now,
                    next_attempt_at=now + timeout if timeout else None,
                )
            received = WorkflowSignal.objects.filter(run_id=self.run.pk, name=name, consumed=False).first()
            if received is not None:
                WorkflowSignal.objects.filter(pk=received.pk).update(consumed=True, consumed_at=now)
                return write_step(
                    row,
                    status=StepStatus.COMPLETED,
                    result=jsonable(received.payload),
                    next_attempt_at=None,
                    finished_at=now,
                    duration_ms=_ms(row, now),
                )
            if row.next_attempt_at and row.next_attempt_at <= now:
                error = {"code": "signal_timeout", "message": f"no {name!r} signal before {row.next_attempt_at}"}
                return write_step(
                    row, status=StepStatus.FAILED, error=error, finished_at=now, duration_ms=_ms(row, now)
                )
            return row

    def child(self, workflow_type: str, business_key: str, input: dict[str, Any] | None = None) -> Any:
        """Start a child run (idempotent on its business key) and wait for it;
        return its output. Raises ChildFailed if it ends other than completed."""
        return self._child(Child(workflow_type, business_key, input))

    def _child(self, spec: Child) -> Any:
        sequence, row = self._slot(spec.workflow_type, StepKind.CHILD)
        if row is None or row.status not in (StepStatus.COMPLETED, StepStatus.FAILED):
            self._new_work()
            if row is None:
                with transaction.atomic():
                    self.lease.fence(allow_cancel=True)
                    child = runs.start(
                        spec.workflow_type,
                        spec.business_key,
                        spec.input,
                        organization=self.run.organization_id,
                        parent=self.run,
                    )
                    row = write_step(
                        self.new_row(sequence, spec.workflow_type, StepKind.CHILD),
                        status=StepStatus.WAITING,
                        child_run=child,
                        started_at=timezone.now(),
                    )
                # The child advances after that commit (inline in eager mode,
                # so it may well be finished below).
                self.remember(row)
            row = self.remember(self._settle_child(row))
        if row.status == StepStatus.COMPLETED:
            return row.result
        if row.status == StepStatus.FAILED:
            raise ChildFailed(row.name, row.error or {})
        raise Suspend(None)  # the child wakes us when it finishes

    def _settle_child(self, row: WorkflowStep) -> WorkflowStep:
        state = None
        if row.child_run_id is not None:  # None only if the child was deleted
            state = WorkflowRun.objects.filter(pk=row.child_run_id).values("status", "output", "error").first()
        if state is not None and state["status"] not in FINISHED_STATUSES:
            return row
        now = timezone.now()
        if state is not None and state["status"] == RunStatus.COMPLETED:
            return save_step(
                self,
                row,
                status=StepStatus.COMPLETED,
                result=state["output"],
                finished_at=now,
                duration_ms=_ms(row, now),
            )
        status = state["status"] if state else "missing"
        error = {
            "code": f"child_{status}",
            "message": f"child run ended {status}",
            "child_error": state["error"] if state else None,
        }
        return save_step(self, row, status=StepStatus.FAILED, error=error, finished_at=now, duration_ms=_ms(row, now))

    def parallel(self, branches: Sequence[Step | Child], *, name: str = "parallel") -> list[Any]:
        """Run independent branches and continue when all have settled (fan-in);
        return their results in order. Child branches run concurrently on the
        workers; step branches run one after another in this pass, but one that
        waits for a retry does not hold up the others. If any branch failed, the
        first failure is raised once all have settled."""
        sequence, group = self._slot(name, StepKind.PARALLEL)
        results: list[Any] = []
        waits: list[datetime | None] = []
        failure: StepFailed | None = None
        stopped = False
        for branch in branches:
            try:
                results.append(self._step(branch) if isinstance(branch, Step) else self._child(branch))
                continue
            except Suspend as suspended:
                waits.append(suspended.wake_at)
            except StopReplay:
                # Keep replaying the other branches: their compensations count.
                stopped = True
            except StepFailed as exc:
                failure = failure or exc
            results.append(None)
        if stopped:
            raise StopReplay()
        now = timezone.now()
        if waits:
            if group is None:
                self.remember(
                    save_step(
                        self, self.new_row(sequence, name, StepKind.PARALLEL), status=StepStatus.WAITING, started_at=now
                    )
                )
            timed = [wake_at for wake_at in waits if wake_at is not None]
            raise Suspend(min(timed) if timed else None)
        if not self.replay_only and (group is None or group.status == StepStatus.WAITING):
            group = group or self.new_row(sequence, name, StepKind.PARALLEL, started_at=now)
            self.remember(
                save_step(
                    self,
                    group,
                    status=StepStatus.FAILED if failure else StepStatus.COMPLETED,
                    result=jsonable(results),
                    error=failure.error if failure else None,
                    finished_at=now,
                    duration_ms=_ms(group, now),
                )
            )
        if failure is not None:
            raise failure
        return results


def step_idempotency_key(run_id: int, sequence: int) -> str:
    return f"wf-{run_id}-{sequence}"


def _ms(row: WorkflowStep, now: datetime) -> int | None:
    return int((now - row.started_at).total_seconds() * 1000) if row.started_at else None
