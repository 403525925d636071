"""``bench.cpu_shares`` tells where a machine's CPU went, read from /proc for real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bench.cpu_shares import CpuMeter, machine_cpu_s, process_cpu_s, processes_named, shares

SPIN = "import time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end: pass\n"


def test_a_spinning_child_shows_as_about_one_core_and_a_sleeping_one_as_none() -> None:
    spinner = subprocess.Popen([sys.executable, "-c", SPIN.format(seconds=30)])
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.3)  # past the interpreters' start-up
        meter = CpuMeter({"spinner": lambda: [spinner.pid], "sleeper": lambda: [sleeper.pid]})
        before = meter.read()
        time.sleep(1.5)
        cores = shares(before, meter.read())
    finally:
        spinner.kill()
        sleeper.kill()
        spinner.wait()
        sleeper.wait()
    # Two cores here: the spinner has one of them unless something else competes for it.
    assert 0.7 <= cores["spinner"] <= 1.05
    assert cores["sleeper"] <= 0.02
    # The parts, the rest and idle make up the machine; shares are rounded to 3 decimals each.
    parts = cores["spinner"] + cores["sleeper"] + cores["other"] + cores["idle"]
    assert abs(parts - cores["cores"]) <= 0.05  # and /proc counts in 10 ms ticks
    # The machine's time over the span is its wall time on every core /proc/stat lists.
    listed = sum(line[3:4].isdigit() for line in Path("/proc/stat").read_text().splitlines())
    assert abs(cores["cores"] - listed) <= 0.1


def test_a_process_that_has_ended_counts_no_cpu_and_names_are_matched_whole() -> None:
    child = subprocess.Popen([sys.executable, "-c", SPIN.format(seconds=0.2)])
    child.wait()
    assert process_cpu_s(child.pid) == 0.0
    own_name = Path(f"/proc/{os.getpid()}/comm").read_text().strip()
    assert os.getpid() in processes_named(own_name)
    assert processes_named("no-such-process-name") == []
    busy, total = machine_cpu_s()
    assert 0 < busy <= total
