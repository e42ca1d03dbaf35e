"""S3 backend against a real SeaweedFS that enforces per-identity bucket access."""

from __future__ import annotations

import datetime as dt
import socket
import uuid
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import botocore.auth
import pytest
import requests

from pollen_agent.errors import RetryableError
from pollen_agent.storage.base import ObjectInfo, ObjectNotFound, StorageAccessDenied
from pollen_agent.storage.s3 import S3Storage


@pytest.fixture
def prefix():
    return f"t-{uuid.uuid4().hex[:8]}/"


@pytest.fixture
def site_a(seaweed, prefix):
    return seaweed.storage("site-a", prefix=prefix)


@pytest.fixture
def site_b_object(seaweed, prefix):
    """An object in site-b's bucket, written with site-b's own credentials."""
    key = f"{prefix}secret/scan.png"
    seaweed.client("site-b").put_object(Bucket=seaweed.bucket("site-b"), Key=key, Body=b"b-pixels")
    return key


def test_round_trip(site_a, seaweed, prefix):
    site_a.put_bytes("ds/1/a.png", b"\x89PNG", content_type="image/png")
    site_a.put_bytes("ds/1/b.png", b"12345")
    site_a.put_bytes("ds/2/c.png", b"c")
    assert site_a.get_bytes("ds/1/a.png") == b"\x89PNG"
    with site_a.open_stream("ds/1/b.png") as body:
        assert body.read() == b"12345"
    assert site_a.size("ds/1/b.png") == 5
    assert site_a.exists("ds/1/a.png") and not site_a.exists("ds/1/zzz.png")
    assert [(i.key, i.size) for i in site_a.list("ds/1/")] == [("ds/1/a.png", 4), ("ds/1/b.png", 5)]
    # The prefix is applied in the bucket and hidden from callers.
    raw = seaweed.client("site-a").head_object(
        Bucket=seaweed.bucket("site-a"), Key=f"{prefix}ds/1/a.png"
    )
    assert raw["ContentType"] == "image/png"
    site_a.delete("ds/2/c.png")
    assert not site_a.exists("ds/2/c.png")
    assert site_a.delete_prefix("ds/") == 2
    assert list(site_a.list()) == []


def test_missing_object_is_not_found(site_a):
    with pytest.raises(ObjectNotFound):
        site_a.get_bytes("nope.png")
    with pytest.raises(ObjectNotFound):
        site_a.size("nope.png")


def test_presigned_put_then_get_work_without_credentials(site_a):
    req = site_a.presign_put("up/x.png", expires_in=300, content_type="image/png")
    response = requests.put(req.url, data=b"uploaded", headers=req.headers, timeout=10)
    assert response.status_code == 200, response.text
    assert site_a.get_bytes("up/x.png") == b"uploaded"
    got = requests.get(site_a.presign_get("up/x.png", expires_in=300), timeout=10)
    assert (got.status_code, got.content) == (200, b"uploaded")


def _tamper(url: str, **changes) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_presigned_put_with_tampered_signature_is_refused(site_a):
    req = site_a.presign_put("up/t.png", expires_in=300)
    sig = parse_qs(urlsplit(req.url).query)["X-Amz-Signature"][0]
    bad = _tamper(req.url, **{"X-Amz-Signature": ("0" if sig[0] != "0" else "1") + sig[1:]})
    response = requests.put(bad, data=b"evil", timeout=10)
    assert response.status_code == 403
    assert not site_a.exists("up/t.png")


def test_presigned_url_for_one_key_cannot_write_another(site_a):
    req = site_a.presign_put("up/allowed.png", expires_in=300)
    parts = urlsplit(req.url)
    other = urlunsplit(parts._replace(path=parts.path.replace("allowed", "other")))
    assert requests.put(other, data=b"evil", timeout=10).status_code == 403
    assert not site_a.exists("up/other.png")


def test_presigned_url_with_longer_expiry_is_refused(site_a):
    req = site_a.presign_put("up/e.png", expires_in=60)
    assert (
        requests.put(
            _tamper(req.url, **{"X-Amz-Expires": "3600"}), data=b"x", timeout=10
        ).status_code
        == 403
    )


