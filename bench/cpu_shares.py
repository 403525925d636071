"""Where a machine's CPU went over a span: named groups of processes, the rest, and idle (Linux /proc).

``bench.pipeline`` times its phases on two cores that the workers share with
the broker, the store and the state database. A rate alone cannot say whether
the workers were short of CPU or waiting; the shares can, and they say what a
reading costs each part of the machine.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User plus system CPU seconds of one process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime: fields 14 and 15 of proc(5)


def processes_named(name: str) -> list[int]:
    """Every running process whose command name is ``name`` (PostgreSQL's backends and helpers)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    pids.append(int(entry.name))
            except OSError:  # ended between the listing and the read
                continue
    return pids


def machine_cpu_s() -> tuple[float, float]:
    """CPU seconds busy and in all (idle and I/O wait included), summed over every core."""
    ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = ticks
    busy = user + nice + system + irq + softirq + steal
    return busy / TICKS, (busy + idle + iowait) / TICKS


@dataclass(frozen=True)
class Reading:
    at: float  # time.monotonic()
    groups: dict[str, float]
    busy_s: float
    total_s: float


class CpuMeter:
    """Reads the groups' CPU and the machine's, for differences between two reads.

    A process of a group that ends between two reads takes its CPU with it, and that CPU shows as
    ``other``; the groups ``bench.pipeline`` reads keep their processes for a whole phase, except
    PostgreSQL's short-lived backends.
    """

    def __init__(self, groups: dict[str, Callable[[], Iterable[int]]]) -> None:
        self.groups = groups

    def read(self) -> Reading:
        busy, total = machine_cpu_s()
        cpu = {name: sum(process_cpu_s(pid) for pid in pids()) for name, pids in self.groups.items()}
        return Reading(time.monotonic(), cpu, busy, total)


def shares(before: Reading, after: Reading) -> dict[str, float]:
    """Cores each group kept busy on average, then ``other``, ``idle`` and ``cores`` (the machine's)."""
    seconds = after.at - before.at
    if seconds <= 0:
        return {}
    out = {name: (after.groups[name] - before.groups[name]) / seconds for name in after.groups}
    busy = (after.busy_s - before.busy_s) / seconds
    out["other"] = max(0.0, busy - sum(out.values()))
    out["idle"] = (after.total_s - before.total_s) / seconds - busy
    out["cores"] = (after.total_s - before.total_s) / seconds
    return {name: round(value, 3) for name, value in out.items()}
