"""``manage.py clock``: the hub's one clock process (see ``pollen.ops.clock``).

Run exactly where the hub runs: ``make run`` supervises it, compose and Kubernetes run it as
its own service. Two clocks are harmless (their ticks never overlap) but one is enough.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from pollen.ops.clock import clock_alive, clock_run, logger


class Command(BaseCommand):
    help = "Re-queue lapsed work and move cross-site jobs on, every POLLEN_CLOCK_SECONDS."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--interval", type=float, default=None, help="seconds between ticks")
        parser.add_argument(
            "--check",
            action="store_true",
            help="exit 0 if a clock ticked lately (its heartbeat file is fresh): a liveness probe",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        interval = float(options["interval"] or settings.CLOCK_SECONDS)
        heartbeat = settings.CLOCK_HEARTBEAT_PATH
        if options["check"]:
            if not clock_alive(heartbeat, interval=interval):
                self.stderr.write(
                    f"the clock has not ticked lately ({heartbeat} is old or missing)"
                )
                sys.exit(1)
            self.stdout.write("ok")
            return
        stop = threading.Event()

        def on_signal(signum: int, frame: object) -> None:
            logger.info("clock stopping (signal %s)", signum, extra={"fields": {"signal": signum}})
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        logger.info("clock started", extra={"fields": {"interval": interval}})
        try:
            clock_run(interval=interval, stop=stop, heartbeat=heartbeat)
        except BaseException:
            logger.critical("clock died", exc_info=True)  # its supervisor starts it again
            raise
        logger.info("clock stopped")
