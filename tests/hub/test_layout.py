"""platform/ is a source folder, not a package: `import platform` must stay the standard library."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STDLIB = sysconfig.get_paths()["stdlib"]

CHECK = (
    "import platform, sys; "
    "assert platform.__file__ and platform.__file__.startswith(sys.argv[1]), platform.__file__; "
    "assert callable(platform.system); print('stdlib', platform.system())"
)


def test_platform_folder_is_not_a_package():
    assert (REPO / "platform").is_dir()
    assert not (REPO / "platform" / "__init__.py").exists()


def test_import_platform_is_stdlib_in_tests():
    import platform

    assert platform.__file__.startswith(STDLIB)
    assert callable(platform.python_version)


def _run(code: str, *, cwd: Path, env_path: str) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, "PYTHONPATH": env_path, "DJANGO_SETTINGS_MODULE": "pollen.settings"}
    return subprocess.run(
        [sys.executable, "-c", code, STDLIB],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_platform_is_stdlib_in_the_web_process():
    code = "import django; django.setup(); import pollen.urls; " + CHECK
    result = _run(code, cwd=REPO, env_path=f"{REPO}:{REPO / 'platform'}:{REPO / 'workers'}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("stdlib")


def test_import_platform_is_stdlib_in_the_agent():
    code = "import pollen_agent, pollen_contracts.tasks; " + CHECK
    result = _run(code, cwd=REPO, env_path=f"{REPO}:{REPO / 'workers'}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("stdlib")


MAX_MODULE_LINES = 500


def test_no_module_in_the_hub_is_over_500_lines():
    """Modules are split by what they do (docs/architecture.md, "Where the hub's code lives")."""
    package = REPO / "platform" / "pollen"
    modules = [p for p in package.rglob("*.py") if "migrations" not in p.relative_to(package).parts]
    assert len(modules) > 50, "the hub's modules were not found"
    too_long = {
        str(p.relative_to(REPO)): n
        for p in modules
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not too_long, (
        f"split these by what they do (at most {MAX_MODULE_LINES} lines): {too_long}"
    )


def test_no_hub_module_reaches_into_another_modules_private_names():
    """A name one module shares with another is public: ``_name`` stays inside its module."""
    import ast

    found = []
    for path in sorted((REPO / "platform" / "pollen").rglob("*.py")):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pollen"):
                found += [
                    f"{path.relative_to(REPO)}: {alias.name} from {node.module}"
                    for alias in node.names
                    if alias.name.startswith("_")
                ]
    assert found == []
