from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from tests.seating.factories import Hall, make_hall


@pytest.fixture
def now() -> datetime:
    return timezone.now()


@pytest.fixture
def later(now: datetime) -> datetime:
    """A usual hold expiry."""
    return now + timedelta(minutes=15)


@pytest.fixture
def hall(event) -> Hall:
    """One section 'Main' with rows A and B of 10 seats each, one category."""
    return make_hall(event)
