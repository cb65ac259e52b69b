"""Celery tasks of the workflows layer: thin interfaces over the engine.

advance_run is idempotent (it only acts if it claims the run's lease) and
acks late, so a message lost with its worker is redelivered, and one
delivered twice does nothing the second time. The sweepers are scheduled in
config.settings.CELERY_BEAT_SCHEDULE.
"""

from __future__ import annotations

from celery import shared_task

from workflows.engine import outbox, runner, sweepers


@shared_task(name="workflows.tasks.advance_run", acks_late=True, ignore_result=True)
def advance_run(run_id: int) -> None:
    runner.advance(run_id)


@shared_task(name="workflows.tasks.relay_outbox", acks_late=True, ignore_result=True)
def relay_outbox() -> int:
    return outbox.relay()


@shared_task(name="workflows.tasks.wake_due_runs", acks_late=True, ignore_result=True)
def wake_due_runs() -> int:
    return sweepers.wake_due_runs()


@shared_task(name="workflows.tasks.reap_expired_leases", acks_late=True, ignore_result=True)
def reap_expired_leases() -> int:
    return sweepers.reap_expired_leases()


@shared_task(name="workflows.tasks.prune_finished_runs", acks_late=True, ignore_result=True)
def prune_finished_runs() -> int:
    return sweepers.prune_finished_runs()


@shared_task(name="workflows.tasks.complete_paid_orders", acks_late=True, ignore_result=True)
def complete_paid_orders() -> int:
    """Beat: no succeeded payment is left without its CompleteCheckout run."""
    from workflows.payments.process_payment import complete_paid_orders as sweep

    return sweep()


@shared_task(name="workflows.tasks.expire_checkouts", acks_late=True, ignore_result=True)
def expire_checkouts() -> int:
    """Beat: every checkout whose hold expired unpaid gets its CancelCheckout run."""
    from workflows.checkout.cancel import checkouts_expire_due

    return checkouts_expire_due()


@shared_task(name="workflows.tasks.record_missing_chargebacks", acks_late=True, ignore_result=True)
def record_missing_chargebacks() -> int:
    """Beat: disputes whose ledger entries were lost with an announcement are booked."""
    from workflows.payments.chargebacks import chargebacks_record_missing

    return chargebacks_record_missing()
