"""The web side never imports torch; the agent never imports Django. Checked two ways."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


# Entry points that read their config at import time (they are what a process runs).
ENTRY_POINTS = {"pollen_agent.worker_entry", "pollen_agent.__main__"}


def _modules(package_dir: Path, package: str) -> list[str]:
    names = []
    for path in sorted(package_dir.rglob("*.py")):
        rel = path.relative_to(package_dir.parent).with_suffix("")
        parts = list(rel.parts)
        if "migrations" in parts or "tests" in parts:
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if ".".join(parts) not in ENTRY_POINTS:
            names.append(".".join(parts))
    assert names and names[0].startswith(package)
    return names


def _run(code: str, *, django: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO / 'platform'}:{REPO / 'workers'}",
        "DJANGO_SETTINGS_MODULE": "pollen.settings",
    }
    if not django:
        env.pop("DJANGO_SETTINGS_MODULE")
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


def test_every_web_module_imports_without_torch():
    modules = _modules(REPO / "platform" / "pollen", "pollen")
    code = (
        "import django, importlib, sys; django.setup()\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'torchvision', 'timm', 'pollen_agent'})\n"
        "assert not bad, bad\nprint(len(sys.modules))"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr[-3000:]


def test_every_agent_module_imports_without_django():
    """As in the agent image: Django is not installed. Libraries such as kombu probe for it
    optionally, so the check blocks it and imports every agent module."""
    modules = _modules(REPO / "workers" / "pollen_agent", "pollen_agent")
    modules += _modules(REPO / "workers" / "pollen_contracts", "pollen_contracts")
    code = (
        "import importlib, importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'django', 'rest_framework', 'pollen'}:\n"
        "            raise ImportError(f'{name} is not installed in the agent image')\n"
        "sys.meta_path.insert(0, Block())\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print('ok')"
    )
    for django_env in (True, False):
        result = _run(code, django=django_env)
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.strip() == "ok"


def test_import_linter_contracts_hold():
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--config", "pyproject.toml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": f"{REPO / 'platform'}:{REPO / 'workers'}"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "KEPT" in result.stdout and "BROKEN" not in result.stdout
