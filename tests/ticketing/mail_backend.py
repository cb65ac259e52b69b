"""Helpers of the e-mail sending tests: a mail backend that counts, fails and
pauses on cue, and ticket e-mails recorded as a rush records them."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.db import connections, transaction

from tests.factories import EventFactory, TicketTypeFactory, issued_order
from ticketing.models import DeliveryStatus, EmailDelivery, EmailKind
from ticketing.services.emails import email_delivery_record
from ticketing.services.signing_keys import signing_key_for_event

BACKEND = f"{__name__}.Backend"
SENT, PENDING, SENDING = DeliveryStatus.SENT, DeliveryStatus.PENDING, DeliveryStatus.SENDING


class WorkerKilled(BaseException):
    """Stands for a SIGKILL: no handler of the code under test runs."""


class Backend(LocmemBackend):
    """locmem, counting connections, and failing or pausing where a test says."""

    opened = 0
    fail_on: dict[int, BaseException] = {}  # set per test
    fail_open: BaseException | None = None
    pause_on: int | None = None  # a delivery whose send waits for `resume`
    paused, resume = threading.Event(), threading.Event()

    def open(self) -> bool:
        if getattr(self, "_open", False):
            return False
        if Backend.fail_open is not None:
            raise Backend.fail_open
        self._open = True
        Backend.opened += 1
        return True

    def close(self) -> None:
        self._open = False

    def send_messages(self, messages: Any) -> int:
        for message in messages:
            if delivery_id(message) == Backend.pause_on:
                Backend.paused.set()
                Backend.resume.wait(timeout=10)
            failure = Backend.fail_on.get(delivery_id(message))
            if failure is not None:
                raise failure
        return super().send_messages(messages)

    @classmethod
    def reset(cls) -> None:
        cls.resume.set()  # whoever still waits goes on
        cls.opened, cls.fail_on, cls.fail_open, cls.pause_on = 0, {}, None, None
        cls.paused, cls.resume = threading.Event(), threading.Event()


def delivery_id(message: Any) -> int:
    return int(message.extra_headers["Message-ID"].split("@")[0].removeprefix("<delivery-"))


def record_deliveries(organization: Any, count: int, *, key: bool = True) -> list[EmailDelivery]:
    """`count` ticket e-mails recorded (one order of one or two tickets each),
    oldest first; the event has its signing key (`key`), as in a rush."""
    ga = TicketTypeFactory(event=EventFactory(organization=organization))
    if key:
        signing_key_for_event(event=ga.event)
    orders = [issued_order(ga.event, [(ga, None)] * (1 + n % 2)) for n in range(count)]
    with transaction.atomic():
        return [
            email_delivery_record(order=order, kind=EmailKind.TICKETS, dedup_key=f"tickets:{order.code}")
            for order in orders
        ]


def states(deliveries: list[EmailDelivery]) -> list[tuple[str, int]]:
    """(status, attempts) of each delivery."""
    found = {
        pk: (status, attempts) for pk, status, attempts in EmailDelivery.objects.values_list("id", "status", "attempts")
    }
    return [found[d.pk] for d in deliveries]


def sent_ids() -> Counter[int]:
    """How many times each delivery went out."""
    return Counter(delivery_id(message) for message in mail.outbox)


@pytest.fixture(autouse=True)
def backend(settings: Any) -> Any:
    """The e-mail tests' backend, with the batch settings they assume (a test
    module that imports this fixture uses it for each of its tests)."""
    settings.EMAIL_BACKEND = BACKEND
    settings.EMAIL_BATCH_SIZE = 20
    settings.EMAIL_DRAIN_BATCHES = 50
    Backend.reset()
    yield Backend
    Backend.reset()


def in_thread(results: dict[str, Any], name: str, fn: Any) -> threading.Thread:
    """Start `fn` in a thread of its own (its own database connection, closed
    after); its return value, or what it raised, lands in results[name]."""

    def run() -> None:
        try:
            results[name] = fn()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            results[name] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread
