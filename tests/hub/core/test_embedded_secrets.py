"""The embedded default's secrets: made per install, kept private, and never the published ones.

Each case starts the hub's settings in a fresh process, as `make run` and gunicorn do, with a
throwaway state folder (POLLEN_VAR_DIR) and none of the test run's own configuration.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
PROBE = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'secret_key': s.SECRET_KEY, 'storage_secret': s.LOCAL_STORAGE_SECRET, "
    "'storage_secret_file': str(s.LOCAL_STORAGE_SECRET_FILE)}))"
)
PUBLISHED_STORAGE_SECRET = "embedded-local-storage-secret"
PUBLISHED_SECRET_KEY = "embedded-default-not-secret-" + "x" * 40


def _start(var_dir: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("POLLEN_", "DATABASE_URL", "REDIS_URL", "CELERY_", "DJANGO_"))
    }
    env.update(
        POLLEN_ENV="embedded",
        POLLEN_VAR_DIR=str(var_dir),
        PYTHONPATH=f"{REPO / 'platform'}{os.pathsep}{REPO / 'workers'}",
        DJANGO_SETTINGS_MODULE="pollen.settings",
        **extra,
    )
    return subprocess.run(
        [sys.executable, "-c", PROBE], env=env, cwd=REPO, capture_output=True, text=True, timeout=60
    )


def _settings(var_dir: Path, **extra: str) -> dict[str, str]:
    result = _start(var_dir, **extra)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_each_install_makes_its_own_secrets_and_keeps_them_private(tmp_path: Path) -> None:
    first = _settings(tmp_path / "one")
    again = _settings(tmp_path / "one")
    other = _settings(tmp_path / "two")

    assert first == again, "a restart must keep the install's secrets (sessions and links survive)"
    assert first["storage_secret"] != other["storage_secret"]
    assert first["secret_key"] != other["secret_key"]
    assert first["storage_secret"] != PUBLISHED_STORAGE_SECRET
    assert first["secret_key"] != PUBLISHED_SECRET_KEY
    assert len(first["storage_secret"]) >= 32 and len(first["secret_key"]) >= 50
    for name in ("local-storage-secret", "secret-key"):
        path = tmp_path / "one" / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
    assert first["storage_secret_file"] == str(tmp_path / "one" / "local-storage-secret")
    stored = (tmp_path / "one" / "local-storage-secret").read_text().strip()
    assert stored == first["storage_secret"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("POLLEN_LOCAL_STORAGE_SECRET", PUBLISHED_STORAGE_SECRET),
        ("POLLEN_LOCAL_STORAGE_SECRET", ""),
        ("POLLEN_LOCAL_STORAGE_SECRET", "   "),
        ("POLLEN_SECRET_KEY", PUBLISHED_SECRET_KEY),
        ("POLLEN_SECRET_KEY", ""),
    ],
)
def test_hub_refuses_to_start_with_a_published_or_empty_secret(
    tmp_path: Path, variable: str, value: str
) -> None:
    result = _start(tmp_path / "var", **{variable: value})
    assert result.returncode != 0, f"the hub started with {variable}={value!r}"
    assert variable in result.stderr, result.stderr
    assert "ConfigError" in result.stderr


def test_hub_refuses_a_published_secret_from_a_secret_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "storage-secret"
    secret_file.write_text(PUBLISHED_STORAGE_SECRET + "\n")
    result = _start(tmp_path / "var", POLLEN_LOCAL_STORAGE_SECRET_FILE=str(secret_file))
    assert result.returncode != 0
    assert "POLLEN_LOCAL_STORAGE_SECRET" in result.stderr


def test_hub_refuses_a_state_secret_that_others_can_read(tmp_path: Path) -> None:
    _settings(tmp_path / "var")
    (tmp_path / "var" / "local-storage-secret").chmod(0o644)
    result = _start(tmp_path / "var")
    assert result.returncode != 0
    assert "chmod 600" in result.stderr, result.stderr


def test_a_configured_secret_is_used_and_no_file_is_written(tmp_path: Path) -> None:
    chosen = "a-secret-the-operator-chose-" + "k" * 20
    values = _settings(tmp_path / "var", POLLEN_LOCAL_STORAGE_SECRET=chosen)
    assert values["storage_secret"] == chosen
    assert values["storage_secret_file"] == "None"
    assert not (tmp_path / "var" / "local-storage-secret").exists()
