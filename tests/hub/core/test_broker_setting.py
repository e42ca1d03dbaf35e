"""The hub refuses the removed filesystem broker at start, naming the setting to change."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def _start_hub_settings(tmp_path: Path, broker: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "DJANGO_"))}
    env.update(
        POLLEN_VAR_DIR=str(tmp_path),
        CELERY_BROKER_URL=broker,
        PYTHONPATH=f"{REPO / 'platform'}{os.pathsep}{REPO / 'workers'}",
        DJANGO_SETTINGS_MODULE="pollen.settings",
    )
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_filesystem_broker_stops_the_hub_with_its_reason(tmp_path):
    result = _start_hub_settings(tmp_path, "filesystem://")
    assert result.returncode != 0
    assert "ConfigError" in result.stderr and "CELERY_BROKER_URL" in result.stderr


def test_a_redis_broker_starts(tmp_path):
    result = _start_hub_settings(tmp_path, "redis://127.0.0.1:6379/14")
    assert result.returncode == 0, result.stderr
