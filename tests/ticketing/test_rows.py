"""ticketing.rows: the hot paths' cached statements read and write what the
ORM would, and come back as the ORM's own instances."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.apps import apps
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from tests.factories import EventFactory, TicketTypeFactory, issued_order
from tests.round_trips import counting_round_trips
from ticketing import rows
from ticketing.models import AuditLogEntry, Order, OrderLine, OrderStatus, TicketType
from ticketing.models.funnel import FunnelEvent

pytestmark = pytest.mark.django_db


def _issued() -> Order:
    ticket_type = TicketTypeFactory()
    return issued_order(ticket_type.event, [(ticket_type, None)])


def _order(event, **values) -> Order:
    fields = {
        "organization_id": event.organization_id,
        "event": event,
        "buyer_name": "Ada",
        "buyer_email": "ada@example.com",
        "currency": "EUR",
        "subtotal_cents": 5000,
        "fees_cents": 565,
        "total_cents": 5565,
        "fee_snapshot": {"total_cents": 5565, "lines": [{"key": "1"}]},
        "expires_at": timezone.now() + timedelta(minutes=15),
    }
    return Order(**{**fields, **values})


def test_insert_sets_keys_defaults_and_timestamps() -> None:
    # given
    event = EventFactory()
    before = timezone.now()

    # when
    first, second = rows.insert([_order(event), _order(event, buyer_name="Bob")])

    # then: what the ORM reads back is what was written
    assert first.pk and second.pk and first.pk != second.pk
    assert not first._state.adding
    stored = Order.objects.get(pk=first.pk)
    assert stored.code == first.code and len(stored.code) > 10
    assert stored.status == OrderStatus.PENDING
    assert stored.fee_snapshot == {"total_cents": 5565, "lines": [{"key": "1"}]}
    assert before <= stored.created_at <= timezone.now()
    assert stored.updated_at >= stored.created_at
    assert Order.objects.get(pk=second.pk).buyer_name == "Bob"


def test_insert_of_nothing_is_nothing() -> None:
    assert rows.insert([]) == []


def test_insert_refused_by_a_constraint_raises_the_orms_error() -> None:
    event = EventFactory()
    taken = rows.insert([_order(event)])[0]

    with pytest.raises(IntegrityError), transaction.atomic():
        rows.insert([_order(event, code=taken.code)])


def test_insert_unless_exists_inserts_once() -> None:
    event = EventFactory()
    now = timezone.now()
    first = FunnelEvent(event_id=event.pk, step="paid", order_code="abc", quantity=2, created_at=now)
    again = FunnelEvent(event_id=event.pk, step="paid", order_code="abc", quantity=2, created_at=now)

    assert rows.insert_unless_exists(first, conflict=()) == first.pk
    assert rows.insert_unless_exists(again, conflict=()) is None
    assert again.pk is None
    assert FunnelEvent.objects.filter(order_code="abc").count() == 1


def test_save_fields_writes_only_those_fields_and_touches_auto_now() -> None:
    # given
    order = rows.insert([_order(EventFactory())])[0]
    stale = Order.objects.get(pk=order.pk)
    Order.objects.filter(pk=order.pk).update(buyer_name="Changed elsewhere")

    # when
    with transaction.atomic():
        stale.mark_paid(paid_at=timezone.now(), reason="test")
        updated = rows.save_fields(stale, ["status", "paid_at", "updated_at"])

    # then
    assert updated == 1
    stored = Order.objects.get(pk=order.pk)
    assert stored.status == OrderStatus.PAID
    assert stored.paid_at is not None
    assert stored.buyer_name == "Changed elsewhere"
    assert stored.updated_at > order.updated_at
    # the transition's audit row, written through rows.insert too
    assert AuditLogEntry.objects.filter(object_id=str(order.pk), target_state="paid").count() == 1


def test_save_fields_of_a_deleted_row_updates_nothing() -> None:
    order = rows.insert([_order(EventFactory())])[0]
    Order.objects.filter(pk=order.pk).delete()

    assert rows.save_fields(order, ["buyer_name"]) == 0


def test_select_builds_the_orms_instances_with_related_and_annotations() -> None:
    # given
    ticket_type = TicketTypeFactory(price_cents=2500)

    # when
    found = rows.select(
        TicketType,
        '"ticketing_tickettype"."event_id" = %s',
        [ticket_type.event_id],
        related=("event",),
        annotate={"doubled": '"ticketing_tickettype"."price_cents" * 2'},
    )

    # then
    assert found == [ticket_type]
    (loaded,) = found
    assert loaded.price_cents == 2500
    assert loaded.doubled == 5000  # type: ignore[attr-defined]
    with django_queries() as seen:
        assert loaded.event.name == ticket_type.event.name
        assert loaded.event.starts_at == ticket_type.event.starts_at
    assert seen == []


def test_select_loads_only_the_fields_asked_for() -> None:
    order = _issued()

    (loaded,) = rows.select(Order, "code = %s", [order.code], fields=("id", "status", "total_cents"))

    assert loaded.pk == order.pk and loaded.total_cents == order.total_cents
    assert loaded.get_deferred_fields() >= {"buyer_email", "fee_snapshot"}


def test_select_one_is_none_when_nothing_matches() -> None:
    assert rows.select_one(Order, "code = %s", ["no such order"]) is None


def test_a_nullable_relation_left_out_is_none() -> None:
    order = _issued()

    line = rows.select_one(OrderLine, '"ticketing_orderline"."order_id" = %s', [order.pk], related=("seat", "order"))

    assert line is not None
    assert line.seat is None
    assert line.order.code == order.code


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("require_postgres")
def test_select_lock_holds_the_row_until_commit() -> None:
    # given: one transaction holds the order's row lock
    order = _issued()
    locked = threading.Event()
    release = threading.Event()
    waited: list[float] = []

    def holder() -> None:
        try:
            with transaction.atomic():
                assert rows.select_one(Order, "code = %s", [order.code], lock=True) is not None
                locked.set()
                release.wait(5)
        finally:
            connection.close()

    def contender() -> None:
        try:
            with transaction.atomic():
                start = timezone.now()
                rows.select_one(Order, "code = %s", [order.code], lock=True)
                waited.append((timezone.now() - start).total_seconds())
        finally:
            connection.close()

    first = threading.Thread(target=holder)
    first.start()
    assert locked.wait(5)
    second = threading.Thread(target=contender)
    second.start()

    # when: the holder lets go after a while
    threading.Timer(0.3, release.set).start()
    first.join(10)
    second.join(10)

    # then: the contender waited for it
    assert waited and waited[0] >= 0.25


class django_queries:
    """The statements run inside the block."""

    def __enter__(self) -> list[str]:
        from django.test.utils import CaptureQueriesContext

        self.context = CaptureQueriesContext(connection)
        self.context.__enter__()
        self.seen: list[str] = []
        return self.seen

    def __exit__(self, *exc: object) -> None:
        self.context.__exit__(*exc)
        self.seen.extend(q["sql"] for q in self.context.captured_queries)


# --- writes sent with the next statement ---------------------------------------------


def _audit(reason: str) -> AuditLogEntry:
    from django.contrib.contenttypes.models import ContentType

    return AuditLogEntry(
        content_type=ContentType.objects.get_for_model(Order),
        object_id="1",
        transition="test",
        source_state="a",
        target_state="b",
        reason=reason,
    )


def _reasons() -> list[str]:
    return list(AuditLogEntry.objects.filter(transition="test").order_by("id").values_list("reason", flat=True))


def test_deferred_writes_travel_with_the_next_statement_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    # given
    event = EventFactory()
    connection.ensure_connection()

    # when
    with counting_round_trips(monkeypatch) as trips, transaction.atomic(), django_queries() as seen, rows.deferred():
        rows.insert_later([_audit("first"), _audit("second")])
        rows.execute_later('UPDATE "ticketing_auditlogentry" SET "reason" = %s WHERE "reason" = %s', ["1st", "first"])
        inserted = rows.insert([_order(event)])  # carries the three before it, and still answers its own
        count = AuditLogEntry.objects.filter(transition="test").count()  # sees them
        rows.insert_later([_audit("third")])  # sent when the block ends

    # then
    assert inserted[0].pk is not None
    assert Order.objects.filter(pk=inserted[0].pk).exists()
    assert count == 2
    assert _reasons() == ["1st", "second", "third"]
    assert len(seen) == 5  # every statement is logged
    if connection.vendor == "postgresql":
        # BEGIN, the insert with its passengers, the count, the last one alone, COMMIT
        assert trips.count == 5


def test_the_rowcount_and_rows_are_the_callers_statements() -> None:
    order = rows.insert([_order(EventFactory())])[0]

    with transaction.atomic(), rows.deferred():
        rows.insert_later([_audit("x")])
        updated = rows.save_fields(order, ["buyer_name"])
        rows.insert_later([_audit("y")])
        found = rows.select(Order, "id = %s", [order.pk])

    assert updated == 1
    assert found == [order]


def test_a_savepoint_rolled_back_discards_what_was_deferred_inside_it() -> None:
    with transaction.atomic(), rows.deferred():
        rows.insert_later([_audit("before")])
        try:
            with transaction.atomic():
                rows.insert_later([_audit("inside, undone")])
                raise RuntimeError("undo the savepoint")
        except RuntimeError:
            pass
        rows.insert_later([_audit("after")])

    assert _reasons() == ["before", "after"]


def test_a_savepoint_rolled_back_after_a_failed_statement_leaves_the_transaction_usable() -> None:
    event = EventFactory()
    taken = rows.insert([_order(event)])[0]

    with transaction.atomic(), rows.deferred():
        rows.insert_later([_audit("before")])
        with pytest.raises(IntegrityError), transaction.atomic():
            rows.insert_later([_audit("inside, undone")])
            rows.insert([_order(event, code=taken.code)])
        rows.insert_later([_audit("after")])

    assert _reasons() == ["before", "after"]


def test_a_failing_block_sends_nothing_and_rolls_back() -> None:
    with pytest.raises(RuntimeError), transaction.atomic(), rows.deferred():
        rows.insert_later([_audit("lost")])
        raise RuntimeError("boom")

    assert _reasons() == []


def test_outside_a_deferred_block_writes_are_sent_at_once() -> None:
    with transaction.atomic():
        rows.insert_later([_audit("now")])
        assert _reasons() == ["now"]


def test_nested_deferred_blocks_are_one() -> None:
    with transaction.atomic(), rows.deferred():
        rows.insert_later([_audit("outer")])
        with rows.deferred():
            rows.insert_later([_audit("inner")])
        assert _reasons() == ["outer", "inner"]


def test_from_values_takes_the_values_in_any_order() -> None:
    order = rows.from_values(Order, {"code": "abc", "total_cents": 5, "id": 7})

    assert (order.pk, order.code, order.total_cents) == (7, "abc", 5)
    assert not order._state.adding
    assert "buyer_email" in order.get_deferred_fields()


def _samples(types: tuple[type, ...]) -> list[object]:
    by_type: dict[type, list[object]] = {
        str: ["", "Ada", "ünïcode ✓"],
        int: [0, 1, -7, 2**40],
        bool: [True, False],
        datetime: [timezone.now(), datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)],
    }
    return [None, *(value for kind in types for value in by_type[kind])]


def test_values_sent_as_they_are_are_what_the_orm_would_send() -> None:
    """Every field of every model that rows sends without the ORM's
    conversion calls, with every kind of value it lets through: the value
    is the one Field.get_db_prep_save would have sent."""
    checked = 0
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            simple = rows._simple(field, connection.vendor)
            if simple is None:
                continue
            for value in _samples((simple[0],)):
                obj = model()
                obj.__dict__[field.attname] = value
                expected = field.get_db_prep_save(field.pre_save(obj, False), connection)
                prepared = rows._prepared(field, obj, False, connection)
                assert (type(prepared), prepared) == (type(expected), expected), (model, field.name, value)
                checked += 1
    assert checked > 500, "the fast path covers the common fields"


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        ("7", 7),  # a string for an integer column is converted, as the ORM converts it
        (True, 1),  # a bool is not sent as an integer as it is
        (7.0, 7),
    ],
)
def test_values_of_other_types_go_through_the_orms_conversion(value: object, sent: object) -> None:
    line = OrderLine(quantity=value)
    field = OrderLine._meta.get_field("quantity")

    prepared = rows._prepared(field, line, True, connection)

    assert prepared == sent and isinstance(prepared, int) and type(prepared) is not bool


def test_auto_now_timestamps_and_naive_datetimes_go_through_the_orm() -> None:
    order = Order(expires_at=timezone.now().replace(tzinfo=None))
    updated_at = Order._meta.get_field("updated_at")
    before = timezone.now()

    stamped = rows._prepared(updated_at, order, False, connection)

    assert stamped is not None and stamped >= before, "auto_now sets the time, as save() would"
    assert rows._simple(updated_at, connection.vendor) is None
    assert rows._simple(Order._meta.get_field("expires_at"), "sqlite") is None
