"""What the ticketing domain announces after commit (analytics, integrations)."""

from django.dispatch import Signal

# Sent after the transaction that marked an order paid has committed.
# Keyword arguments: order_id, order_code, event_id, organization_id, tickets (count).
order_completed = Signal()
