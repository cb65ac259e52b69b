"""Settings of the webhook-shuffle drill: the project's settings, except that
the sandbox provider does not deliver its own webhooks. The drill plays the
provider's delivery instead: it reads the webhooks the sandbox recorded and
POSTs each of them three times, shuffled, to /webhooks/payments/sandbox/
over HTTP (bench/drills/webhooks.py).

The sandbox's after-commit delivery is switched off, any delivery message is
routed to a queue no worker reads, and the sandbox's delivery sweeper is left
out of the beat schedule. Nothing else changes: our side of the wire (the
webhook endpoint, ProcessPayment, CompleteCheckout, the e-mails, every other
sweeper) runs as in production.
"""

from config.settings import *  # noqa: F403
from config.settings import CELERY_BEAT_SCHEDULE, CELERY_TASK_ROUTES

PARKED_QUEUE = "drill-sandbox-deliveries-parked"

SANDBOX_WEBHOOKS_DELIVER_ON_COMMIT = False
CELERY_TASK_ROUTES = {**CELERY_TASK_ROUTES, "payments.tasks.deliver_sandbox_webhook": {"queue": PARKED_QUEUE}}
CELERY_BEAT_SCHEDULE = {
    name: entry for name, entry in CELERY_BEAT_SCHEDULE.items() if name != "payments-deliver-sandbox-webhooks"
}
