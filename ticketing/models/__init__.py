from ticketing.models.audit import AuditLogEntry
from ticketing.models.capacity_hold import CapacityHold, HoldStatus
from ticketing.models.event import Event, EventStatus
from ticketing.models.order import Order, OrderLine, OrderStatus, Ticket, TicketStatus
from ticketing.models.organization import Membership, Organization, Role
from ticketing.models.ticket_type import AdmissionPolicy, TicketKind, TicketType

__all__ = [
    "AdmissionPolicy",
    "AuditLogEntry",
    "CapacityHold",
    "Event",
    "EventStatus",
    "HoldStatus",
    "Membership",
    "Order",
    "OrderLine",
    "OrderStatus",
    "Organization",
    "Role",
    "Ticket",
    "TicketKind",
    "TicketStatus",
    "TicketType",
]
