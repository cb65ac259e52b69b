"""Fee calculation: the one place where money is rounded.

Rates are stored as integer basis points (1 bp = 0.01 %), amounts as integer
minor units. `Decimal` is used only inside this module, built from integers
and strings, with explicit ROUND_HALF_UP.

Per ticket: platform fee = price x platform rate + fixed per ticket, clamped
to [min, max]; free tickets carry no fee. Per order: an optional fixed
platform fee, the donation and the processor fee. When the processor fee is
passed on, the buyer is charged G = (N + fixed) / (1 - rate), rounded half up,
where N is what must be netted; the processor's own fee on G then leaves
exactly N (see FINANCE.md and tests/finance/test_fees.py for the proof by
property test). Order-level amounts are allocated back to the lines by largest
remainder, so every line's parts add up and the lines add up to the order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from decimal import ROUND_HALF_UP, Decimal

_BP = Decimal(10_000)


def round_half_up(value: Decimal) -> int:
    """Round an amount in minor units to a whole minor unit, halves up."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def percent_of(amount_cents: int, rate_bp: int) -> Decimal:
    return Decimal(amount_cents) * Decimal(rate_bp) / _BP


@dataclass(frozen=True)
class FeeRules:
    """The numbers of one fee-schedule version."""

    platform_rate_bp: int = 0
    platform_fixed_per_ticket_cents: int = 0
    platform_fixed_per_order_cents: int = 0
    platform_min_per_ticket_cents: int | None = None
    platform_max_per_ticket_cents: int | None = None
    platform_fee_passed_on: bool = True
    processor_rate_bp: int = 0
    processor_fixed_cents: int = 0
    processor_fee_passed_on: bool = True
    version: int = 0

    def __post_init__(self) -> None:
        for name in ("platform_rate_bp", "processor_rate_bp"):
            if not 0 <= getattr(self, name) < 10_000:
                raise ValueError(f"{name} must be in [0, 10000) basis points")
        amounts = (
            self.platform_fixed_per_ticket_cents,
            self.platform_fixed_per_order_cents,
            self.processor_fixed_cents,
        )
        if any(a < 0 for a in amounts):
            raise ValueError("fixed fees cannot be negative")


@dataclass(frozen=True)
class LineInput:
    key: str
    unit_price_cents: int
    quantity: int


@dataclass(frozen=True)
class LineFees:
    key: str
    quantity: int
    subtotal_cents: int
    platform_fee_cents: int
    processor_fee_cents: int
    donation_cents: int
    charged_cents: int
    organizer_net_cents: int


@dataclass(frozen=True)
class FeeBreakdown:
    currency: str
    subtotal_cents: int
    platform_fee_cents: int
    processor_fee_cents: int
    donation_cents: int
    total_cents: int
    """What the buyer is charged."""
    buyer_fees_cents: int
    """The part of total_cents that is fees shown to the buyer."""
    organizer_net_cents: int
    """What the organizer keeps of the ticket money (donation excluded)."""
    schedule_version: int
    lines: list[LineFees] = field(default_factory=list)

    def as_snapshot(self) -> dict[str, object]:
        """`dataclasses.asdict(self)` at a tenth of its cost, on every checkout
        start (asdict deep-copies each value; these are immutable)."""
        snapshot: dict[str, object] = {name: getattr(self, name) for name in _BREAKDOWN_FIELDS}
        snapshot["lines"] = [{name: getattr(line, name) for name in _LINE_FIELDS} for line in self.lines]
        return snapshot


_LINE_FIELDS = tuple(f.name for f in fields(LineFees))
_BREAKDOWN_FIELDS = tuple(f.name for f in fields(FeeBreakdown))


def platform_fee_per_ticket(rules: FeeRules, unit_price_cents: int) -> int:
    if unit_price_cents == 0:
        return 0
    fee = round_half_up(percent_of(unit_price_cents, rules.platform_rate_bp)) + rules.platform_fixed_per_ticket_cents
    if rules.platform_min_per_ticket_cents is not None:
        fee = max(fee, rules.platform_min_per_ticket_cents)
    if rules.platform_max_per_ticket_cents is not None:
        fee = min(fee, rules.platform_max_per_ticket_cents)
    return fee


