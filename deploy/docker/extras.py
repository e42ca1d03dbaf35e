#!/usr/bin/env python3
"""Print the requirements of one optional-dependency group of pyproject.toml, one per line.

The images install dependencies from this list before the source is copied, so a source
change does not reinstall them, and the project itself is never installed into the image
(``platform/`` is a source folder on PYTHONPATH, not a package).

    extras.py web                          # everything the hub needs
    extras.py worker --only torch torchvision   # just these (pinned as in pyproject.toml)
    extras.py worker --skip torch torchvision   # everything else

Stdlib only: it runs in a bare python image.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def requirement_name(requirement: str) -> str:
    match = _NAME.match(requirement)
    if not match:
        raise ValueError(f"cannot read a package name from {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def requirements(
    pyproject: Path, extra: str, *, only: list[str] | None = None, skip: list[str] | None = None
) -> list[str]:
    data = tomllib.loads(pyproject.read_text())
    groups = data["project"].get("optional-dependencies", {})
    if extra not in groups:
        raise KeyError(f"pyproject.toml has no optional-dependencies group {extra!r}")
    wanted = {requirement_name(n) for n in only} if only else None
    unwanted = {requirement_name(n) for n in skip or []}
    out = list(data["project"].get("dependencies", []))
    for req in groups[extra]:
        name = requirement_name(req)
        if (wanted is None or name in wanted) and name not in unwanted:
            out.append(req)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("extra", help="optional-dependency group, e.g. web or worker")
    parser.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"))
    parser.add_argument("--only", nargs="+", help="keep only these packages")
    parser.add_argument("--skip", nargs="+", help="leave these packages out")
    args = parser.parse_args(argv)
    try:
        lines = requirements(args.pyproject, args.extra, only=args.only, skip=args.skip)
    except (KeyError, ValueError, OSError) as exc:
        print(f"extras.py: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
