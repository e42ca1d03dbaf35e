"""Call hub URLs on the embedded default (SQLite), in a process of its own.

The test suite's database is PostgreSQL; the embedded default that ``make run`` starts is
SQLite, which fails differently (an integer beyond 64 bits overflows in the driver). Run as
``python -m tests.support.embedded_probe <var-dir>`` with a JSON list of paths on stdin: it
migrates a fresh SQLite database under <var-dir>, signs in a clinician of a seeded site and
prints a JSON object ``{path: [status, body]}``.
"""

from __future__ import annotations

import json
import os
import sys


def main(var_dir: str) -> None:
    os.environ["POLLEN_VAR_DIR"] = var_dir
    os.environ["POLLEN_ENV"] = "test"
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
        os.environ.pop(name, None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pollen.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from rest_framework.test import APIClient

    from pollen.accounts.services import membership_add, site_create

    call_command("migrate", verbosity=0)
    site = site_create(slug="site-a", name="St Anne's Hospital")
    user = membership_add(
        caller=None, site=site, username="carl", role="clinician", password="x-correct-horse"
    ).user
    client = APIClient(raise_request_exception=False)  # a 500 is an answer to report
    client.force_login(user)
    answers = {}
    for path in json.load(sys.stdin):
        response = client.get(path)
        answers[path] = [response.status_code, response.content.decode(errors="replace")[:300]]
    json.dump(answers, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
