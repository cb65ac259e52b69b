"""The e-mail doorbell: many recorded e-mails, one message to the e-mail worker.

A recorded e-mail (an EmailDelivery row, committed with the change that
causes it) is announced after that commit by `email_bell_ring`: it sets a
Redis key (SET NX, expiring after settings.EMAIL_BELL_SECONDS) and only the
ring that set it publishes a drain (ticketing.tasks.send_pending_emails). A
drain silences the bell (`email_bell_silence`) before anything else and then
claims and sends fresh pending deliveries, oldest first, until a claim finds
none (ticketing.services.emails.email_deliveries_drain). During a rush one
message thus carries the e-mails of every order paid while the previous drain
ran, where each order used to publish (web: ~0.35 ms) and consume (e-mail
worker: ~1.0-1.4 ms) a message of its own.

Why nothing is lost: a ring that finds the bell set relies on the drain of
the ring that set it; that drain is published after the SET, so its delete
comes after every ring that saw the bell, and its claims after its delete:
they see every delivery committed before such a ring. The exceptions are
covered elsewhere: a ring that cannot reach Redis, or whose publish fails,
says so (False) and the caller queues the delivery's own send instead (and
a failed publish deletes the bell, so the next ring publishes again); a
drain message the broker loses, or a setter that dies before publishing,
leaves the bell to expire, after which the next ring publishes; and the
resend sweeper (ticketing.tasks.resend_lost_email_deliveries) sends whatever
is still pending after settings.EMAIL_RESEND_AFTER_SECONDS. Nothing is sent
twice: a drain claims each delivery with a compare-and-set before sending it.

With Celery eager (the embedded default: SQLite, no worker) a ring runs the
drain inline, right after the commit: there is no message to spare, and no
bell to leave set if an inline run fails."""

from __future__ import annotations

import logging
from typing import Any

from celery import current_app
from django.conf import settings
from django.core.cache import caches

logger = logging.getLogger(__name__)

# The cache's key prefix is added (as every cache key of ours has it).
BELL_KEY = "email:bell"


def email_bell_ring() -> bool:
    """Make sure a drain will look at the deliveries committed so far; call
    it after the commit that recorded one. False if the bell could not
    promise that (no Redis, Redis unreachable, the drain not published): the
    caller then queues its delivery's own send."""
    if current_app.conf.task_always_eager:
        try:
            _publish_drain()
        except Exception:
            logger.warning("the inline e-mail drain failed", exc_info=True)
            return False
        return True
    client = _redis()
    if client is None:
        return False
    key = _key()
    try:
        if not client.set(key, b"1", nx=True, ex=settings.EMAIL_BELL_SECONDS):
            return True  # rung already: its drain has not silenced it yet, so it comes after this ring
    except Exception:
        logger.warning("the e-mail bell could not be rung", exc_info=True)
        return False
    try:
        _publish_drain()
    except Exception:
        logger.warning("the e-mail drain was not published", exc_info=True)
        # So that the next ring publishes (rings that found the bell set in
        # the meantime are left to the next ring or the resend sweeper).
        _delete(client, key)
        return False
    return True


def email_bell_silence() -> None:
    """The first thing a drain does: every ring from now on publishes a
    drain of its own (or finds one that will come after it)."""
    if current_app.conf.task_always_eager:
        return  # an inline drain was rung without the bell
    client = _redis()
    if client is not None:
        _delete(client, _key())


def email_bell_hold() -> bool:
    """For a drain about to wait for more (settings.EMAIL_DRAIN_LINGER_SECONDS):
    set the bell, so that the rings meanwhile publish nothing and rely on this
    drain, which silences it again before its next claim. False if the bell
    cannot be held (no Redis, Redis unreachable): the drain then ends now."""
    if current_app.conf.task_always_eager:
        return False  # an inline drain runs in the request: it never waits
    client = _redis()
    if client is None:
        return False
    try:
        client.set(_key(), b"1", ex=settings.EMAIL_BELL_SECONDS)
    except Exception:
        logger.warning("the e-mail bell could not be held", exc_info=True)
        return False
    return True


def _publish_drain() -> None:
    from ticketing.tasks import send_pending_emails  # the tasks module imports the services

    send_pending_emails.apply_async()


def _redis() -> Any | None:
    """The raw client of django-redis (None if the cache is another kind, as
    the local-memory cache of development): the cache API swallows errors,
    and the bell must know whether it rang."""
    from django_redis.cache import RedisCache

    cache = caches["default"]
    if not isinstance(cache, RedisCache):
        return None
    return cache.client.get_client(write=True)


def _key() -> str:
    return str(caches["default"].make_key(BELL_KEY))


def _delete(client: Any, key: str) -> None:
    try:
        client.delete(key)
    except Exception:
        # It expires after settings.EMAIL_BELL_SECONDS; until then rings
        # publish nothing and the resend sweeper is the safety net.
        logger.warning("the e-mail bell could not be silenced", exc_info=True)
