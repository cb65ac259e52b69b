"""The provider registry: `get_provider(name)` is the one way services obtain one.

Which providers are enabled is a deployment decision (settings.PAYMENT_PROVIDERS):
production drops "sandbox", whose test cards would otherwise let anyone pay
with nothing.
"""

from __future__ import annotations

from django.conf import settings
from django.utils.module_loading import import_string

from payments.exceptions import ProviderUnknown
from payments.providers.base import PaymentProvider

PROVIDER_CLASSES: dict[str, str] = {
    "sandbox": "payments.providers.sandbox.SandboxProvider",
    "stripe": "payments.providers.stripe.StripeProvider",
}

DEFAULT_ENABLED_PROVIDERS: tuple[str, ...] = ("sandbox", "stripe")


def enabled_provider_names() -> tuple[str, ...]:
    return tuple(getattr(settings, "PAYMENT_PROVIDERS", DEFAULT_ENABLED_PROVIDERS))


def provider_enabled(name: str) -> bool:
    return name in PROVIDER_CLASSES and name in enabled_provider_names()


def get_provider(name: str) -> PaymentProvider:
    """The provider called `name`; raises ProviderUnknown if it does not exist
    or is not enabled. Providers read their settings when built, so this is
    cheap and follows settings changes (and test overrides)."""
    if not provider_enabled(name):
        raise ProviderUnknown(detail={"provider": name, "enabled": list(enabled_provider_names())})
    provider_class = import_string(PROVIDER_CLASSES[name])
    return provider_class()
