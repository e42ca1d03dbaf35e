#!/usr/bin/env python
"""Django's command-line utility for the Pollen hub."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
# platform/ is a source folder, not a package: put it (and the shared contract) on the path.
for folder in (ROOT / "platform", ROOT / "workers"):
    if str(folder) not in sys.path:
        sys.path.insert(1, str(folder))


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pollen.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
