"""The hub's clock (``pollen.ops.clock``) beside a live test hub, as every deployment runs it."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def running_clock(interval: float = 0.5) -> Iterator[threading.Thread]:
    """Tick in a background thread (its own database connection) until the block ends."""
    from pollen.ops.clock import clock_run

    stop = threading.Event()
    thread = threading.Thread(
        target=clock_run,
        kwargs={"interval": interval, "stop": stop},
        name="hub-clock",
        daemon=True,
    )
    thread.start()
    try:
        yield thread
    finally:
        stop.set()
        thread.join(timeout=120)
