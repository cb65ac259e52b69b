"""StartCheckout -> pay -> CompleteCheckout, and every way it can fail."""

from __future__ import annotations

import pytest
from django.core import mail
from django.utils import timezone

from payments.exceptions import ProviderUnavailable
from payments.models import Payment, PaymentStatus, Refund, SandboxWebhook
from payments.providers import sandbox as sandbox_provider
from payments.sandbox.webhooks import sandbox_webhook_replay, sandbox_webhooks_deliver_shuffled
from seating.models import Seat, SeatStatus
from seating.services.holds import seat_hold_create
from tests.invariants import assert_inventory_consistent
from tests.workflows.checkout.conftest import (
    DECLINE,
    cancel_run,
    checkout_run,
    complete_run,
    expire_checkout,
    pay,
    provider_confirms_late,
    seat_ids,
)
from ticketing.models import CapacityHold, EmailDelivery, HoldStatus, Order, OrderStatus, Ticket, TicketType
from workflows.checkout.cancel import cancel_checkout
from workflows.checkout.start import CheckoutFailed, start_checkout
from workflows.models import OutboxMessage, RunStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("check_inventory")]


def _buy(event_id: int, **cart):
    return start_checkout(event_id=event_id, buyer_name="Ada Lovelace", buyer_email="ada@example.com", **cart)


def _counts(tt: TicketType) -> tuple[int, int]:
    tt.refresh_from_db()
    return tt.sold, tt.held


# --- happy paths ---------------------------------------------------------------------


def test_ga_checkout_pays_and_issues_two_tickets_with_one_email(ga):
    started = _buy(ga.event_id, tickets=[{"ticket_type": ga.pk, "quantity": 2}])

    assert started.payment_url.startswith("https://tickets.example/pay/sandbox/")
    # 2 x 25.00 + platform 3.5 % + 0.99 each (1.87) + processor fee grossed up (see FINANCE.md)
    assert started.total_cents == 5565
    assert _counts(ga) == (0, 2)
    order = Order.objects.get(code=started.order_code)
    assert order.status == OrderStatus.PENDING
    assert order.fee_snapshot["subtotal_cents"] == 5000

    pay(started)

    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert Ticket.objects.filter(order=order).count() == 2
    assert _counts(ga) == (2, 0)
    assert EmailDelivery.objects.filter(order=order, status="sent").count() == 1
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["ada@example.com"]
    assert len([a for a in message.attachments if getattr(a, "get_content_type", lambda: "")() == "image/png"]) == 2
    assert checkout_run(order.code).status == RunStatus.COMPLETED
    assert complete_run(order.code).status == RunStatus.COMPLETED
    assert cancel_run(order.code) is None


def test_seated_checkout_sells_exactly_the_chosen_seats(hall):
    chosen = seat_ids(hall, ["A 4", "A 5"])
    started = _buy(hall.pk, seat_ids=chosen)
    assert set(Seat.objects.filter(pk__in=chosen).values_list("status", flat=True)) == {SeatStatus.HELD}

    pay(started)

    order = Order.objects.get(code=started.order_code)
    assert order.status == OrderStatus.PAID
    assert sorted(Ticket.objects.filter(order=order).values_list("seat_id", flat=True)) == sorted(chosen)
    assert set(Seat.objects.filter(pk__in=chosen).values_list("status", flat=True)) == {SeatStatus.SOLD}
    assert len(mail.outbox) == 1


# --- failures compensate ------------------------------------------------------------------


def test_a_declined_card_leaves_the_checkout_open_and_expiry_undoes_it(ga):
    started = _buy(ga.event_id, tickets=[{"ticket_type": ga.pk, "quantity": 3}])
    pay(started, card=DECLINE)

    order = Order.objects.get(code=started.order_code)
    assert order.status == OrderStatus.PENDING  # the buyer may try another card
    assert _counts(ga) == (0, 3)

    run = expire_checkout(order.code)

    order.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert run.output["outcome"] == "expired"
    assert order.status == OrderStatus.EXPIRED
    assert _counts(ga) == (0, 0)
    assert Payment.objects.get(order=order).status == PaymentStatus.CANCELLED
    assert not Ticket.objects.exists()
    assert len(mail.outbox) == 0