def processor_fee_on(rules: FeeRules, charged_cents: int) -> int:
    """What the processor takes from a charge of `charged_cents`."""
    if charged_cents == 0:
        return 0
    return round_half_up(percent_of(charged_cents, rules.processor_rate_bp)) + rules.processor_fixed_cents


def gross_up(rules: FeeRules, net_cents: int) -> int:
    """The charge G whose processor fee leaves exactly `net_cents`."""
    if net_cents == 0:
        return 0
    numerator = Decimal(net_cents + rules.processor_fixed_cents)
    return round_half_up(numerator / (Decimal(1) - Decimal(rules.processor_rate_bp) / _BP))


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split `total` in proportion to `weights` by largest remainder: the parts
    are whole minor units and always add up to `total`."""
    if not weights:
        return []
    weight_sum = sum(weights)
    if weight_sum == 0:
        weights, weight_sum = [1] * len(weights), len(weights)
    shares = [Decimal(total) * Decimal(w) / Decimal(weight_sum) for w in weights]
    parts = [int(s) for s in shares]  # toward zero; totals here are never negative
    leftover = total - sum(parts)
    by_remainder = sorted(range(len(shares)), key=lambda i: (-(shares[i] - parts[i]), i))
    for i in by_remainder[:leftover]:
        parts[i] += 1
    return parts


def calculate_fees(
    *, rules: FeeRules, currency: str, lines: Sequence[LineInput], donation_cents: int = 0
) -> FeeBreakdown:
    if donation_cents < 0:
        raise ValueError("a donation cannot be negative")
    subtotals = [line.unit_price_cents * line.quantity for line in lines]
    line_platform = [platform_fee_per_ticket(rules, line.unit_price_cents) * line.quantity for line in lines]
    subtotal = sum(subtotals)
    paid_order = subtotal > 0
    order_platform = rules.platform_fixed_per_order_cents if paid_order else 0
    line_platform = [a + b for a, b in zip(line_platform, allocate(order_platform, subtotals), strict=True)]
    platform = sum(line_platform)

    passed_platform = platform if rules.platform_fee_passed_on else 0
    must_net = subtotal + passed_platform + donation_cents
    if rules.processor_fee_passed_on:
        total = gross_up(rules, must_net)
        processor = total - must_net
    else:
        total = must_net
        processor = processor_fee_on(rules, total)

    buyer_fees = passed_platform + (processor if rules.processor_fee_passed_on else 0)
    organizer_net = subtotal - (0 if rules.platform_fee_passed_on else platform)
    organizer_net -= 0 if rules.processor_fee_passed_on else processor

    line_processor = allocate(processor, [s + p for s, p in zip(subtotals, line_platform, strict=True)])
    line_donation = allocate(donation_cents, subtotals)
    line_results = []
    for line, sub, plat, proc, don in zip(lines, subtotals, line_platform, line_processor, line_donation, strict=True):
        charged = sub + (plat if rules.platform_fee_passed_on else 0) + don
        charged += proc if rules.processor_fee_passed_on else 0
        net = sub - (0 if rules.platform_fee_passed_on else plat) - (0 if rules.processor_fee_passed_on else proc)
        line_results.append(
            LineFees(
                key=line.key,
                quantity=line.quantity,
                subtotal_cents=sub,
                platform_fee_cents=plat,
                processor_fee_cents=proc,
                donation_cents=don,
                charged_cents=charged,
                organizer_net_cents=net,
            )
        )
    return FeeBreakdown(
        currency=currency,
        subtotal_cents=subtotal,
        platform_fee_cents=platform,
        processor_fee_cents=processor,
        donation_cents=donation_cents,
        total_cents=total,
        buyer_fees_cents=buyer_fees,
        organizer_net_cents=organizer_net,
        schedule_version=rules.version,
        lines=line_results,
    )


def share_of(amount_cents: int, rate_bp: int) -> int:
    """`rate_bp` of a non-negative amount, rounded half up (the settlement reserve)."""
    if amount_cents < 0:
        raise ValueError("share_of takes a non-negative amount")
    return round_half_up(percent_of(amount_cents, rate_bp))
