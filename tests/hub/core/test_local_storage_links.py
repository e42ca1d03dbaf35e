"""The hub's /local-storage/ view serves a file only for a link signed with this install's secret."""

from __future__ import annotations

import hashlib
import hmac
import json
import stat
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from pollen.datasets.management.commands.seed_demo import Command as SeedDemo
from pollen_agent.storage.factory import storage_from_config
from pollen_contracts import local_signing

KEY = "datasets/1/images/scan.png"
BODY = b"\x89PNG not really"


@pytest.fixture
def storage(settings, tmp_path: Path) -> Path:
    settings.LOCAL_STORAGE_ENABLED = True
    settings.LOCAL_STORAGE_ROOT = tmp_path
    (tmp_path / "site-a" / "datasets/1/images").mkdir(parents=True)
    (tmp_path / "site-a" / KEY).write_bytes(BODY)
    return tmp_path


def _link(secret: str, *, method: str = "GET", expires_in: int = 300, **kw: object) -> str:
    url = local_signing.sign_local_url(
        secret,
        base_url="http://testserver",
        site="site-a",
        key=KEY,
        method=method,
        expires_in=expires_in,
        **kw,  # type: ignore[arg-type]
    )
    return url.removeprefix("http://testserver")


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return f"{parts.path}?{urlencode(query)}"


def _flip_one_char(value: str, index: int) -> str:
    return value[:index] + ("0" if value[index] != "0" else "1") + value[index + 1 :]


def test_a_link_signed_with_this_installs_secret_serves_the_file(client, settings, storage) -> None:
    response = client.get(_link(settings.LOCAL_STORAGE_SECRET))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == BODY


def test_a_link_signed_with_another_secret_is_refused(client, storage) -> None:
    response = client.get(_link("a-secret-this-hub-never-had-" + "z" * 20))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "invalid_signature"


def test_a_link_signed_with_the_published_default_is_refused(client, storage) -> None:
    # Forged by hand: the signing helper itself refuses the published secret.
    forged = local_signing._message("site-a", KEY, "GET", 4_000_000_000, None)
    sig = hmac.new(b"embedded-local-storage-secret", forged, hashlib.sha256).hexdigest()
    path = f"/local-storage/site-a/{KEY}?" + urlencode(
        {"expires": "4000000000", "method": "GET", "sig": sig}
    )
    assert client.get(path).status_code == 403


def test_an_expired_link_is_refused(client, settings, storage) -> None:
    url = _link(settings.LOCAL_STORAGE_SECRET, expires_in=60, now=1_000_000_000)
    response = client.get(url)
    assert response.status_code == 403
    assert "expired" in response.json()["error"]["message"]


@pytest.mark.parametrize("index", [0, 31, 63])
def test_a_link_with_one_character_of_its_signature_changed_is_refused(
    client, settings, storage, index: int
) -> None:
    url = _link(settings.LOCAL_STORAGE_SECRET)
    sig = parse_qs(urlsplit(url).query)["sig"][0]
    response = client.get(_with_query(url, sig=_flip_one_char(sig, index)))
    assert response.status_code == 403


def test_a_link_with_its_expiry_site_key_or_size_cap_changed_is_refused(
    client, settings, storage
) -> None:
    url = _link(settings.LOCAL_STORAGE_SECRET)
    expires = parse_qs(urlsplit(url).query)["expires"][0]
    assert client.get(_with_query(url, expires=_flip_one_char(expires, 1))).status_code == 403
    (storage / "site-b" / "datasets/1/images").mkdir(parents=True)
    (storage / "site-b" / KEY).write_bytes(BODY)
    assert client.get(url.replace("/site-a/", "/site-b/")).status_code == 403
    assert client.get(url.replace("scan.png", "scan.pnG")).status_code == 403

    upload = _link(settings.LOCAL_STORAGE_SECRET, method="PUT", max_bytes=10)
    raised = _with_query(upload, max_bytes="19")
    response = client.put(raised, data=b"x" * 19, content_type="application/octet-stream")
    assert response.status_code == 403
    assert (storage / "site-a" / KEY).read_bytes() == BODY


def test_the_agent_seed_demo_configures_reads_the_hubs_secret_file_and_its_links_work(
    client, settings, storage, tmp_path: Path, site_a
) -> None:
    secret_file = tmp_path / "local-storage-secret"
    secret_file.write_text(settings.LOCAL_STORAGE_SECRET + "\n")
    settings.LOCAL_STORAGE_SECRET_FILE = secret_file
    config_path = tmp_path / "agent.json"

    SeedDemo()._write_agent_config(config_path, {"site-a": site_a})

    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
    assert settings.LOCAL_STORAGE_SECRET not in config_path.read_text()
    site_storage = json.loads(config_path.read_text())["sites"][0]["storage"]
    assert site_storage["secret_file"] == str(secret_file)
    agent_store = storage_from_config(site_storage)
    link = agent_store.presign_get(KEY, expires_in=60)
    response = client.get(link.removeprefix(settings.PUBLIC_URL))
    assert response.status_code == 200
