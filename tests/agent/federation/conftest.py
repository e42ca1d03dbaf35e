"""Fixtures shared with the marketplace job tests: the hub's model store over HTTP, and a site's storage."""

from tests.agent.jobs.conftest import storage  # noqa: F401
from tests.agent.jobs.test_jobs_marketplace import hub_store  # noqa: F401
