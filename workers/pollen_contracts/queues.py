"""Queue names. Each site has its own queues; an agent consumes only its own."""

from __future__ import annotations

import re

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$")


def _checked(slug: str) -> str:
    if not SLUG_RE.match(slug):
        raise ValueError(f"invalid site slug {slug!r}")
    return slug


def gpu_queue(slug: str) -> str:
    """Queue for long work at a site: training jobs and cross-site rounds."""
    return f"site.{_checked(slug)}.gpu"


def quick_queue(slug: str) -> str:
    """Queue for quick models at a site (frozen features and a small head, minutes at most).

    Its own worker takes it, so that a quick model never waits behind a long training job.
    """
    return f"site.{_checked(slug)}.quick"


def infer_queue(slug: str) -> str:
    """Queue for applying models at a site: predictions, evaluations, exports, publication copies.

    Its own worker takes it, so that a prediction never waits behind a training job.
    """
    return f"site.{_checked(slug)}.infer"


def io_queue(slug: str) -> str:
    """Queue for fast storage chores at a site: presigning, ingest, deletion."""
    return f"site.{_checked(slug)}.io"


def site_queues(slug: str) -> tuple[str, ...]:
    """Every queue of a site, one per kind of worker."""
    return (io_queue(slug), gpu_queue(slug), quick_queue(slug), infer_queue(slug))
