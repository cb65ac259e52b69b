"""Seating's domain errors.

Each is a ticketing.exceptions.DomainError with a stable `code` (clients match
on it, so never rename one), a human message and the HTTP status the API edge
maps it to. `detail` carries the machine-readable specifics, e.g. which seats
were taken.
"""

from __future__ import annotations

from ticketing.exceptions import DomainError, NotFound


class InvalidSeatSelection(DomainError):
    """Empty selection, duplicate or malformed ids, too many seats, bad quantity."""

    code = "invalid_seat_selection"
    message = "This seat selection is not valid."
    status = 400


class UnknownSeat(DomainError):
    code = "unknown_seat"
    message = "Some of the chosen seats do not exist."
    status = 400


class SeatWrongEvent(DomainError):
    code = "seat_wrong_event"
    message = "Some of the chosen seats belong to another event."
    status = 400


class SeatBlocked(DomainError):
    code = "seat_blocked"
    message = "Some of the chosen seats are not for sale."
    status = 409


class SeatUnavailable(DomainError):
    """Some seats are sold or held by a live hold; `detail["seat_ids"]` lists them."""

    code = "seat_unavailable"
    message = "Some of the chosen seats have just been taken."
    status = 409


class OrphanSeat(DomainError):
    """The plan forbids orphans and the selection strands a single free seat."""

    code = "orphan_seat"
    message = "Please do not leave a single empty seat between taken seats."
    status = 400


class NoSeatsAvailable(DomainError):
    code = "no_seats_available"
    message = "Not enough seats are left in this category."
    status = 409


class UnknownCategory(DomainError):
    code = "unknown_category"
    message = "This price category does not exist for this event."
    status = 400


class SeatHoldNotFound(NotFound):
    code = "seat_hold_not_found"
    message = "This seat reservation does not exist."


class SeatHoldExpired(DomainError):
    """The hold can no longer be extended: it expired or was closed."""

    code = "seat_hold_expired"
    message = "Your seat reservation has expired."
    status = 410


class SeatHoldInUse(DomainError):
    """Another checkout adopted this hold first (e.g. the checkout form sent
    twice); `detail["order"]` names that checkout's order."""

    code = "seat_hold_in_use"
    message = "These seats are already being checked out."
    status = 409


class SeatHoldMismatch(DomainError):
    """A checkout's seats are not exactly the seats of the hold it brings."""

    code = "seat_hold_mismatch"
    message = "Your held seats differ from the seats in your order. Continue with your held seats or release them."
    status = 409


class HoldLost(DomainError):
    """The hold expired and some of its seats were taken by someone else since."""

    code = "hold_lost"
    message = "Your seat reservation expired and some of its seats were taken."
    status = 410


class InvalidSeatingPlan(DomainError):
    code = "invalid_seating_plan"
    message = "This seating plan is not valid."
    status = 400
