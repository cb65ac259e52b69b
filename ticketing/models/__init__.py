from ticketing.models.audit import AuditLogEntry
from ticketing.models.capacity_hold import CapacityHold, HoldStatus
from ticketing.models.email_delivery import DeliveryStatus, EmailDelivery, EmailKind
from ticketing.models.event import Event, EventStatus
from ticketing.models.order import Order, OrderLine, OrderStatus, Ticket, TicketStatus
from ticketing.models.organization import Membership, Organization, Role
from ticketing.models.signing_key import EventSigningKey
from ticketing.models.ticket_type import AdmissionPolicy, TicketKind, TicketType

__all__ = [
    "AdmissionPolicy",
    "AuditLogEntry",
    "CapacityHold",
    "DeliveryStatus",
    "EmailDelivery",
    "EmailKind",
    "Event",
    "EventSigningKey",
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
