"""The web processes' gunicorn hooks: the master freezes what it loaded
before forking, a worker collects young objects rarely and connects before
its first request."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from django.db import connection

from config import gunicorn as gunicorn_config


@pytest.fixture
def collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()


def test_the_application_is_loaded_once_in_the_master() -> None:
    assert gunicorn_config.preload_app is True


@pytest.mark.usefixtures("collector")
def test_the_master_freezes_what_it_loaded_before_each_fork() -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0

    gunicorn_config.pre_fork(server=None, worker=None)

    assert gc.get_freeze_count() > 10_000, "the loaded application is frozen, out of the collector's walks"


@pytest.mark.django_db
@pytest.mark.usefixtures("collector")
def test_a_worker_collects_rarely_and_starts_connected() -> None:
    connection.close()

    gunicorn_config.post_fork(server=None, worker=None)

    assert gc.get_threshold()[0] == gunicorn_config.YOUNG_COLLECTION_THRESHOLD
    assert connection.connection is not None, "connected before its first request"
