"""Run many callables at once, each on its own database connection."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connections


def run_concurrently(fns: list[Callable[[], Any]], *, timeout: float = 60) -> list[tuple[Any, BaseException | None]]:
    """Start every fn in its own thread, released together by a barrier;
    return (result, exception) per fn, in order."""
    barrier = threading.Barrier(len(fns))
    results: list[tuple[Any, BaseException | None]] = [(None, None)] * len(fns)

    def worker(i: int, fn: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=timeout)
            results[i] = (fn(), None)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            results[i] = (None, exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i, fn), daemon=True) for i, fn in enumerate(fns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), "a concurrent worker hung (deadlock or lock wait?)"
    return results