def test_a_provider_error_compensates_the_order_and_the_holds(ga, monkeypatch):
    def down(self, request, *, idempotency_key):
        raise ProviderUnavailable("the payment provider is down")

    # (the in-process sandbox opens its sessions with plan_session)
    monkeypatch.setattr(sandbox_provider.SandboxProvider, "plan_session", down)

    with pytest.raises(CheckoutFailed) as info:
        _buy(ga.event_id, tickets=[{"ticket_type": ga.pk, "quantity": 2}])

    assert info.value.code == "provider_unavailable"
    order = Order.objects.get()
    assert order.status == OrderStatus.CANCELLED
    assert _counts(ga) == (0, 0)
    assert CapacityHold.objects.get().status == HoldStatus.RELEASED
    run = checkout_run(order.code)
    assert run.status == RunStatus.COMPENSATED
    names = list(run.steps.order_by("sequence").values_list("name", flat=True))
    assert names == ["place_order", "create_payment_session", "compensate:place_order"]


def test_a_seat_taken_meanwhile_fails_cleanly_and_keeps_nothing(hall):
    from datetime import timedelta

    taken = seat_ids(hall, ["B 2"])
    seat_hold_create(event_id=hall.pk, seat_ids=taken, expires_at=timezone.now() + timedelta(minutes=5))

    with pytest.raises(CheckoutFailed) as info:
        _buy(hall.pk, seat_ids=seat_ids(hall, ["B 1"]) + taken)

    assert info.value.code == "seat_unavailable"
    assert info.value.status == 409
    assert not Order.objects.exists()  # the order and its holds commit together or not at all
    assert Seat.objects.filter(status=SeatStatus.HELD).count() == 1  # only the other buyer's


def test_sold_out_is_reported_and_nothing_is_kept(ga):
    ga.capacity = 2
    ga.save()
    _buy(ga.event_id, tickets=[{"ticket_type": ga.pk, "quantity": 2}])
    with pytest.raises(CheckoutFailed) as info:
        _buy(ga.event_id, tickets=[{"ticket_type": ga.pk, "quantity": 1}])
    assert info.value.code == "sold_out"
    assert _counts(ga) == (0, 2)
    assert Order.objects.count() == 1  # the failed attempt left no order behind


def test_an_exception_inside_complete_checkout_leaves_nothing_partial(ga, monkeypatch):
    import workflows.ticketing.issue_tickets as issue

    started = _buy(ga.event_id, tickets=[{"ticket_type": ga.pk, "quantity": 2}])

    def broken(**kwargs):
        raise RuntimeError("mail table on fire")

    monkeypatch.setattr(issue, "email_delivery_record", broken)
    pay(started)

    order = Order.objects.get(code=started.order_code)
    assert order.status == OrderStatus.PENDING
    assert not Ticket.objects.exists()
    assert not EmailDelivery.objects.exists()
    assert len(mail.outbox) == 0
    assert _counts(ga) == (0, 2)  # still held for the buyer, not sold
    assert Payment.objects.get(order=order).status == PaymentStatus.SUCCEEDED
    assert complete_run(order.code).status == RunStatus.WAITING  # retrying with backoff

    # once the fault is gone, the retry completes the order exactly once
    monkeypatch.undo()
    from workflows.engine import retry_now

    retry_now(complete_run(order.code))
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert Ticket.objects.filter(order=order).count() == 2
    assert len(mail.outbox) == 1


def test_the_buyer_can_cancel_before_paying(ga):
    started = _buy(ga.event_id, tickets=[{"ticket_type": ga.pk, "quantity": 1}])
    assert cancel_checkout(order_code=started.order_code) is True
    order = Order.objects.get(code=started.order_code)
    assert order.status == OrderStatus.CANCELLED
    assert cancel_run(order.code).output["outcome"] == "cancelled"
    assert _counts(ga) == (0, 0)
    assert cancel_checkout(order_code=started.order_code) is False


# --- replays, late payments -------------------------------------------------------------------


def test_a_webhook_replayed_ten_times_and_shuffled_completes_once(ga):
    started = _buy(ga.event_id, tickets=[{"ticket_type": ga.pk, "quantity": 2}])
    pay(started, card=DECLINE)
    pay(started)
    hooks = list(SandboxWebhook.objects.order_by("id").values_list("pk", flat=True))
    for hook in hooks:
        sandbox_webhook_replay(webhook_id=hook, times=10)
    sandbox_webhooks_deliver_shuffled(webhook_ids=hooks * 5, seed=3)

    order = Order.objects.get(code=started.order_code)
    assert order.status == OrderStatus.PAID
    assert Payment.objects.filter(order=order).count() == 1
    assert Ticket.objects.filter(order=order).count() == 2
    assert EmailDelivery.objects.filter(order=order).count() == 1
    assert len(mail.outbox) == 1
    assert _counts(ga) == (2, 0)


