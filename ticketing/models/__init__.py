from ticketing.models.api_token import ApiToken
from ticketing.models.audit import AuditLogEntry
from ticketing.models.capacity_hold import CapacityHold, HoldStatus
from ticketing.models.email_delivery import DeliveryStatus, EmailDelivery, EmailKind
from ticketing.models.event import Event, EventStatus
from ticketing.models.funnel import FunnelEvent, FunnelStep
from ticketing.models.idempotency import IdempotencyRecord
from ticketing.models.order import Order, OrderLine, OrderStatus, Ticket, TicketStatus
from ticketing.models.organization import Membership, Organization, Role
from ticketing.models.signing_key import EventSigningKey
from ticketing.models.ticket_type import AdmissionPolicy, TicketKind, TicketType
from ticketing.models.webhook_subscription import (
    WEBHOOK_EVENT_TYPES,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookSubscription,
)

__all__ = [
    "WEBHOOK_EVENT_TYPES",
    "AdmissionPolicy",
    "ApiToken",
    "AuditLogEntry",
    "CapacityHold",
    "DeliveryStatus",
    "EmailDelivery",
    "EmailKind",
    "Event",
    "EventSigningKey",
    "EventStatus",
    "FunnelEvent",
    "FunnelStep",
    "HoldStatus",
    "IdempotencyRecord",
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
    "WebhookDelivery",
    "WebhookDeliveryStatus",
    "WebhookSubscription",
]
