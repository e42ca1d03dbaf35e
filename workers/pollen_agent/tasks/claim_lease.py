"""Keep a claim on marketplace work alive while a worker runs it.

The hub treats a claim that is not renewed within its lease as the claim of a worker that
died, and queues the work again (``pollen.marketplace.work`` on the hub). A background
thread renews it every quarter lease on its own HTTP session, so a long forward pass or a
slow storage read does not let it lapse.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from pollen_agent.errors import AgentError, UserError
from pollen_agent.hub_client import HubClient

logger = logging.getLogger(__name__)

DEFAULT_LEASE_SECONDS = 120


class ClaimLease:
    """``with ClaimLease(hub, base, claim_id, lease_seconds):`` renews ``{base}/renew/``.

    ``lost`` is set when the hub answers that the claim is no longer this worker's (it was
    taken over, or the work ended elsewhere): the result would be refused, so do not send it.
    """

    def __init__(self, hub: HubClient, base: str, claim_id: str, lease_seconds: Any = None) -> None:
        seconds = lease_seconds if isinstance(lease_seconds, int) and lease_seconds > 0 else None
        self.interval = max(1.0, (seconds or DEFAULT_LEASE_SECONDS) / 4)
        self.hub = hub.fork()
        self.path = f"{base}/renew/"
        self.claim_id = claim_id
        self.lost = threading.Event()
        self.renewals = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease {base}", daemon=True)

    def __enter__(self) -> ClaimLease:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                answer = self.hub.post(self.path, {"claim_id": self.claim_id})
            except UserError as exc:  # the work is gone, or not this site's any more
                logger.warning("renewing %s was refused: %s", self.path, exc)
                self.lost.set()
                return
            except AgentError as exc:  # a passing fault: the next beat tries again
                logger.warning("renewing %s failed: %s", self.path, exc)
                continue
            self.renewals += 1
            if not (answer or {}).get("renewed"):
                logger.warning(
                    "%s: the claim was taken over; this worker's result is void", self.path
                )
                self.lost.set()
                return