def test_a_late_payment_retakes_its_tickets_when_they_are_still_free(ga):
    started = _buy(ga.event_id, tickets=[{"ticket_type": ga.pk, "quantity": 2}])
    expire_checkout(started.order_code)
    assert Order.objects.get(code=started.order_code).status == OrderStatus.EXPIRED
    assert _counts(ga) == (0, 0)

    provider_confirms_late(started.order_code)

    order = Order.objects.get(code=started.order_code)
    assert order.status == OrderStatus.PAID
    assert Ticket.objects.filter(order=order).count() == 2
    assert _counts(ga) == (2, 0)
    assert complete_run(order.code).output["late"] is True
    assert len(mail.outbox) == 1


def test_a_late_payment_is_refunded_when_its_tickets_are_gone(ga):
    ga.capacity = 2
    ga.save()
    started = _buy(ga.event_id, tickets=[{"ticket_type": ga.pk, "quantity": 2}])
    expire_checkout(started.order_code)
    rival = _buy(ga.event_id, tickets=[{"ticket_type": ga.pk, "quantity": 2}])
    pay(rival)

    provider_confirms_late(started.order_code)

    order = Order.objects.get(code=started.order_code)
    assert order.status == OrderStatus.EXPIRED
    assert not Ticket.objects.filter(order=order).exists()
    refund = Refund.objects.get(payment__order=order)
    assert refund.amount_cents == order.total_cents
    assert Payment.objects.get(order=order).status == PaymentStatus.REFUNDED
    run = complete_run(order.code)
    assert run.status == RunStatus.COMPLETED
    assert [s.name for s in run.steps.order_by("sequence")] == [
        "complete_order",
        "refund_late_payment",
        "tell_buyer_refunded",
    ]
    subjects = sorted(m.subject for m in mail.outbox)
    assert any("refunded" in s for s in subjects)
    assert _counts(ga) == (2, 0)
    assert_inventory_consistent()


@pytest.mark.parametrize("told", [True, False], ids=["told-by-the-webhook", "read-by-the-run"])
def test_the_sale_is_booked_when_the_payment_succeeded_in_its_currency(ga, told):
    """The webhook tells the run when the payment succeeded and in what
    currency; a run started without them (the sweeper's, an older run)
    reads the payment. Either way the sale is booked as of the payment."""
    from finance.models import JournalTransaction
    from workflows.checkout.complete import complete_checkout_start

    started = _buy(ga.event_id, tickets=[{"ticket_type": ga.pk, "quantity": 2}])
    order = Order.objects.get(code=started.order_code)
    if told:
        pay(started)
    else:
        payment = Payment.objects.get(order=order)
        Payment.objects.filter(pk=payment.pk).update(
            status=PaymentStatus.SUCCEEDED, captured_cents=payment.amount_cents, succeeded_at=timezone.now()
        )
        complete_checkout_start(order_code=order.code, organization_id=order.organization_id, payment_id=payment.pk)

    payment = Payment.objects.get(order=order)
    run = complete_run(order.code)
    assert ("paid" in run.input) is told
    sale = JournalTransaction.objects.get(kind="sale", source_id=str(payment.pk))
    assert sale.effective_at == payment.succeeded_at
    assert {entry.currency for entry in sale.entries.all()} == {payment.currency}
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID


