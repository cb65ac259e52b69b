"""CPU time, read from /proc: of the whole machine and of the stack's parts.

CPU per order is much steadier than orders/s on a shared, noisy machine:
other people's load slows our processes down but hardly changes how much CPU
each order costs them."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

TICKS = os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds spent not idle by all cores since boot."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / TICKS


def _stat(pid: int) -> tuple[int, float] | None:
    """(process group, user + system CPU seconds) of a live process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[2]), (int(fields[11]) + int(fields[12])) / TICKS


def process_group_seconds(pgids: Iterable[int]) -> dict[int, float]:
    """CPU seconds of the live processes of each process group (a gunicorn
    master and its workers, a Celery worker and its pool)."""
    wanted = set(pgids)
    totals = dict.fromkeys(wanted, 0.0)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _stat(int(entry))
        if stat is not None and stat[0] in wanted:
            totals[stat[0]] += stat[1]
    return totals


def pids_seconds(pids: Iterable[int]) -> dict[int, float]:
    seconds: dict[int, float] = {}
    for pid in pids:
        stat = _stat(pid)
        if stat is not None:
            seconds[pid] = stat[1]
    return seconds


# The machine's shared services, by process name: Redis (broker, cache,
# throttling) and every PostgreSQL process (its WAL writer and checkpointer
# too, not only this database's backends), so the machine's CPU per order is
# accounted for.
SERVICES = {"redis": "redis-server", "postgres-all": "postgres"}


def pids_named(name: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() == name:
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


@dataclass
class CpuSnapshot:
    machine: float
    groups: dict[str, float]
    postgres: dict[int, float]  # by backend pid
    services: dict[str, dict[int, float]] = field(default_factory=dict)  # by name, then pid


def snapshot(groups: dict[str, int], postgres_pids: Iterable[int]) -> CpuSnapshot:
    by_pgid = process_group_seconds(groups.values())
    return CpuSnapshot(
        machine=machine_busy_seconds(),
        groups={name: by_pgid.get(pgid, 0.0) for name, pgid in groups.items()},
        postgres=pids_seconds(postgres_pids),
        services={name: pids_seconds(pids_named(comm)) for name, comm in SERVICES.items()},
    )


def delta(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float]:
    """CPU seconds spent between two snapshots: the machine, each process
    group, and the database's backends (those alive at the end; a backend
    that started in between counts from zero)."""
    spent = {"machine": after.machine - before.machine}
    for name, seconds in after.groups.items():
        spent[name] = seconds - before.groups.get(name, 0.0)
    spent["postgres"] = sum(s - before.postgres.get(pid, 0.0) for pid, s in after.postgres.items())
    for name, seconds_by_pid in after.services.items():
        earlier = before.services.get(name, {})
        spent[name] = sum(s - earlier.get(pid, 0.0) for pid, s in seconds_by_pid.items())
    return spent
