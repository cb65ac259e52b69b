"""Domain errors.

Every domain raises subclasses of one `DomainError`, each with a stable
machine-readable `code`, a human message and the HTTP status the API edge and
the pages map it to. The API exception handler and the page error path render
them as {"code", "message", "detail"}.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code: str = "domain_error"
    message: str = "The request could not be completed."
    status: int = 400

    def __init__(self, message: str | None = None, *, detail: Any = None) -> None:
        self.message = message or self.message
        self.detail = detail
        super().__init__(self.message)

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "detail": self.detail}


class InvalidInput(DomainError):
    code = "invalid"
    message = "The request is not valid."
    status = 400


class NotFound(DomainError):
    code = "not_found"
    message = "Not found."
    status = 404


class Forbidden(DomainError):
    code = "forbidden"
    message = "You may not do this."
    status = 403


class Busy(DomainError):
    """A lock could not be taken in time: the caller should retry shortly."""

    code = "busy"
    message = "We are busy right now; please try again in a moment."
    status = 429
    retry_after_seconds = 1


class InvalidState(DomainError):
    code = "invalid_state"
    message = "This cannot be done in the object's current state."
    status = 409


# --- ticketing's own errors ----------------------------------------------------


class InvalidQuantity(DomainError):
    code = "invalid_quantity"
    message = "The quantity is not allowed for this ticket type."
    status = 400


class TicketTypeNotFound(NotFound):
    code = "ticket_type_not_found"
    message = "This ticket type does not exist."


class NotOnSale(DomainError):
    code = "not_on_sale"
    message = "These tickets are not on sale."
    status = 409


class SalesNotStarted(NotOnSale):
    code = "sales_not_started"
    message = "Sales for these tickets have not started yet."


class SalesEnded(NotOnSale):
    code = "sales_ended"
    message = "Sales for these tickets have ended."


class SoldOut(DomainError):
    code = "sold_out"
    message = "Not enough tickets are left."
    status = 409


class CapacityHoldLost(DomainError):
    code = "hold_expired"
    message = "Your reservation expired and was released."
    status = 410


# --- orders and tickets after the sale (refund, transfer, revoke) -------------------


class OrderNotPaid(InvalidState):
    code = "order_not_paid"
    message = "Only a paid order can be refunded."


class TicketNotFound(NotFound):
    code = "ticket_not_found"
    message = "This ticket does not exist."


class TicketNotInOrder(DomainError):
    code = "ticket_not_in_order"
    message = "This ticket does not belong to the order."
    status = 400


class TicketAlreadyRefunded(InvalidState):
    code = "ticket_already_refunded"
    message = "This ticket has already been refunded."


class TicketNotValid(InvalidState):
    """Revoked (or refunded) tickets cannot be refunded, transferred or revoked again."""

    code = "ticket_not_valid"
    message = "This ticket is no longer valid."


class NothingToRefund(InvalidState):
    code = "nothing_to_refund"
    message = "There is nothing left to refund on this order."


class RefundInProgress(InvalidState):
    """Another refund of the same tickets (or of the whole order) is on its way."""

    code = "refund_in_progress"
    message = "A refund of these tickets is already in progress."