def test_expired_presigned_url_is_refused(site_a, monkeypatch):
    # Sign two hours in the past: the URL expired long ago, no waiting needed.
    past = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=2)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: past)
    put = site_a.presign_put("up/old.png", expires_in=60)
    get = site_a.presign_get("up/old.png", expires_in=60)
    monkeypatch.undo()
    assert requests.put(put.url, data=b"late", timeout=10).status_code == 403
    site_a.put_bytes("up/old.png", b"now")
    assert requests.get(get, timeout=10).status_code == 403


# Isolation: site-a's credentials are refused on site-b's bucket ---------------


@pytest.fixture
def a_on_b(seaweed):
    """site-a's credentials, aimed at site-b's bucket."""
    return seaweed.storage("site-a", bucket=seaweed.bucket("site-b"))


def test_site_a_cannot_read_site_b(a_on_b, site_b_object):
    with pytest.raises(StorageAccessDenied) as exc:
        a_on_b.get_bytes(site_b_object)
    assert exc.value.code == "storage_access_denied"
    with pytest.raises(StorageAccessDenied):
        a_on_b.exists(site_b_object)
    with pytest.raises(StorageAccessDenied):
        a_on_b.size(site_b_object)


def test_site_a_cannot_write_site_b(a_on_b, seaweed, site_b_object):
    with pytest.raises(StorageAccessDenied):
        a_on_b.put_bytes(site_b_object, b"overwritten")
    body = seaweed.client("site-b").get_object(Bucket=seaweed.bucket("site-b"), Key=site_b_object)
    assert body["Body"].read() == b"b-pixels"


def test_site_a_cannot_list_site_b(a_on_b, site_b_object):
    with pytest.raises(StorageAccessDenied):
        list(a_on_b.list())


def test_site_a_cannot_delete_site_b(a_on_b, seaweed, site_b_object):
    with pytest.raises(StorageAccessDenied):
        a_on_b.delete(site_b_object)
    with pytest.raises(StorageAccessDenied):
        a_on_b.delete_prefix(site_b_object.split("/")[0] + "/")
    assert seaweed.storage("site-b").get_bytes(site_b_object) == b"b-pixels"


def test_batch_delete_refusals_reported_per_key_raise(a_on_b, seaweed, site_b_object):
    # DeleteObjects answers 200 and lists refusals per key. Skip the listing
    # (refused on its own) so the real server judges the batch delete itself.
    a_on_b.list = lambda prefix="": iter([ObjectInfo(site_b_object, 0)])
    with pytest.raises(StorageAccessDenied):
        a_on_b.delete_prefix(site_b_object.split("/")[0] + "/")
    assert seaweed.storage("site-b").get_bytes(site_b_object) == b"b-pixels"


def test_site_a_presigned_url_cannot_reach_site_b(a_on_b, site_b_object):
    url = a_on_b.presign_get(site_b_object, expires_in=60)
    assert requests.get(url, timeout=10).status_code == 403


def test_hub_identity_is_limited_to_the_model_store(seaweed, site_b_object):
    hub = seaweed.storage("hub")
    hub.put_bytes("models/1/weights.safetensors", b"w")
    assert hub.get_bytes("models/1/weights.safetensors") == b"w"
    with pytest.raises(StorageAccessDenied):
        seaweed.storage("hub", bucket=seaweed.bucket("site-b")).get_bytes(site_b_object)
    with pytest.raises(StorageAccessDenied):
        seaweed.storage("site-a", bucket=seaweed.bucket("hub")).put_bytes("models/x", b"x")


def test_wrong_secret_is_access_denied(seaweed):
    store = S3Storage(
        seaweed.bucket("site-a"),
        endpoint_url=seaweed.endpoint,
        access_key=seaweed.creds["site-a"]["access_key"],
        secret_key="wrong",
    )
    with pytest.raises(StorageAccessDenied):
        store.put_bytes("x", b"x")


def test_unreachable_server_is_retryable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port now: the connection is refused at once.
    store = S3Storage(
        "b",
        endpoint_url=f"http://127.0.0.1:{port}",
        access_key="a",
        secret_key="s",
        max_attempts=1,
        connect_timeout=2,
    )
    with pytest.raises(RetryableError):
        store.get_bytes("x")