def test_a_hold_swept_while_the_order_is_completed_undoes_the_whole_sale(ga):
    """An order on time takes no savepoint around its sale. Should its hold
    be swept after the on-time check (its order then being late), the sale
    is refused whole and the step's retry finds the order late."""
    from datetime import timedelta

    from django.db import transaction

    from finance.models import JournalTransaction
    from ticketing.services.capacity import capacity_expire_holds
    from workflows.checkout.complete import complete_order
    from workflows.seating.finalize_seats import InventoryGone

    ga.capacity = 2
    ga.save()
    started = _buy(ga.event_id, tickets=[{"ticket_type": ga.pk, "quantity": 2}])
    order = Order.objects.get(code=started.order_code)
    payment = Payment.objects.get(order=order)
    # the money is taken (its webhook is what calls complete_order below)
    Payment.objects.filter(pk=payment.pk).update(
        status=PaymentStatus.SUCCEEDED, captured_cents=payment.amount_cents, succeeded_at=timezone.now()
    )
    # the sweeper takes the hold back (as it would once it lapsed), and the units go to a rival
    capacity_expire_holds(ticket_type_id=ga.pk, now=order.expires_at + timedelta(seconds=1))
    pay(_buy(ga.event_id, tickets=[{"ticket_type": ga.pk, "quantity": 2}]))

    with pytest.raises(InventoryGone), transaction.atomic():
        complete_order(order_code=order.code, payment_id=payment.pk)

    order.refresh_from_db()
    assert order.status == OrderStatus.PENDING
    assert not Ticket.objects.filter(order=order).exists()
    assert not JournalTransaction.objects.filter(source_id=str(payment.pk)).exists()
    assert not EmailDelivery.objects.filter(order=order).exists()

    # the retry, the order's time being up by then
    Order.objects.filter(pk=order.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with transaction.atomic():
        result = complete_order(order_code=order.code, payment_id=payment.pk)
    assert result["status"] == "inventory_gone"
    order.refresh_from_db()
    assert order.status == OrderStatus.PENDING
    assert not Ticket.objects.filter(order=order).exists()
    assert JournalTransaction.objects.filter(source_id=str(payment.pk)).count() == 1  # the money, booked
    assert _counts(ga) == (2, 0)


def test_a_checkout_ends_once_the_payment_page_is_open_and_the_run_records_its_steps(ga):
    started = _buy(ga.event_id, tickets=[{"ticket_type": ga.pk, "quantity": 2}])

    run = checkout_run(started.order_code)
    assert run.status == RunStatus.COMPLETED
    assert run.output["payment_url"] == started.payment_url
    assert [(s.name, s.status) for s in run.steps.order_by("sequence")] == [
        ("place_order", "completed"),
        ("create_payment_session", "completed"),
    ]
    assert not OutboxMessage.objects.filter(task_name="workflows.tasks.advance_run").exists()  # no worker hop


def test_a_started_run_whose_starter_died_is_finished_by_a_worker(ga):
    """start_claimed leaves the run to its starter; if that process dies before
    its pass, the short lease runs out and the reaper hands the run on."""
    from tests.workflows.helpers import rewind
    from workflows.checkout.start import WORKFLOW, checkout_input, checkout_outcome
    from workflows.engine import start_claimed
    from workflows.engine.runs import CLAIMED_START_LEASE
    from workflows.engine.sweepers import reap_expired_leases

    data, cart = checkout_input(
        event_id=ga.event_id,
        buyer_name="Ada",
        buyer_email="ada@example.com",
        tickets=[{"ticket_type": ga.pk, "quantity": 1}],
    )
    run, lease = start_claimed(WORKFLOW, f"order:{data['order_code']}", data, organization=cart.organization_id)
    assert lease is not None
    assert reap_expired_leases() == 0  # the starter's lease is still good

    rewind(run, seconds=CLAIMED_START_LEASE.total_seconds() + 1)
    assert reap_expired_leases() == 1  # eager Celery: advanced right here

    started = checkout_outcome(checkout_run(data["order_code"]))
    assert started.payment_url
    assert _counts(ga) == (0, 1)


def test_order_paid_is_announced_with_the_payment_or_not_at_all(ga, monkeypatch):
    """order.paid and ticket.issued commit with the order's completion: a
    completion that fails announces nothing, the one that succeeds once."""
    from ticketing.models import WebhookDelivery, WebhookSubscription
    from workflows.checkout import complete as complete_module
    from workflows.engine import retry_now

    WebhookSubscription.objects.create(
        organization_id=ga.organization_id, url="http://127.0.0.1:9/hook", event_types=["order.paid", "ticket.issued"]
    )
    started = _buy(ga.event_id, tickets=[{"ticket_type": ga.pk, "quantity": 2}])

    def broken(**kwargs):
        raise RuntimeError("the hot row is on fire")

    monkeypatch.setattr(complete_module, "finalize_capacity_holds", broken)
    pay(started)
    assert Order.objects.get(code=started.order_code).status == OrderStatus.PENDING
    assert not WebhookDelivery.objects.exists()

    monkeypatch.undo()
    retry_now(complete_run(started.order_code))
    assert Order.objects.get(code=started.order_code).status == OrderStatus.PAID
    kinds = sorted(WebhookDelivery.objects.values_list("event_type", flat=True))
    assert kinds == ["order.paid", "ticket.issued", "ticket.issued"]
