"""Filesystem backend and the signed local URLs the hub's view checks."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from pollen_agent.errors import UserError
from pollen_agent.storage.base import ObjectNotFound, StorageAccessDenied
from pollen_agent.storage.factory import storage_from_config
from pollen_agent.storage.fs import FilesystemStorage
from pollen_contracts import local_signing
from pollen_contracts.local_signing import InvalidLocalSignature, verify_local_signature

SECRET = "test-local-signing-secret"
NOW = 1_700_000_000


@pytest.fixture
def store(tmp_path):
    return FilesystemStorage(tmp_path, site="site-a", base_url="http://hub.test", secret=SECRET)


def split(url):
    """(site, key, query) as the hub view would see them."""
    parts = urlsplit(url)
    _, marker, site, key = parts.path.split("/", 3)
    assert marker == "local-storage"
    return unquote(site), unquote(key), {k: v[0] for k, v in parse_qs(parts.query).items()}


def test_round_trip_lives_in_the_site_folder(store, tmp_path):
    store.put_bytes("ds/1/cat/a.png", b"\x89PNG data")
    assert store.get_bytes("ds/1/cat/a.png") == b"\x89PNG data"
    assert (tmp_path / "site-a" / "ds" / "1" / "cat" / "a.png").read_bytes() == b"\x89PNG data"
    assert store.exists("ds/1/cat/a.png")
    assert store.size("ds/1/cat/a.png") == 9
    with store.open_stream("ds/1/cat/a.png") as fh:
        assert fh.read(4) == b"\x89PNG"


def test_list_matches_string_prefixes_in_key_order(store):
    for key in ("ds/1/b.png", "ds/1/a.png", "ds/10/c.png", "ds/2/d.png"):
        store.put_bytes(key, b"xy")
    assert [i.key for i in store.list("ds/1")] == ["ds/1/a.png", "ds/1/b.png", "ds/10/c.png"]
    assert [(i.key, i.size) for i in store.list("ds/1/")] == [("ds/1/a.png", 2), ("ds/1/b.png", 2)]
    assert list(store.list("nothing/")) == []


def test_delete_and_delete_prefix(store):
    for key in ("ds/1/a.png", "ds/1/sub/b.png", "ds/2/c.png"):
        store.put_bytes(key, b"x")
    store.delete("ds/2/c.png")
    store.delete("ds/2/c.png")  # deleting twice is fine
    assert not store.exists("ds/2/c.png")
    assert store.delete_prefix("ds/1/") == 2
    assert [i.key for i in store.list()] == []
    with pytest.raises(UserError):
        store.delete_prefix("")


def test_missing_object_is_not_found(store):
    with pytest.raises(ObjectNotFound) as exc:
        store.get_bytes("ds/nope.png")
    assert exc.value.code == "not_found"
    with pytest.raises(ObjectNotFound):
        store.size("ds/nope.png")
    assert not store.exists("ds/nope.png")


@pytest.mark.parametrize(
    "key", ["../etc/passwd", "a/../../b", "/abs", "a\\b", "", "a//b", "a/./b", "x" * 1025, "a\x00b"]
)
def test_unsafe_keys_are_refused(store, key):
    with pytest.raises(UserError) as exc:
        store.put_bytes(key, b"x")
    assert exc.value.code == "invalid_key"


def test_write_is_atomic_readers_never_see_partial_content(store, monkeypatch):
    store.put_bytes("k.bin", b"old" * 1000)
    real_fsync = os.fsync
    seen = []

    def fsync_then_look(fd):
        # The new bytes are written but not yet renamed into place.
        seen.append(store.get_bytes("k.bin"))
        seen.append(sorted(i.key for i in store.list()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_then_look)
    store.put_bytes("k.bin", b"new" * 1000)
    assert seen == [b"old" * 1000, ["k.bin"]]
    assert store.get_bytes("k.bin") == b"new" * 1000


def test_failed_write_leaves_old_object_and_no_temp_file(store, monkeypatch, tmp_path):
    store.put_bytes("k.bin", b"old")

    def boom(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(KeyboardInterrupt):
        store.put_bytes("k.bin", b"new")
    assert store.get_bytes("k.bin") == b"old"
    assert os.listdir(tmp_path / "site-a") == ["k.bin"]


def test_concurrent_writers_leave_one_complete_version(store):
    payloads = [bytes([i]) * 200_000 for i in range(8)]
    threads = [threading.Thread(target=store.put_bytes, args=("k", p)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get_bytes("k") in payloads


def test_unreadable_folder_is_access_denied(store, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root ignores file permissions")
    store.put_bytes("k", b"x")
    (tmp_path / "site-a" / "k").chmod(0)
    with pytest.raises(StorageAccessDenied):
        store.get_bytes("k")


# Signed local URLs ---------------------------------------------------------


def signed(method="PUT", key="ds/1/a b.png", expires_in=900, max_bytes=1000):
    return local_signing.sign_local_url(
        SECRET,
        base_url="http://hub.test/",
        site="site-a",
        key=key,
        method=method,
        expires_in=expires_in,
        max_bytes=max_bytes,
        now=NOW,
    )


def verify(url, *, now=NOW + 1, method=None, key=None, secret=SECRET, site=None):
    s, k, q = split(url)
    return verify_local_signature(
        secret,
        site or s,
        key or k,
        method or q["method"],
        q["expires"],
        q["sig"],
        now,
        max_bytes=q.get("max_bytes"),
    )


def test_presigned_put_url_shape(store):
    req = store.presign_put("ds/1/a.png", expires_in=60, content_type="image/png", max_bytes=5)
    assert req.method == "PUT"
    assert req.headers == {"Content-Type": "image/png"}
    assert req.url.startswith("http://hub.test/local-storage/site-a/ds/1/a.png?")
    site, key, query = split(req.url)
    assert (site, key, query["method"], query["max_bytes"]) == ("site-a", "ds/1/a.png", "PUT", "5")
    assert verify_local_signature(
        SECRET, site, key, "PUT", query["expires"], query["sig"], max_bytes=query["max_bytes"]
    )


def test_presign_refuses_long_or_negative_expiry(store):
    for bad in (0, -5, 10**6):
        with pytest.raises(UserError) as exc:
            store.presign_get("a.png", expires_in=bad)
        assert exc.value.code == "invalid_expiry"


def test_valid_signature_verifies_until_expiry():
    url = signed()
    assert verify(url) is True
    assert verify(url, now=NOW + 899) is True


def test_expired_signature_is_refused():
    with pytest.raises(InvalidLocalSignature, match="expired"):
        verify(signed(), now=NOW + 900)


def test_tampered_signature_is_refused():
    url = signed()
    site, key, q = split(url)
    flipped = ("0" if q["sig"][0] != "0" else "1") + q["sig"][1:]
    with pytest.raises(InvalidLocalSignature, match="bad signature"):
        verify_local_signature(
            SECRET, site, key, "PUT", q["expires"], flipped, NOW, max_bytes=q["max_bytes"]
        )


def test_extended_expiry_or_raised_size_cap_is_refused():
    site, key, q = split(signed())
    with pytest.raises(InvalidLocalSignature):
        verify_local_signature(
            SECRET,
            site,
            key,
            "PUT",
            int(q["expires"]) + 3600,
            q["sig"],
            NOW,
            max_bytes=q["max_bytes"],
        )
    with pytest.raises(InvalidLocalSignature):
        verify_local_signature(
            SECRET, site, key, "PUT", q["expires"], q["sig"], NOW, max_bytes=10**9
        )
    with pytest.raises(InvalidLocalSignature):
        verify_local_signature(SECRET, site, key, "PUT", q["expires"], q["sig"], NOW)


def test_wrong_method_is_refused():
    with pytest.raises(InvalidLocalSignature):
        verify(signed(method="GET", max_bytes=None), method="PUT")
    site, key, q = split(signed(method="GET", max_bytes=None))
    with pytest.raises(InvalidLocalSignature, match="wrong method"):
        local_signing.verify_local_request(
            SECRET, site=site, key=key, request_method="PUT", query=q, now=NOW
        )
    assert (
        local_signing.verify_local_request(
            SECRET, site=site, key=key, request_method="HEAD", query=q, now=NOW
        )
        is None
    )


def test_wrong_key_site_or_secret_is_refused():
    url = signed()
    with pytest.raises(InvalidLocalSignature):
        verify(url, key="ds/1/other.png")
    with pytest.raises(InvalidLocalSignature):
        verify(url, site="site-b")
    with pytest.raises(InvalidLocalSignature):
        verify(url, secret="another-secret")


def test_malformed_input_is_refused_not_crashing():
    site, key, q = split(signed())
    for expires, sig, k in (
        ("soon", q["sig"], key),
        (q["expires"], None, key),
        (q["expires"], q["sig"], "../x"),
    ):
        with pytest.raises(InvalidLocalSignature, match="malformed"):
            verify_local_signature(SECRET, site, k, "PUT", expires, sig, NOW)


def test_local_path_stays_inside_the_site_folder(tmp_path):
    assert local_signing.local_path(tmp_path, "site-a", "a/b.png") == tmp_path / "site-a/a/b.png"
    for site, key in (("site-a", "../../x"), ("..", "x"), ("a/b", "x"), ("site-a", "/etc")):
        with pytest.raises(ValueError):
            local_signing.local_path(tmp_path, site, key)


def test_local_signing_imports_only_the_standard_library():
    import ast
    import sys

    tree = ast.parse(Path(local_signing.__file__).read_text())
    names = {
        a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    names |= {
        n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
    }
    assert names - {"__future__"} <= set(sys.stdlib_module_names)


# Factory ---------------------------------------------------------------------


def test_factory_builds_fs_with_secret_file(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    store = storage_from_config(
        {
            "kind": "fs",
            "root": str(tmp_path),
            "site": "site-a",
            "base_url": "http://hub.test",
            "secret_file": str(secret_file),
        }
    )
    assert isinstance(store, FilesystemStorage)
    site, key, q = split(store.presign_get("a.png", expires_in=60))
    assert verify_local_signature(SECRET, site, key, "GET", q["expires"], q["sig"])


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({}, "kind"),
        ({"kind": "ftp"}, "unknown kind"),
        ({"kind": "fs", "root": "/r", "base_url": "http://h", "site": "a"}, "secret"),
        ({"kind": "fs", "root": "/r", "base_url": "http://h", "secret": "s"}, "missing site"),
        (
            {"kind": "s3", "bucket": "b", "access_key": "a", "secret_key": "s", "colour": 1},
            "colour",
        ),
        ({"kind": "s3", "bucket": "b", "access_key": "a"}, "secret_key"),
        (
            {"kind": "s3", "bucket": "b", "access_key": "a", "secret_key_file": "/nonexistent/x"},
            "cannot read",
        ),
    ],
)
def test_factory_explains_bad_config(cfg, message):
    with pytest.raises(UserError, match=message) as exc:
        storage_from_config(cfg)
    assert exc.value.code == "storage_misconfigured"


# The development secret that was once published in Pollen's source --------


PUBLISHED = "embedded-local-storage-secret"


def test_verifier_refuses_a_link_signed_with_the_published_default():
    message = local_signing._message("site-a", "a.png", "GET", NOW + 60, None)
    sig = hmac.new(PUBLISHED.encode(), message, hashlib.sha256).hexdigest()
    with pytest.raises(InvalidLocalSignature):
        verify_local_signature(PUBLISHED, "site-a", "a.png", "GET", NOW + 60, sig, NOW)


@pytest.mark.parametrize("secret", [PUBLISHED, f" {PUBLISHED}\n", "", "   "])
def test_signing_with_the_published_default_or_an_empty_secret_is_refused(secret):
    with pytest.raises(ValueError, match="secret"):
        local_signing.sign_local_url(
            secret, base_url="http://h", site="site-a", key="a.png", method="GET", expires_in=60
        )


def test_agent_refuses_to_start_its_storage_with_the_published_default(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text(PUBLISHED + "\n")
    base = {"kind": "fs", "root": str(tmp_path), "site": "site-a", "base_url": "http://h"}
    for cfg in ({**base, "secret": PUBLISHED}, {**base, "secret_file": str(secret_file)}):
        with pytest.raises(UserError, match="published") as exc:
            storage_from_config(cfg)
        assert exc.value.code == "storage_misconfigured"


def test_agent_worker_exits_at_start_when_a_sites_signing_secret_is_the_published_default(
    tmp_path, capsys
):
    from pollen_agent.__main__ import main

    config = {
        "hub_url": "http://127.0.0.1:9",
        "broker_url": "memory://",
        "sites": [
            {
                "slug": "site-a",
                "token": "pln_test",
                "storage": {
                    "kind": "fs",
                    "root": str(tmp_path),
                    "site": "site-a",
                    "base_url": "http://h",
                    "secret": PUBLISHED,
                },
            }
        ],
    }
    path = tmp_path / "agent.json"
    path.write_text(json.dumps(config))
    assert main(["worker", "--config", str(path)]) == 2
    assert "published" in capsys.readouterr().err
