"""Admission rules: what a ticket type's policy says about one more scan.

Pure functions over the ticket's current state, so the same rules serve the
online service (under the state's row lock) and, later, the replay of
offline scans. The policies (ticketing.models.AdmissionPolicy):

- single_entry: one entry. Scanned again while inside: already_inside; after
  an exit was scanned: too_many_entries.
- reentry: entry and exit alternate, as often as the holder likes: an entry
  while inside is already_inside, an exit while outside is not_inside.
- multi_entry: up to `max_entries` entries (too_many_entries after that).
  Entries are counted, not alternated: gates with N-entry tickets often do
  not scan exits, so an entry is not refused for being "inside".
- daily: one entry per event-local calendar day (already_today).

An exit is accepted for any policy when the holder is inside (not_inside
otherwise); it frees nothing for single_entry and multi_entry tickets, whose
entries stay used.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from scanning.models import Direction, ScanResult
from ticketing.models import AdmissionPolicy


@dataclass(frozen=True, slots=True)
class AdmissionFacts:
    inside: bool
    entries: int
    last_entry_on: date | None


@dataclass(frozen=True, slots=True)
class AdmissionChange:
    """The state after an accepted scan."""

    inside: bool
    entries: int
    last_entry_on: date | None


def admission_decide(
    *, policy: str, max_entries: int | None, direction: str, facts: AdmissionFacts, today: date
) -> ScanResult:
    """The result of scanning a valid, current ticket in `direction` given its
    state (`today` is the event-local date of the scan)."""
    if direction == Direction.OUT:
        return ScanResult.OK if facts.inside else ScanResult.NOT_INSIDE
    if policy == AdmissionPolicy.REENTRY:
        return ScanResult.ALREADY_INSIDE if facts.inside else ScanResult.OK
    if policy == AdmissionPolicy.MULTI_ENTRY:
        # A missing limit is treated as one entry: the ticket type's form
        # requires one, so only data written around it lacks it.
        limit = max_entries if max_entries and max_entries > 0 else 1
        return ScanResult.TOO_MANY_ENTRIES if facts.entries >= limit else ScanResult.OK
    if policy == AdmissionPolicy.DAILY:
        return ScanResult.ALREADY_TODAY if facts.last_entry_on == today else ScanResult.OK
    # single_entry, and any policy this code does not know yet (the strictest).
    if facts.entries >= 1:
        return ScanResult.ALREADY_INSIDE if facts.inside else ScanResult.TOO_MANY_ENTRIES
    return ScanResult.OK


def admission_apply(*, direction: str, facts: AdmissionFacts, today: date) -> AdmissionChange:
    """The state after an accepted (`ok`) scan."""
    if direction == Direction.OUT:
        return AdmissionChange(inside=False, entries=facts.entries, last_entry_on=facts.last_entry_on)
    return AdmissionChange(inside=True, entries=facts.entries + 1, last_entry_on=today)
