"""Store reads on pool threads, at most ``store_reads_in_flight`` at once in an API process.

A read is mostly a wait on the store, but its Python part (the HTTP
exchange, the JSON, the answer's model) holds the GIL, and every thread that
wants the GIL delays the event loop, which answers everything else. Measured
with ``python -m bench.api --layout split`` (8 clients on each endpoint,
ingest at 5,000 readings a second), one run per bound:

====================  ==================  ==========
reads in flight       warnings list       series
====================  ==================  ==========
40 (anyio's pool)     528/s, p99 107 ms   306/s
4                     517/s, p99 99 ms    227/s
2                     984-1,061/s, p99    189-199/s
                      49-56 ms
1                     1,280/s, p99 39 ms  121/s
====================  ==================  ==========

Two keeps nearly two thirds of the series' rate and doubles the list's.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")

# One bound per event loop: anyio's limiter belongs to the loop it was made on (a test client may
# run several loops one after another).
_LIMITERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)


async def read_from_store(read: Callable[[], T], in_flight: int) -> T:
    """``read()`` on a pool thread once fewer than ``in_flight`` reads are running in this process."""
    loop = asyncio.get_running_loop()
    limiter = _LIMITERS.get(loop)
    if limiter is None:
        limiter = _LIMITERS[loop] = anyio.CapacityLimiter(in_flight)
    return await anyio.to_thread.run_sync(read, limiter=limiter)
