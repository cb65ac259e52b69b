"""Scanning's domain errors (ticketing.exceptions.DomainError subclasses).

A scan that is refused at the gate is not an error: it is a result
(scanning.models.ScanResult). These are for requests that cannot be
processed at all."""

from __future__ import annotations

from ticketing.exceptions import DomainError, InvalidState, NotFound


class DeviceNotFound(NotFound):
    code = "device_not_found"
    message = "This scanning device does not exist."


class DeviceRevoked(DomainError):
    code = "device_revoked"
    message = "This scanning device was revoked."
    status = 403


class EventNotScannable(InvalidState):
    code = "event_not_scannable"
    message = "Devices cannot be added to a cancelled event."


class NonceReused(DomainError):
    """The device sent this nonce before, with another code: a device bug,
    never silently answered with the other code's result."""

    code = "nonce_reused"
    message = "This nonce was already used for another code."
    status = 422
