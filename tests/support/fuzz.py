"""Run schemathesis against a live hub and count what it found.

Used by the bounded fuzz in the suite (``tests/hub/core/test_schema_fuzz.py``) and by
``make fuzz`` (the same test with more examples per operation). Every check schemathesis has
is run; a failure of ``not_a_server_error`` is a server error, any other failed check (an
undocumented status, a body that does not match the schema, a bad request accepted, a good
one refused, ...) is a schema violation.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

SERVER_ERROR_CHECK = "not_a_server_error"
# A schema-valid request may still be refused for a reason no schema can state: a label that
# is not one of this dataset's labels, a file that is not a zip, images still being checked.
# Such a 400 carries its own stable code and a sentence, and is counted apart as a refusal.
# A 400 with one of these generic codes, though, means the schema failed to describe a rule
# of the request's shape, and is a schema violation.
SHAPE_CODES = {"invalid", "unknown_field", "invalid_filter", "invalid_page", "malformed_json"}


@dataclass(frozen=True)
class Finding:
    operation: str
    check: str
    title: str
    message: str
    status: int | None
    request: str
    body: str

    def error_code(self) -> str | None:
        try:
            return str(json.loads(self.body)["error"]["code"])
        except (ValueError, KeyError, TypeError):
            return None

    def is_refusal(self) -> bool:
        """A schema-valid request refused by a rule of the domain, with its own code."""
        return (
            self.check == "positive_data_acceptance"
            and self.status == 400
            and self.error_code() not in {None, *SHAPE_CODES}
        )

    def kind(self) -> str:
        return f"{self.operation} [{self.check}] -> {self.status}"

    def example(self) -> str:
        body = " ".join(self.body.split())[:160]
        return f"{self.title}: {self.message[:200]}\n      {self.request[:300]}\n      => {body}"


@dataclass
class FuzzResult:
    operations_tested: int = 0
    test_cases: int = 0
    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    output: str = ""

    @property
    def server_errors(self) -> list[Finding]:
        return [f for f in self.findings if f.check == SERVER_ERROR_CHECK]

    @property
    def refusals(self) -> list[Finding]:
        return [f for f in self.findings if f.is_refusal()]

    @property
    def schema_violations(self) -> list[Finding]:
        return [f for f in self.findings if f.check != SERVER_ERROR_CHECK and not f.is_refusal()]

    def totals(self) -> str:
        return (
            f"schemathesis: {len(self.server_errors)} server errors, "
            f"{len(self.schema_violations)} schema violations, {len(self.errors)} errors, "
            f"{len(self.refusals)} requests refused by a domain rule, "
            f"{self.operations_tested} operations tested, {self.test_cases} test cases"
        )

    def report(self, limit: int = 60) -> str:
        """The totals, then each kind of finding once (operation, check, status) with an example."""
        kinds: dict[str, list[Finding]] = {}
        for finding in self.server_errors + self.schema_violations:
            kinds.setdefault(finding.kind(), []).append(finding)
        lines = [self.totals()]
        for kind in sorted(kinds)[:limit]:
            lines.append(f"{len(kinds[kind])} x {kind}\n      {kinds[kind][0].example()}")
        if len(kinds) > limit:
            lines.append(f"... and {len(kinds) - limit} more kinds")
        return "\n".join(lines + self.errors[:10])


def run_schemathesis(
    *,
    base_url: str,
    token: str,
    report_dir: Path,
    max_examples: int,
    seed: int,
    workers: int = 1,
    phases: str = "examples,coverage,fuzzing,stateful",
    timeout: float = 1800,
) -> FuzzResult:
    """Fuzz every operation of the hub's schema at ``base_url`` as the holder of ``token``."""
    report_dir.mkdir(parents=True, exist_ok=True)
    ndjson = report_dir / "events.ndjson"
    summary = report_dir / "summary.json"
    st = Path(sys.executable).with_name("st")
    command = [
        str(st),
        "run",
        f"{base_url}/api/v1/schema/?format=json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        "all",
        "--max-examples",
        str(max_examples),
        "--seed",
        str(seed),
        "--workers",
        str(workers),
        "--request-timeout",
        "30",
        "--no-shrink",
        # Text never holds a NUL character (PostgreSQL cannot store one): the API refuses it
        # with a 400 on every field, so valid examples are generated without it.
        "--generation-allow-x00",
        "false",
        "--phases",
        phases,
        "--report",
        "ndjson,json",
        "--report-ndjson-path",
        str(ndjson),
        "--report-json-path",
        str(summary),
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"}
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
        cwd=report_dir,  # schemathesis keeps a cache (.schemathesis/) in its working folder
    )
    result = FuzzResult(output=completed.stdout[-20000:] + completed.stderr[-5000:])
    if not summary.exists():
        result.errors.append(f"schemathesis wrote no report (exit {completed.returncode})")
        return result
    totals = json.loads(summary.read_text())
    if not totals.get("operations"):
        result.errors.append(f"schemathesis tested nothing: {result.output[-3000:]}")
        return result
    result.operations_tested = totals["operations"]["tested"]
    result.test_cases = totals["test_cases"]["generated"]
    result.errors = [json.dumps(error)[:500] for error in totals.get("errors", [])]
    result.findings = _findings(ndjson)
    return result


def _findings(ndjson: Path) -> list[Finding]:
    found = []
    for line in ndjson.read_text().splitlines():
        event = json.loads(line).get("ScenarioFinished")
        if not event or event.get("status") != "failure":
            continue
        recorder = event["recorder"]
        for case_id, checks in recorder["checks"].items():
            for check in checks:
                if check["status"] != "failure":
                    continue
                failure = check["failure_info"]["failure"]
                interaction = recorder["interactions"].get(case_id) or {}
                found.append(_finding(check["name"], failure, interaction))
    return found


def _finding(check: str, failure: dict, interaction: dict) -> Finding:
    request = interaction.get("request") or {}
    response = interaction.get("response") or {}
    content = (response.get("content") or {}).get("$base64")
    body = base64.b64decode(content).decode(errors="replace") if content else ""
    sent = request.get("body")
    if isinstance(sent, dict) and "$base64" in sent:
        sent = base64.b64decode(sent["$base64"]).decode(errors="replace")
    sent_text = f" body={sent[:300] if isinstance(sent, str) else json.dumps(sent)[:300]}"
    sent_text = sent_text if sent else ""
    return Finding(
        operation=failure.get("operation", "?"),
        check=check,
        title=failure.get("title", ""),
        message=failure.get("message", "").replace("\n", " | ")[:300],
        status=response.get("status_code"),
        request=f"{request.get('method')} {request.get('uri')}{sent_text}",
        body=body,
    )
