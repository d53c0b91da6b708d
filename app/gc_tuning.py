"""Garbage-collector settings for a serving worker, applied once it has started.

A request's objects are freed by reference counting as soon as it is answered; the cycle
collector only adds pauses. Two of them matter:

- a full collection walks every tracked object, and a started worker holds tens of
  thousands (the registry, imported modules): 25-35 ms each, every few thousand
  100-row requests (measured in process, bench/README.md). ``gc.freeze()`` after
  start-up takes those objects out of every later collection, which then takes ~0.1 ms;
- a young collection runs whenever 700 more containers are alive than before; one
  100-row request holds a few thousand while it is assembled, so it set off about one
  collection per request. A threshold of 10,000 leaves ordinary requests alone.

Objects kept alive only by reference cycles (rare here: error paths) are still collected.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000


def tune_for_serving() -> tuple[int, int, int]:
    """Freeze what start-up built and raise the young threshold; returns the old
    thresholds for :func:`restore`."""
    before = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, before[1], before[2])
    return before


def restore(thresholds: tuple[int, int, int]) -> None:
    """At shutdown: an app stopped inside a longer-lived process (tests, an embedding
    program) gives its frozen objects back to the collector."""
    gc.unfreeze()
    gc.set_threshold(*thresholds)
