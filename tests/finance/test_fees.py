from __future__ import annotations

from dataclasses import asdict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from finance.fees import FeeRules, LineInput, allocate, calculate_fees, gross_up, processor_fee_on, round_half_up

EXAMPLE_RULES = FeeRules(
    platform_rate_bp=350,
    platform_fixed_per_ticket_cents=99,
    processor_rate_bp=290,
    processor_fixed_cents=30,
)


def test_the_finance_md_example_exactly():
    # two 50.00 tickets, platform 3.5% + 0.99 passed on, processor 2.9% + 0.30 passed on
    fees = calculate_fees(rules=EXAMPLE_RULES, currency="EUR", lines=[LineInput("adult", 5000, 2)])
    assert fees.platform_fee_cents == 548
    assert fees.subtotal_cents + fees.platform_fee_cents == 10548  # N
    assert fees.total_cents == 10894  # G
    assert fees.processor_fee_cents == 346
    assert fees.organizer_net_cents == 10000
    assert processor_fee_on(EXAMPLE_RULES, fees.total_cents) == 346


def test_free_tickets_carry_no_fee():
    fees = calculate_fees(rules=EXAMPLE_RULES, currency="EUR", lines=[LineInput("free", 0, 3)])
    assert (fees.total_cents, fees.platform_fee_cents, fees.processor_fee_cents) == (0, 0, 0)


def test_absorbed_fees_come_out_of_the_organizer_share():
    rules = FeeRules(
        platform_rate_bp=350,
        platform_fixed_per_ticket_cents=99,
        platform_fee_passed_on=False,
        processor_rate_bp=290,
        processor_fixed_cents=30,
        processor_fee_passed_on=False,
    )
    fees = calculate_fees(rules=rules, currency="EUR", lines=[LineInput("adult", 5000, 2)])
    assert fees.total_cents == 10000
    assert fees.buyer_fees_cents == 0
    assert fees.processor_fee_cents == round_half_up_int(10000 * 0.029) + 30
    assert fees.organizer_net_cents == 10000 - 548 - fees.processor_fee_cents


def round_half_up_int(x: float) -> int:
    from decimal import Decimal

    return round_half_up(Decimal(str(x)))


def test_min_and_max_per_ticket_clamp_the_platform_fee():
    rules = FeeRules(platform_rate_bp=1000, platform_min_per_ticket_cents=50, platform_max_per_ticket_cents=300)
    assert calculate_fees(rules=rules, currency="EUR", lines=[LineInput("a", 100, 1)]).platform_fee_cents == 50
    assert calculate_fees(rules=rules, currency="EUR", lines=[LineInput("a", 10000, 1)]).platform_fee_cents == 300


def test_half_up_rounding_is_explicit():
    from decimal import Decimal

    assert round_half_up(Decimal("2.5")) == 3
    assert round_half_up(Decimal("3.5")) == 4  # not banker's rounding
    assert round_half_up(Decimal("2.49")) == 2


def test_allocation_adds_up_by_largest_remainder():
    assert allocate(100, [1, 1, 1]) == [34, 33, 33]
    assert allocate(5, [0, 0]) == [3, 2]
    assert allocate(0, [5, 7]) == [0, 0]


rates = st.integers(min_value=0, max_value=1500)
cents = st.integers(min_value=0, max_value=5_000_000)
rules_strategy = st.builds(
    FeeRules,
    platform_rate_bp=rates,
    platform_fixed_per_ticket_cents=st.integers(0, 500),
    platform_fixed_per_order_cents=st.integers(0, 500),
    platform_fee_passed_on=st.booleans(),
    processor_rate_bp=rates,
    processor_fixed_cents=st.integers(0, 100),
    processor_fee_passed_on=st.booleans(),
)
lines_strategy = st.lists(
    st.builds(LineInput, key=st.text(min_size=1, max_size=3), unit_price_cents=cents, quantity=st.integers(1, 10)),
    min_size=1,
    max_size=5,
)


@given(rules=rules_strategy, net=st.integers(min_value=1, max_value=100_000_000))
def test_net_of_gross_is_exactly_net(rules, net):
    gross = gross_up(rules, net)
    assert gross - processor_fee_on(rules, gross) == net


@given(rules=rules_strategy, lines=lines_strategy, donation=st.integers(0, 100_000))
def test_fee_parts_always_add_up(rules, lines, donation):
    fees = calculate_fees(rules=rules, currency="EUR", lines=lines, donation_cents=donation)
    # the snapshot stored with the order is exactly asdict's, keys in the same order
    snapshot = fees.as_snapshot()
    assert snapshot == asdict(fees)
    assert list(snapshot) == list(asdict(fees))
    assert [list(line) for line in snapshot["lines"]] == [list(line) for line in asdict(fees)["lines"]]
    passed = (fees.platform_fee_cents if rules.platform_fee_passed_on else 0) + (
        fees.processor_fee_cents if rules.processor_fee_passed_on else 0
    )
    assert fees.total_cents == fees.subtotal_cents + passed + fees.donation_cents
    assert fees.buyer_fees_cents == passed
    assert sum(line.charged_cents for line in fees.lines) == fees.total_cents
    assert sum(line.platform_fee_cents for line in fees.lines) == fees.platform_fee_cents
    assert sum(line.processor_fee_cents for line in fees.lines) == fees.processor_fee_cents
    assert sum(line.donation_cents for line in fees.lines) == fees.donation_cents
    assert sum(line.organizer_net_cents for line in fees.lines) == fees.organizer_net_cents
    for value in (fees.total_cents, fees.platform_fee_cents, fees.processor_fee_cents):
        assert isinstance(value, int) and value >= 0


def test_rules_refuse_impossible_rates():
    with pytest.raises(ValueError):
        FeeRules(processor_rate_bp=10_000)
    with pytest.raises(ValueError):
        FeeRules(platform_fixed_per_ticket_cents=-1)
