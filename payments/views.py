"""HTTP edges of the payments domain.

- POST /webhooks/payments/<provider>/: the providers' webhook endpoint.
  200 {"received", "duplicate", "outcome"} for an accepted or duplicate event;
  400 {"code", "message", "detail"} for an unsigned, forged, stale, malformed,
  unknown or mismatched one (the provider retries those, and we alert on
  them); 404 for an unknown provider; 429 on lock timeout (retried).
- GET/POST /pay/sandbox/<token>/: the sandbox provider's hosted pay page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.safestring import SafeString
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from payments.exceptions import SandboxSessionNotFound
from payments.forms import SandboxCardForm
from payments.models import SandboxSession
from payments.providers import provider_enabled
from payments.sandbox.gateway import (
    TEST_CARDS,
    ChargeOutcome,
    effective_status,
    sandbox_charge,
    sandbox_session_by_token,
)
from payments.services.webhooks import webhook_receive
from ticketing.exceptions import Busy, DomainError


@csrf_exempt  # providers cannot send our CSRF token; the signature authenticates the request
@require_POST
def provider_webhook(request: HttpRequest, provider: str) -> JsonResponse:
    try:
        event, created = webhook_receive(provider=provider, raw_body=request.body, headers=request.headers)
    except DomainError as exc:
        response = JsonResponse(exc.as_dict(), status=exc.status)
        if isinstance(exc, Busy):
            response["Retry-After"] = str(exc.retry_after_seconds)
        return response
    return JsonResponse({"received": True, "duplicate": not created, "outcome": event.outcome})


# Minor units per currency for display on the pretend page; currencies not
# listed have two decimals.
_ZERO_DECIMAL = frozenset({"JPY", "KRW", "VND", "CLP", "ISK", "UGX", "XAF", "XOF"})
TEST_CARD_ROWS = tuple((number, card.outcome, card.failure_code) for number, card in TEST_CARDS.items())
CARD_FIELDS_TEMPLATE = "payments/sandbox_card_fields.html"
TEST_CARDS_TEMPLATE = "payments/sandbox_test_cards.html"


def _amount_display(amount_cents: int, currency: str) -> str:
    if currency in _ZERO_DECIMAL:
        return f"{amount_cents} {currency}"
    return f"{amount_cents // 100}.{amount_cents % 100:02d} {currency}"


def _session_or_404(token: str) -> SandboxSession:
    try:
        return sandbox_session_by_token(token=token)
    except SandboxSessionNotFound as exc:
        raise Http404("No such sandbox payment page.") from exc


_FRAGMENTS: dict[str, SafeString] = {}


def _fragment(template: str, context: Callable[[], dict[str, Any]]) -> SafeString:
    """A part of the pay page whose HTML never changes: rendered once per
    process, afresh in development (template edits)."""
    if settings.DEBUG:
        return render_to_string(template, context())
    html = _FRAGMENTS.get(template)
    if html is None:
        html = _FRAGMENTS[template] = render_to_string(template, context())
    return html


def _test_cards() -> SafeString:
    """The list of test cards (a tenth of the pay page's CPU)."""
    return _fragment(TEST_CARDS_TEMPLATE, lambda: {"test_cards": TEST_CARD_ROWS})


def _card_fields(form: SandboxCardForm, outcome: str) -> SafeString:
    """The card form's fields. A fresh form renders the same HTML every time
    (three widget templates per field were half the pay page's rendering
    time); a form holding the buyer's input or errors is rendered afresh."""
    if form.is_bound:
        return render_to_string(CARD_FIELDS_TEMPLATE, {"form": form, "outcome": outcome})
    return _fragment(CARD_FIELDS_TEMPLATE, lambda: {"form": SandboxCardForm(), "outcome": ""})


@require_http_methods(["GET", "POST"])
def sandbox_pay(request: HttpRequest, token: str) -> HttpResponse:
    """The sandbox's hosted pay page: the buyer enters a test card and pays or
    is declined. A double submit charges once (the gateway locks the row).
    The page reads the session in one cached statement; paying reads it not
    at all when the card is charged (the charge's UPDATE returns the row),
    and once, under its lock, when it is not."""
    if not provider_enabled("sandbox"):
        raise Http404("The sandbox provider is not enabled.")
    form = SandboxCardForm()
    message, outcome, status_code = "", "", 200
    session: SandboxSession | None = None
    if request.method == "POST":
        if request.POST.get("action") == "cancel":
            # Like a hosted checkout's "back" link: the session stays open
            # until it expires; the buyer may come back.
            return HttpResponseRedirect(_session_or_404(token).cancel_url or "/")
        form = SandboxCardForm(request.POST)
        if form.is_valid():
            try:
                result = sandbox_charge(token=token, card_number=form.cleaned_data["card_number"])
            except SandboxSessionNotFound as exc:
                raise Http404("No such sandbox payment page.") from exc
            session, outcome, message = result.session, result.outcome, result.message
            if result.outcome in (ChargeOutcome.SUCCEEDED, ChargeOutcome.ALREADY_PAID) and session.success_url:
                return HttpResponseRedirect(session.success_url)
            if result.outcome in (ChargeOutcome.DECLINED, ChargeOutcome.INVALID_CARD):
                form.add_error("card_number", message)
                status_code = 402 if result.outcome == ChargeOutcome.DECLINED else 400
            elif result.outcome == ChargeOutcome.EXPIRED:
                status_code = 410
        else:
            status_code = 400
    if session is None:
        session = _session_or_404(token)
    context = {
        "session": session,
        "status": effective_status(session, now=timezone.now()),
        "amount": _amount_display(session.amount_cents, session.currency),
        "card_fields": _card_fields(form, outcome),
        "outcome": outcome,
        "message": message,
        "test_cards": _test_cards(),
    }
    return render(request, "payments/sandbox_pay.html", context, status=status_code)
