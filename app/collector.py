"""How the cyclic garbage collector is set for a process that handles readings in batches.

A batch keeps its messages, readings, points and per-series work alive until it
ends, when reference counting frees nearly all of them. CPython starts a young
collection every 700 net allocations of tracked objects, so a batch of 20,000
readings ran about 150 young collections that found nothing to free, promoted
the batch's objects to the old generation on the way, and so set off a full
collection (a walk of every object held) about once a batch: with 10,000 series
held, collection took 152 to 157 ms of each 683 to 739 ms batch, against 3 to 4
ms settled (``python -m bench.scoring --sensors 10000 --points 2 --batches 10
--collector default`` against ``--collector service``, 2026-12-02).
"""

from __future__ import annotations

import gc

# Net allocations between young collections: above what a batch of the default size (50,000) keeps
# alive, so one passes with at most one young collection and no full one. Parsing and the consumer's
# lists keep three tracked objects a reading (``gc.get_count`` over a batch of 20,000 parsed
# readings), the broker's message is a fourth (its type supports the collector), and the engine keeps
# one more a point until the checkpoint: about 250,000 for a default batch. At 100,000,
# bench.scoring's batches of 50,000 points (the engine's share alone) ran 7 young collections and a
# middle one in 8 batches; at 250,000, none.
# Cyclic garbage (rare here: the batch's objects hold no cycles) waits that much longer to be found.
YOUNG_COLLECTION_EVERY = 400_000


def settle_for_batches() -> None:
    """Freeze what start-up built (no full collection walks it again) and space young collections."""
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, *gc.get_threshold()[1:])
