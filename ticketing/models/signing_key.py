"""Per-event Ed25519 keys that sign ticket QR codes.

Each event has at most one *active* key (a partial unique constraint); it
signs every code rendered for the event. Rotation retires the active key and
creates a new one. Retired keys are kept, never deleted, because codes they
signed (printed PDFs, wallet passes, screenshots) must keep scanning; scanning
devices download the public halves of all of an event's keys.

The private key is stored encrypted at rest with Fernet, under a key derived
from settings.SECRET_KEY with HKDF-SHA256. Rotation caveat: changing
SECRET_KEY makes the stored private keys unreadable. To rotate SECRET_KEY,
move the old value to settings.SECRET_KEY_FALLBACKS (decryption tries it
too), then either rotate every event's signing key (old codes keep verifying:
only public keys are needed for that) or re-encrypt the private keys, and
only then drop the fallback. A key whose private half can no longer be
decrypted still verifies codes, but cannot sign; rotating the event's key
fixes that.
"""

from __future__ import annotations

import base64
from datetime import datetime
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

from ticketing.tenancy import TenantQuerySet
from ticketing.ticket_codes import b64url_decode, b64url_encode, new_kid

# The HKDF "info" separates this use of SECRET_KEY from every other one.
_FERNET_INFO = b"ticketing.EventSigningKey.private_key.v1"


@lru_cache(maxsize=8)
def _fernet_for(secrets_in_order: tuple[str, ...]) -> MultiFernet:
    """Encrypt under the first secret, decrypt under any (SECRET_KEY_FALLBACKS)."""
    fernets = []
    for secret in secrets_in_order:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_FERNET_INFO).derive(
            secret.encode("utf-8")
        )
        fernets.append(Fernet(base64.urlsafe_b64encode(derived)))
    return MultiFernet(fernets)


def _secrets() -> tuple[str, ...]:
    # Looked up on every call so override_settings and a SECRET_KEY rotation
    # take effect without a restart.
    return (settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", []))


def _fernet() -> MultiFernet:
    return _fernet_for(_secrets())


@lru_cache(maxsize=1024)
def _private_key(secrets_in_order: tuple[str, ...], encrypted: str) -> Ed25519PrivateKey:
    """A stored private half, decrypted once per process and secrets: every
    ticket of an e-mail is signed, and decrypting (Fernet's HMAC and AES,
    then loading the key) cost about a tenth of the e-mail worker's CPU in a
    rush. Keyed by the secrets too, so a key that cannot be decrypted under
    the current ones never comes from the cache; a failure is not cached."""
    raw = _fernet_for(secrets_in_order).decrypt(encrypted.encode("ascii"))
    return Ed25519PrivateKey.from_private_bytes(raw)


class EventSigningKey(models.Model):
    """One Ed25519 key pair of one event; see the module docstring."""

    organization = models.ForeignKey("ticketing.Organization", on_delete=models.PROTECT, related_name="+")
    event = models.ForeignKey("ticketing.Event", on_delete=models.CASCADE, related_name="signing_keys")
    # The key id travels inside every QR code, so it is short: 48 random bits
    # (see ticketing.ticket_codes), unique across all events.
    kid = models.CharField(max_length=16, unique=True, default=new_kid, editable=False)
    public_key = models.CharField(max_length=64, editable=False, help_text="Raw Ed25519 public key, base64url.")
    private_key_encrypted = models.TextField(editable=False, help_text="Raw Ed25519 private key, Fernet-encrypted.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()
    tenant_field = "organization"

    class Meta:
        # "event_id", not "event": ordering by the relation would join the
        # event table (for Event's own ordering), and SELECT ... FOR UPDATE
        # would then lock the event row too.
        ordering = ["event_id", "created_at", "id"]
        constraints = [
            # The backstop that makes "get or create the active key" race-safe.
            models.UniqueConstraint(
                fields=["event"], condition=models.Q(is_active=True), name="signing_key_one_active_per_event"
            ),
            models.CheckConstraint(
                condition=models.Q(is_active=True, retired_at__isnull=True)
                | models.Q(is_active=False, retired_at__isnull=False),
                name="signing_key_retired_iff_inactive",
            ),
        ]

    def __str__(self) -> str:
        state = "active" if self.is_active else "retired"
        return f"Signing key {self.kid} ({state})"

    @classmethod
    def generate(cls, *, event_id: int, organization_id: int) -> EventSigningKey:
        """A new, unsaved, active key with a fresh key pair (services save it)."""
        private_key = Ed25519PrivateKey.generate()
        raw_private = private_key.private_bytes(
            encoding=serialization.Encoding.Raw,
            format=serialization.PrivateFormat.Raw,
            encryption_algorithm=serialization.NoEncryption(),
        )
        raw_public = private_key.public_key().public_bytes(
            encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw
        )
        return cls(
            organization_id=organization_id,
            event_id=event_id,
            public_key=b64url_encode(raw_public),
            private_key_encrypted=_fernet().encrypt(raw_private).decode("ascii"),
            is_active=True,
        )

    @property
    def public_key_bytes(self) -> bytes:
        """The raw 32-byte public key, as scanning bundles carry it."""
        return b64url_decode(self.public_key)

    def private_key(self) -> Ed25519PrivateKey:
        """Decrypt the private key (only to sign; never log or return it)."""
        try:
            return _private_key(_secrets(), self.private_key_encrypted)
        except InvalidToken as exc:
            raise ImproperlyConfigured(
                f"The private half of signing key {self.kid} cannot be decrypted with SECRET_KEY or "
                "SECRET_KEY_FALLBACKS; rotate the event's signing key."
            ) from exc

    def retire(self, *, at: datetime) -> None:
        """Mark retired in memory; the service saves. Retired keys still verify."""
        self.is_active = False
        self.retired_at = at
