"""Waiting for a change: woken by Redis pub/sub when it is there, by polling when it is not."""

from __future__ import annotations

import threading

import pytest

from pollen.core import notify


class Flag:
    """is_done() for the waiter: counts how often it looked."""

    def __init__(self) -> None:
        self.done = False
        self.looks = 0

    def __call__(self) -> bool:
        self.looks += 1
        return self.done


pytestmark = pytest.mark.django_db


@pytest.fixture
def announce_now(django_capture_on_commit_callbacks):
    """announce() and its on-commit step, at once."""

    def send(key: str) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            notify.announce(key)

    return send


@pytest.fixture
def redis_url(settings):
    if not settings.REDIS_URL:
        pytest.skip("REDIS_URL is not set (the test stack sets it)")
    return settings.REDIS_URL


def test_a_waiter_wakes_on_the_announcement_without_polling(redis_url, monkeypatch, announce_now):
    monkeypatch.setattr(notify, "SAFETY_SECONDS", 60.0)  # only a message can wake it early
    flag, answer = Flag(), {}
    waiter = threading.Thread(
        target=lambda: answer.update(done=notify.wait_until("test:wake", flag, 30))
    )
    waiter.start()
    assert _until(lambda: flag.looks >= 1), "the waiter subscribed and looked once"
    flag.done = True
    announce_now("test:wake")
    waiter.join(timeout=20)
    assert not waiter.is_alive(), "the announcement woke the waiter"
    assert answer == {"done": True}
    assert flag.looks == 2, "one look on subscribing, one on the message: no polling"


def test_another_key_does_not_wake_the_waiter(redis_url, monkeypatch, announce_now):
    monkeypatch.setattr(notify, "SAFETY_SECONDS", 0.2)
    flag = Flag()
    announce_now("test:other")
    assert notify.wait_until("test:mine", flag, 0.5) is False
    assert flag.looks >= 2, "it kept looking on its own until the deadline"


def test_without_redis_the_waiter_polls_and_still_sees_the_change(settings, announce_now):
    settings.REDIS_URL = ""
    flag = Flag()
    timer = threading.Timer(0.2, lambda: setattr(flag, "done", True))
    timer.start()
    assert notify.wait_until("test:poll", flag, 10) is True
    assert flag.looks > 2, "polled"
    assert notify.wait_until("test:poll-late", Flag(), 0.1) is False
    announce_now("test:poll")  # nothing to send to, and no error


def test_an_unreachable_redis_falls_back_to_polling(settings, caplog, announce_now):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    flag = Flag()
    threading.Timer(0.2, lambda: setattr(flag, "done", True)).start()
    assert notify.wait_until("test:down", flag, 10) is True
    assert "by polling" in caplog.text
    announce_now("test:down")
    assert "could not announce" in caplog.text


def _until(condition, seconds: float = 10.0) -> bool:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False
