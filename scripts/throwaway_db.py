"""A database of its own for one test run: `create URL DIR` prints its URL, `drop URL` removes it.

For a PostgreSQL URL the new database sits on the same server (the role needs CREATEDB), under a
name no other run uses; for SQLite (or no URL) it is a file in DIR, removed with DIR.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

PREFIX = "pollen_e2e_"


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _is_postgres(url: str) -> bool:
    return urlsplit(url).scheme in {"postgres", "postgresql"}


def create(url: str, folder: str) -> str:
    if not _is_postgres(url):
        return f"sqlite:///{Path(folder).resolve() / 'e2e.sqlite3'}"
    import psycopg

    name = f"{PREFIX}{secrets.token_hex(4)}"
    with psycopg.connect(_with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return _with_database(url, name)


def drop(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    if not _is_postgres(url) or not name.startswith(PREFIX):
        return  # only databases this script made
    import psycopg

    with psycopg.connect(_with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "create":
        print(create(sys.argv[2], sys.argv[3]))
    elif len(sys.argv) == 3 and sys.argv[1] == "drop":
        drop(sys.argv[2])
    else:
        sys.exit("usage: throwaway_db.py create URL DIR | drop URL")
