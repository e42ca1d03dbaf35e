"""CSV exports: values are stored as given, and exported so that a spreadsheet never runs them."""

from __future__ import annotations

import csv
import io

import pytest

from pollen.core.csv_safe import csv_cell, csv_text

DANGEROUS = ["=1+1", "+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1", '=HYPERLINK("http://x","y")']


@pytest.mark.parametrize("value", DANGEROUS)
def test_a_cell_that_a_spreadsheet_would_run_is_prefixed_with_a_quote(value):
    assert csv_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["normal", "P-001", "", "it's fine", "a=b", 42, None])
def test_ordinary_cells_are_left_alone(value):
    assert csv_cell(value) == ("" if value is None else str(value))


def test_a_whole_file_reads_back_with_every_formula_neutralised():
    text = csv_text(["filename", "label"], [["=cmd|' /C calc'!A0", "@x"], ["ok.png", "normal"]])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [["filename", "label"], ["'=cmd|' /C calc'!A0", "'@x"], ["ok.png", "normal"]]


@pytest.mark.django_db
def test_dataset_export_keeps_stored_values_and_neutralises_formulas(
    client_for, clinician_a, outsider
):
    from pollen.audit.models import AuditEvent
    from pollen.datasets.models import Dataset, Image

    dataset = Dataset.objects.create(
        site=clinician_a.site, name="Export", label_names=["@SUM(1+1)", "normal"]
    )
    Image.objects.create(
        dataset=dataset,
        filename="-evil.png",
        storage_key=f"datasets/{dataset.pk}/images/1.png",
        label="@SUM(1+1)",
        patient_id='=HYPERLINK("http://evil","click")',
        split="train",
        status="accepted",
    )
    Image.objects.create(
        dataset=dataset,
        filename="b.png",
        storage_key=f"datasets/{dataset.pk}/images/2.png",
        label="normal",
        patient_id="P-7",
        split="test",
        status="accepted",
    )
    client = client_for(clinician_a)
    stored = client.get(f"/api/v1/datasets/{dataset.pk}/images/").json()["results"]
    assert stored[0]["patient_id"] == '=HYPERLINK("http://evil","click")'  # stored as given

    response = client.get(f"/api/v1/datasets/{dataset.pk}/export/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [r["filename"] for r in rows] == ["'-evil.png", "b.png"]
    assert rows[0]["label"] == "'@SUM(1+1)"
    assert rows[0]["patient_id"] == '\'=HYPERLINK("http://evil","click")'
    assert rows[1]["patient_id"] == "P-7"
    assert AuditEvent.objects.filter(action="dataset.export", target_id=str(dataset.pk)).exists()
    assert client_for(outsider).get(f"/api/v1/datasets/{dataset.pk}/export/").status_code == 404


@pytest.mark.parametrize("value", [*DANGEROUS, "normal", "'plain quote stays", ""])
def test_csv_cell_value_undoes_exactly_what_csv_cell_added(value):
    from pollen.core.csv_safe import csv_cell_value

    assert csv_cell_value(csv_cell(value)) == value


@pytest.mark.django_db
def test_an_exported_list_applied_back_as_a_manifest_keeps_values_exactly(client_for, clinician_a):
    from pollen.datasets.models import Dataset, Image

    dataset = Dataset.objects.create(
        site=clinician_a.site, name="Round trip", label_names=["@SUM(1+1)", "normal"]
    )
    image = Image.objects.create(
        dataset=dataset,
        filename="a.png",
        storage_key=f"datasets/{dataset.pk}/images/1.png",
        label="normal",
        patient_id="=P1",
        split="train",
        status="accepted",
    )
    client = client_for(clinician_a)
    exported = b"".join(client.get(f"/api/v1/datasets/{dataset.pk}/export/").streaming_content)
    edited = exported.decode("utf-8-sig").replace(",normal,", ",'@SUM(1+1),")
    applied = client.post(
        f"/api/v1/datasets/{dataset.pk}/manifest/", {"csv": edited}, format="json"
    )
    assert applied.status_code == 200, applied.content
    image.refresh_from_db()
    assert (image.label, image.patient_id) == ("@SUM(1+1)", "=P1")
