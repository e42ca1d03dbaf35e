"""A dataset names the finding its models look for; the default never picks a "nothing found" label."""

from __future__ import annotations

import pytest

from pollen.audit.models import AuditEvent
from pollen.datasets.positive_class import default_positive_class, is_negative_label


@pytest.mark.parametrize(
    ("labels", "finding"),
    [
        (["malignant", "benign or normal"], "malignant"),
        (["benign or normal", "malignant"], "malignant"),
        (["normal", "pneumonia"], "pneumonia"),
        (["Pneumonia", "NORMAL"], "Pneumonia"),
        (["No finding", "nodule"], "nodule"),
        (["effusion", "no_finding"], "effusion"),
        (["healthy", "glaucoma"], "glaucoma"),
        (["melanoma", "control"], "melanoma"),
        (["COVID negative", "COVID positive"], "COVID positive"),
        (["abnormal", "normal"], "abnormal"),
        (["no lesion", "lesion"], "lesion"),
        # Neither or both say "nothing found": the second label, as older models measured it.
        (["left", "right"], "right"),
        (["normal", "benign"], "benign"),
        (["a", "b", "c"], ""),
        (["only"], ""),
    ],
)
def test_default_finding(labels, finding):
    assert default_positive_class(labels) == finding


def test_negative_names_are_matched_as_words():
    assert is_negative_label("Benign or normal")
    assert not is_negative_label("abnormal")
    assert not is_negative_label("nonspecific mass")  # "non" counts only as a word of its own
    assert not is_negative_label("malignant")


def _create(client, **fields):
    body = {"site": "site-a", "name": "Breast", "label_names": ["malignant", "benign or normal"]}
    return client.post("/api/v1/datasets/", body | fields, format="json")


@pytest.mark.django_db
def test_new_dataset_gets_the_default_finding(client_for, clinician_a):
    response = _create(client_for(clinician_a))
    assert response.status_code == 201, response.content
    assert response.json()["positive_class"] == "malignant"


@pytest.mark.django_db
def test_chosen_finding_is_kept_and_audited_when_changed(client_for, clinician_a):
    client = client_for(clinician_a)
    created = _create(client, positive_class="benign or normal").json()
    assert created["positive_class"] == "benign or normal"
    changed = client.patch(
        f"/api/v1/datasets/{created['id']}/", {"positive_class": "malignant"}, format="json"
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["positive_class"] == "malignant"
    event = AuditEvent.objects.filter(action="dataset.update", target_id=str(created["id"])).get()
    assert event.detail["positive_class"] == {"from": "benign or normal", "to": "malignant"}


@pytest.mark.django_db
def test_finding_that_is_not_a_label_is_refused(client_for, clinician_a):
    client = client_for(clinician_a)
    response = _create(client, positive_class="pneumonia")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_positive_class"
    assert "malignant" in response.json()["error"]["message"]
    created = _create(client, name="Other").json()
    patched = client.patch(
        f"/api/v1/datasets/{created['id']}/", {"positive_class": "Malignant"}, format="json"
    )
    assert patched.status_code == 400
    assert patched.json()["error"]["code"] == "invalid_positive_class"


@pytest.mark.django_db
def test_three_labels_have_no_single_finding(client_for, clinician_a):
    client = client_for(clinician_a)
    labels = {"label_names": ["a", "b", "c"]}
    assert _create(client, **labels).json()["positive_class"] == ""
    refused = _create(client, name="Other", positive_class="a", **labels)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid_positive_class"


@pytest.mark.django_db
def test_finding_follows_label_changes(client_for, clinician_a):
    client = client_for(clinician_a)
    created = _create(client, label_names=[]).json()
    assert created["positive_class"] == ""
    url = f"/api/v1/datasets/{created['id']}/"
    two = client.patch(url, {"label_names": ["normal", "pneumonia"]}, format="json").json()
    assert two["positive_class"] == "pneumonia"
    renamed = client.patch(url, {"label_names": ["normal", "effusion"]}, format="json").json()
    assert renamed["positive_class"] == "effusion"
