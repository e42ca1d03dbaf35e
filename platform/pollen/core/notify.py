"""Wake a waiting request as soon as what it waits for changes: Redis pub/sub, else polling.

A hospital system that asks ``GET /api/v1/predictions/{id}/?wait=30`` holds one request
thread until the prediction is final. With Redis configured (``REDIS_URL``), the hub
publishes on ``pollen:changed:<key>`` once the agent's report has committed, and the waiter
wakes at once. Without Redis (the embedded default), or while Redis is unreachable, the
waiter polls with a short backoff instead: slower to wake, never wrong. Either way the
database decides (``is_done``); a message only says "look again".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import cache

import redis
from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)

CHANNEL_PREFIX = "pollen:changed:"
# Even with pub/sub, look again at least this often (a message lost with a Redis restart).
SAFETY_SECONDS = 1.0


@cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=5)


def announce(key: str) -> None:
    """Once the current transaction commits, tell the waiters on ``key`` to look again."""
    url = settings.REDIS_URL
    if not url:
        return

    def send() -> None:
        try:
            _client(url).publish(CHANNEL_PREFIX + key, b"1")
        except redis.RedisError as exc:  # waiters still wake by polling
            logger.warning("could not announce %s: %s", key, exc)

    transaction.on_commit(send)


def wait_until(key: str, is_done: Callable[[], bool], seconds: float) -> bool:
    """Return True as soon as ``is_done()``, or False once ``seconds`` passed."""
    deadline = time.monotonic() + seconds
    url = settings.REDIS_URL
    if url:
        pubsub = None
        try:
            pubsub = _client(url).pubsub()
            pubsub.subscribe(CHANNEL_PREFIX + key)
            _confirmed(pubsub)
            return _wait_for_messages(pubsub, is_done, deadline)
        except redis.RedisError as exc:  # Redis down or gone mid-wait: look by polling
            logger.warning("waiting on %s by polling: %s", key, exc)
        finally:
            if pubsub is not None:
                pubsub.close()
    return _poll(is_done, deadline)


def _confirmed(pubsub: redis.client.PubSub) -> None:
    """Read Redis's confirmation: from then on no announcement can slip past the waiter."""
    message = pubsub.get_message(timeout=SAFETY_SECONDS)
    if not message or message.get("type") != "subscribe":
        raise redis.RedisError("no confirmation of the subscription")


def _wait_for_messages(
    pubsub: redis.client.PubSub, is_done: Callable[[], bool], deadline: float
) -> bool:
    # Subscribed before the first look, so a change between the two is not missed.
    while True:
        if is_done():
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        pubsub.get_message(timeout=min(left, SAFETY_SECONDS))


def _poll(is_done: Callable[[], bool], deadline: float) -> bool:
    interval = 0.02
    while True:
        if is_done():
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(interval, left))
        interval = min(interval * 1.5, 0.25)
