"""schemathesis, with every check, on the whole OpenAPI schema as a clinician of a seeded site.

The hub must answer no request with a server error, and every answer (status, content type,
body) must match the schema: a bad request is refused with a documented 4xx, a good one is
accepted. The suite runs a few examples per operation with a fixed seed; ``make fuzz`` runs
the same test with many more (``POLLEN_FUZZ_EXAMPLES``) and prints the totals.
"""

from __future__ import annotations

import os

import pytest

from pollen.accounts.services import token_create
from pollen.datasets.models import Dataset, Image, ImageStatus
from tests.support.fuzz import run_schemathesis

EXAMPLES = int(os.environ.get("POLLEN_FUZZ_EXAMPLES", "5"))
SEED = int(os.environ.get("POLLEN_FUZZ_SEED", "16"))
# The suite runs the explicit examples and random fuzzing (seconds); make fuzz adds the
# coverage phase (every boundary of every constraint) and the stateful one (chains of calls).
PHASES = os.environ.get("POLLEN_FUZZ_PHASES", "examples,fuzzing")


@pytest.fixture
def clinician_token(transactional_db, site_a, clinician_a, outsider, settings):
    """A clinician's site token at site A, which holds a dataset with a few checked images."""
    settings.AGENT_ANSWER_TIMEOUT = 0.5  # no agent runs here: say 'offline' quickly
    dataset = Dataset.objects.create(
        site=site_a, name="Fuzzed chest X-rays", label_names=["normal", "pneumonia"]
    )
    Image.objects.bulk_create(
        Image(
            dataset=dataset,
            filename=f"xray-{n}.png",
            label="normal" if n % 2 else "pneumonia",
            patient_id=f"p{n}",
            storage_key=f"datasets/{dataset.pk}/xray-{n}.png",
            split=("train", "val", "test")[n % 3],
            status=ImageStatus.ACCEPTED,
        )
        for n in range(6)
    )
    _, plaintext = token_create(caller=None, site=site_a, name="fuzz", role="clinician")
    return plaintext


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    live_server, clinician_token, tmp_path
):
    result = run_schemathesis(
        base_url=live_server.url,
        token=clinician_token,
        report_dir=tmp_path / "schemathesis",
        max_examples=EXAMPLES,
        seed=SEED,
        phases=PHASES,
    )
    print(result.totals())
    assert result.operations_tested > 80, result.output[-3000:]
    assert not result.errors, result.report()
    assert not result.server_errors, result.report()
    assert not result.schema_violations, result.report()
