"""scripts/fleet_report.py on three services generated here: two at 0.1.0 (one with a team's
edit to a template-owned file) and one at the next release. The report, as a table and as
JSON, gives each its version, whether an update is available, and its drift."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import NEXT, REPO_ROOT, commit_all
from team_work import generate

OLD = "0.1.0"
SCRIPT = REPO_ROOT / "scripts" / "fleet_report.py"


def report(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def fleet(template: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fleet")
    payments = generate(template, root / "payments", {"project_name": "Payments"}, OLD)
    ledger = generate(
        template, root / "ledger", {"project_name": "Ledger", "database": "sqlite"}, OLD
    )
    billing = generate(
        template, root / "billing", {"project_name": "Billing", "ci": "gitlab"}, NEXT
    )
    # Payments: a template-owned file edited, and edits a team makes by design, which are not
    # drift: its own feature, the README (shared), a lock.
    errors = payments / "src" / "payments" / "core" / "errors.py"
    errors.write_text(errors.read_text() + "\n# Our own tweak.\n")
    (payments / "README.md").write_text((payments / "README.md").read_text() + "\nOn-call.\n")
    feature = payments / "src" / "payments" / "features" / "orders"
    feature.mkdir()
    (feature / "__init__.py").write_text("")
    (payments / "uv.lock").write_text("version = 1\n")
    commit_all(payments, "Team work")
    # Ledger: a template file deleted.
    (ledger / "Makefile").unlink()
    (ledger / "src" / "ledger" / "shared" / "pagination.py").unlink()
    commit_all(ledger, "Team work")
    return {"payments": payments, "ledger": ledger, "billing": billing}


def test_the_json_report(fleet: dict[str, Path]) -> None:
    services = [str(fleet[name]) for name in ("payments", "ledger", "billing")]
    reports = {entry["name"]: entry for entry in json.loads(report("--json", *services))}
    assert set(reports) == {"payments", "ledger", "billing"}
    for name in ("payments", "ledger"):
        assert reports[name]["version"] == OLD
        assert reports[name]["newest"] == NEXT
        assert reports[name]["update_available"] is True
        assert reports[name]["status"] == f"update available: {OLD} -> {NEXT}"
    assert reports["billing"]["version"] == NEXT
    assert reports["billing"]["update_available"] is False
    assert reports["billing"]["status"] == "up to date"

    assert reports["payments"]["drift"] == [
        {"path": "src/payments/core/errors.py", "change": "changed"}
    ]
    assert reports["payments"]["shared_changed"] == ["README.md"]
    assert reports["ledger"]["drift"] == [
        {"path": "src/ledger/shared/pagination.py", "change": "deleted"}
    ]
    assert reports["ledger"]["shared_changed"] == ["Makefile"]
    assert reports["billing"]["drift"] == [] and reports["billing"]["shared_changed"] == []

    assert reports["ledger"]["answers"]["database"] == "sqlite"
    assert reports["billing"]["answers"]["ci"] == "gitlab"
    assert "_commit" not in reports["billing"]["answers"]


def test_the_table_report(fleet: dict[str, Path]) -> None:
    output = report(str(fleet["payments"]), str(fleet["billing"]), str(fleet["ledger"]))
    lines = output.splitlines()
    assert lines[0].split() == ["SERVICE", "VERSION", "NEWEST", "STATUS", "DRIFT"]
    rows = {line.split()[0]: line.split() for line in lines[1:4]}
    assert rows["payments"][:3] == ["payments", OLD, NEXT]
    assert " ".join(rows["payments"][3:]) == f"update available: {OLD} -> {NEXT} 1"
    assert " ".join(rows["billing"][1:]) == f"{NEXT} {NEXT} up to date 0"
    assert rows["ledger"][-1] == "1"
    assert "    src/payments/core/errors.py (changed)" in lines
    assert "    src/ledger/shared/pagination.py (deleted)" in lines
    assert "  shared files edited: README.md" in lines
    assert "  drift: none" in lines  # billing
    assert any(line.startswith("  answers: ") and "project_name=Ledger" in line for line in lines)


def test_an_unreadable_service_is_reported_not_fatal(
    fleet: dict[str, Path], tmp_path: Path
) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "missing"), str(fleet["billing"])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "error: git clone" in result.stdout
    assert "billing" in result.stdout
