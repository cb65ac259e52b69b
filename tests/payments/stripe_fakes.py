"""A stand-in for the network under the official `stripe` package.

Installed as stripe.default_http_client, it receives exactly what the stripe
library would send over HTTPS (method, URL, headers such as Idempotency-Key,
the form-encoded body) and answers with canned JSON, so the real library code
runs end to end and nothing leaves the process.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    params: dict[str, str]


class FakeStripeHTTPClient(stripe.HTTPClient):
    name = "fake"

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[RecordedRequest] = []
        self._responses: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]] = {}
        self._served_last: set[tuple[str, str]] = set()

    def respond(self, method: str, path: str, body: dict[str, Any], status: int = 200) -> None:
        """Queue an answer for a later `method path` request. Answers are served
        in order; the last one repeats until another is queued."""
        key = (method.lower(), path)
        if key in self._served_last:
            self._responses[key] = []
            self._served_last.discard(key)
        self._responses.setdefault(key, []).append((status, body))

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: Any = None,
    ) -> tuple[str, int, Mapping[str, str]]:
        parts = urlsplit(url)
        query = post_data if method.lower() == "post" else parts.query
        if isinstance(query, bytes):
            query = query.decode()
        self.requests.append(
            RecordedRequest(
                method=method.lower(),
                path=parts.path,
                headers={k.lower(): v for k, v in (headers or {}).items()},
                params=dict(parse_qsl(query or "", keep_blank_values=True)),
            )
        )
        key = (method.lower(), parts.path)
        queue = self._responses.get(key)
        if not queue:
            raise AssertionError(f"unexpected Stripe call: {method} {parts.path}")
        if len(queue) > 1:
            status, body = queue.pop(0)
        else:
            status, body = queue[0]
            self._served_last.add(key)
        return json.dumps(body), status, {"request-id": "req_fake"}

    def close(self) -> None:
        pass


def checkout_session_json(*, session_id: str = "cs_test_1", status: str = "open", **extra: Any) -> dict[str, Any]:
    return {
        "id": session_id,
        "object": "checkout.session",
        "url": f"https://checkout.stripe.test/c/pay/{session_id}",
        "expires_at": 1_900_000_000,
        "status": status,
        "payment_status": "unpaid",
        "amount_total": 2500,
        "currency": "eur",
        "payment_intent": None,
        **extra,
    }
