"""Run by tests/embedded/test_sqlite_default.py in a process of its own, on
the embedded default (SQLite, eager Celery, local-memory cache): a buyer's
general-admission and seated checkouts through the API and the sandbox's pay
page, end to end. Prints one JSON line of what it saw."""

from __future__ import annotations

import json
import os
import re
import sys

import django


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from django.core import mail
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment

    from seating.models import PriceCategory
    from ticketing.models import EmailDelivery, Order, Ticket, TicketType

    setup_test_environment()  # locmem e-mail backend: the messages can be counted
    call_command("migrate", verbosity=0)
    call_command("seed_demo", verbosity=0)
    client = Client()
    seen: dict[str, object] = {"vendor": django.db.connection.vendor}

    def pay(payment_url: str) -> int:
        path = "/" + payment_url.split("/", 3)[3]
        page = client.get(path)
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content)
        assert token is not None, page.content[:500]
        answer = client.post(path, {"csrfmiddlewaretoken": token.group(1).decode(), "card_number": "4242424242424242"})
        return answer.status_code

    def checkout(cart: dict[str, object], buyer: str) -> tuple[int, dict[str, str]]:
        email = buyer.split()[0].lower() + "@example.com"
        started = client.post(
            "/api/v1/public/checkouts/",
            {**cart, "buyer_name": buyer, "buyer_email": email},
            content_type="application/json",
        )
        return started.status_code, started.json()

    ga = TicketType.objects.filter(event__slug="summer-open-air").order_by("id").first()
    assert ga is not None
    seen["ga_checkout"], body = checkout(
        {"event": ga.event_id, "tickets": [{"ticket_type": ga.pk, "quantity": 2}], "seats": []}, "Ada Lovelace"
    )
    seen["ga_pay"] = pay(body["payment_url"])
    order = Order.objects.get(code=body["order_code"])
    seen["ga_status"] = order.status
    seen["ga_tickets"] = Ticket.objects.filter(order=order).count()
    seen["ga_emails"] = list(EmailDelivery.objects.filter(order=order).values_list("status", flat=True))

    category = PriceCategory.objects.filter(plan__event__slug="symphony-night").order_by("id").first()
    assert category is not None
    event_id = category.plan.event_id
    hold = client.post(
        f"/api/v1/public/events/{event_id}/seat-holds/",
        {"category": category.pk, "quantity": 2},
        content_type="application/json",
    )
    seen["seat_hold"] = hold.status_code
    held = hold.json()
    seats = [seat["id"] for seat in held["seats"]]
    seen["seated_checkout"], body = checkout(
        {"event": event_id, "tickets": [], "seats": seats, "seat_hold_token": held["token"]}, "Grace Hopper"
    )
    seen["seated_pay"] = pay(body["payment_url"])
    order = Order.objects.get(code=body["order_code"])
    seen["seated_status"] = order.status
    seen["seated_tickets"] = Ticket.objects.filter(order=order).exclude(seat=None).count()
    seen["mails_sent"] = len(mail.outbox)
    try:
        call_command("verify_ledger", verbosity=0)
        seen["ledger"] = "balanced"
    except SystemExit as exc:
        seen["ledger"] = f"exit {exc.code}"
    print(json.dumps(seen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
