"""Retry policies: exponential backoff with jitter, decided per failed attempt."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from ticketing.exceptions import Busy, DomainError


def is_retryable(exc: BaseException) -> bool:
    """Infrastructure errors are worth retrying; a domain rule saying no (sold
    out, declined) is not, except Busy, which means "try again shortly"."""
    return isinstance(exc, Busy) or not isinstance(exc, DomainError)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    initial_delay: float = 1.0  # seconds before the 2nd attempt; 0 retries at once, inline
    multiplier: float = 2.0
    max_delay: float = 300.0
    jitter: float = 0.2  # +/- this fraction, so failing runs do not retry in lockstep
    retry_if: Callable[[BaseException], bool] = is_retryable

    def delay_after(self, attempt: int, exc: BaseException) -> float | None:
        """Seconds to wait before the next attempt, or None to give up."""
        if attempt >= self.max_attempts or not self.retry_if(exc):
            return None
        base = min(self.max_delay, self.initial_delay * self.multiplier ** (attempt - 1))
        return max(0.0, base * (1 + random.uniform(-self.jitter, self.jitter)))


DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(max_attempts=1)
