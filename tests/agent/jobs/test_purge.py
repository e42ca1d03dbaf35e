"""The agent's half of deleting a dataset: remove files idempotently, then tell the hub once done."""

from __future__ import annotations

from typing import Any

import pytest

from pollen_agent.errors import RetryableError, UserError
from pollen_agent.jobs.purge import purge_objects
from pollen_agent.storage.fs import FilesystemStorage

PAYLOAD = {"site": "site-a", "prefixes": ["datasets/7/"], "keys": [], "dataset_id": 7}


class Hub:
    """Stands in for the hub's REST API: records reports, or fails as a restarting hub would."""

    def __init__(self, *, fail_with: Exception | None = None) -> None:
        self.posts: list[str] = []
        self.fail_with = fail_with

    def post(self, path: str, payload: Any = None) -> Any:
        if self.fail_with is not None:
            raise self.fail_with
        self.posts.append(path)
        return {"status": "deleted"}


class DiesAfter(FilesystemStorage):
    """Site storage whose worker dies (an exception here) after ``n`` deletions."""

    def __init__(self, *args: Any, n: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.left = n

    def delete(self, key: str) -> None:
        if self.left == 0:
            raise RetryableError("the worker stopped")
        self.left -= 1
        super().delete(key)


def _store(tmp_path, cls: type = FilesystemStorage, **kwargs: Any) -> Any:
    return cls(tmp_path, site="site-a", base_url="http://hub.test", secret="s", **kwargs)


@pytest.fixture
def files(tmp_path):
    store = _store(tmp_path)
    for i in range(4):
        store.put_bytes(f"datasets/7/images/{i}.png", b"png")
    store.put_bytes("datasets/7/thumbnails/0.png", b"png")
    store.put_bytes("datasets/8/images/keep.png", b"png")
    return store


def test_death_half_way_then_a_resend_removes_the_rest_and_reports_once(tmp_path, files):
    hub = Hub()
    with pytest.raises(RetryableError):
        purge_objects(_store(tmp_path, DiesAfter, n=2), hub, PAYLOAD)
    assert hub.posts == []  # nothing reported while files remain
    assert len(list(files.list("datasets/7/"))) == 3

    purge_objects(files, hub, PAYLOAD)  # the hub sent the request again
    assert list(files.list("datasets/7/")) == []
    assert files.exists("datasets/8/images/keep.png")
    assert hub.posts == ["agent/datasets/7/purged/"]


def test_purging_again_after_success_is_harmless(files):
    hub = Hub()
    purge_objects(files, hub, PAYLOAD)
    assert purge_objects(files, hub, PAYLOAD) == 0
    assert hub.posts == ["agent/datasets/7/purged/"] * 2


def test_a_hub_that_is_down_makes_the_task_retry(files):
    with pytest.raises(RetryableError):
        purge_objects(files, Hub(fail_with=RetryableError("hub restarting")), PAYLOAD)
    assert list(files.list("datasets/7/")) == []


def test_a_hub_that_no_longer_knows_the_dataset_ends_the_task_quietly(files):
    hub = Hub(fail_with=UserError("There is no such dataset", code="dataset_not_found"))
    assert purge_objects(files, hub, PAYLOAD) == 5


def test_plain_deletes_do_not_report(files):
    hub = Hub()
    purge_objects(files, hub, {"site": "site-a", "keys": ["datasets/7/images/0.png"]})
    assert not files.exists("datasets/7/images/0.png")
    assert hub.posts == []
