"""What README.md and docs/architecture.md say about the embedded default is what it runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
PROBE = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps([s.CELERY_BROKER_URL, s.CELERY_RESULT_BACKEND]))"
)


def _embedded_celery_urls(var_dir: Path) -> list[str]:
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
    )
    result = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _env_row(readme: str, variable: str) -> str:
    return next(line for line in readme.splitlines() if line.startswith(f"| `{variable}`"))


def test_docs_describe_the_embedded_broker_and_result_backend_that_make_run_uses(
    tmp_path: Path,
) -> None:
    broker, results = _embedded_celery_urls(tmp_path)
    assert broker == f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}"
    assert results == f"db+sqlite:///{tmp_path / 'celery-results.sqlite3'}"

    readme = (REPO / "README.md").read_text()
    architecture = (REPO / "docs" / "architecture.md").read_text()
    for name, text in (("README.md", readme), ("docs/architecture.md", architecture)):
        flat = re.sub(r"\s+", " ", text)
        assert not re.search(r"filesystem (transport|broker)", flat), f"{name} names the old broker"
        assert "var/broker.sqlite3" in flat, f"{name} says where the embedded broker lives"
    assert "sqla+sqlite" in _env_row(readme, "CELERY_BROKER_URL")
    assert "db+sqlite" in _env_row(readme, "CELERY_RESULT_BACKEND")
