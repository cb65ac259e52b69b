"""Who asked for a run, carried in its JSON input.

A run's input must be JSON, but services audit the actor (`by=`). A signed-in
user travels as their id and comes back as the user (so audit rows link to
them); anything else travels as its text (a device, "system", an API token's
name) and is audited as that text."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model


def actor_ref(by: Any) -> dict[str, Any] | None:
    if by is None:
        return None
    if getattr(by, "is_authenticated", False) and getattr(by, "pk", None):
        return {"user_id": by.pk, "repr": str(by)[:200]}
    return {"user_id": None, "repr": str(by)[:200]}


def actor_from(ref: dict[str, Any] | None) -> Any:
    if not ref:
        return None
    if ref.get("user_id"):
        user = get_user_model().objects.filter(pk=ref["user_id"]).first()
        if user is not None:
            return user
    return ref.get("repr") or None
