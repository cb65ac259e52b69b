from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from ticketing.selectors import events_on_sale


def event_index(request: HttpRequest) -> HttpResponse:
    return render(request, "ticketing/event_index.html", {"events": events_on_sale()})
