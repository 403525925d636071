"""What a reading costs the machine before citywarn does anything with it: the CPU floor.

Run: ``python -m bench.cpu_floor [--readings N] [--target-per-s 70000]``. On a fresh Tansu broker
and a private influxd it produces N demo-shaped JSON readings, reads them back with a bare consumer
that only ``json.loads`` each, and writes them as pre-serialised line protocol, as
``bench.raw_limits`` does; it prints the CPU each process spent per reading (user + system, from
/proc), not the rates. CPU per reading barely moves with other load on the machine, so it says
what is left of ``cores / target`` for a worker's own work (validate, score, decide, warn) once
the broker and the store have taken theirs; ``bench.pipeline`` prints what the worker spends.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from bench.raw_limits import consume_and_decode_rate, store_write_rate
from bench.servers import private_influxd
from ingest.broker import EmbeddedBroker
from store.schemas import Point


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def readings(n: int) -> list[tuple[str, bytes]]:
    """Demo-shaped messages keyed by area: 10,000 sensors over 27 grids."""
    out = []
    for i in range(n):
        area = f"grid-{i % 27:02d}"
        body: dict[str, Any] = {"sensor_id": f"s{i % 10_000:05d}", "kind": "water_level", "area": area}
        body |= {"ts": "2026-12-01T10:00:00Z", "value": 1.5 + i % 7}
        out.append((area, json.dumps(body).encode()))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=300_000)
    parser.add_argument("--target-per-s", type=float, default=70_000)
    args = parser.parse_args(argv)
    n = args.readings
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(EmbeddedBroker())
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="citywarn-cpu-floor-")))
        influxd = stack.enter_context(private_influxd(root))
        assert broker.pid is not None and influxd.pid is not None
        topic = f"cpu-floor-{uuid.uuid4().hex[:8]}"
        producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 20, "log_level": 3})
        broker_0, own_0 = process_cpu_s(broker.pid), time.process_time()
        for i, (key, value) in enumerate(readings(n)):
            while True:
                try:
                    producer.produce(topic, value, key=key.encode())
                    break
                except BufferError:
                    producer.poll(0.05)
            if i % 10_000 == 0:
                producer.poll(0)
        producer.flush(60)
        broker_1, own_1 = process_cpu_s(broker.pid), time.process_time()
        consume_and_decode_rate(broker.bootstrap, topic, n)
        broker_2, own_2 = process_cpu_s(broker.pid), time.process_time()
        points = [Point(f"s{i % 10_000:05d}", "water_level", "grid-00", 10**18 + i, 1.5) for i in range(n)]
        influx_0, own_3 = process_cpu_s(influxd.pid), time.process_time()
        store_write_rate(influxd.url, points)
        influx_1, own_4 = process_cpu_s(influxd.pid), time.process_time()

    def per(seconds: float) -> float:
        return round(1e6 * seconds / n, 2)

    figures: dict[str, Any] = {
        "readings": n,
        "producer_client_us": per(own_1 - own_0),
        "broker_produce_us": per(broker_1 - broker_0),
        "broker_consume_us": per(broker_2 - broker_1),
        "consumer_decode_us": per(own_2 - own_1),
        "influxd_write_us": per(influx_1 - influx_0),
        "writer_client_us": per(own_4 - own_3),
    }
    cores = os.cpu_count() or 1
    budget = 1e6 * cores / args.target_per_s
    servers = figures["broker_consume_us"] + figures["influxd_write_us"]
    figures |= {
        "target_per_s": args.target_per_s,
        "cores": cores,
        "cpu_budget_us_per_reading": round(budget, 2),
        # What a worker may spend on everything, decoding and writing included, once the servers have
        # had theirs (the producer runs before the timed phase in bench.pipeline, so it is left out).
        "left_for_workers_us": round(budget - servers, 2),
        "load_after": os.getloadavg(),
    }
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
