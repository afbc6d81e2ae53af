"""Generated CI and container files are validated, not just rendered: the workflows and the
pipeline against their published JSON schemas (vendored by check-jsonschema, so no network),
compose.yaml against the compose spec and for the services the answers need, and the
Dockerfile with hadolint."""

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import answer_sets

BIN = Path(sys.executable).parent
IDS = [answer_set.id for answer_set in answer_sets()]
Rendered = dict[str, tuple[Path, dict[str, Any]]]


def validate(schema: str, *files: Path) -> None:
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", schema, *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("set_id", IDS)
def test_ci_files_match_their_schemas_and_services(rendered_sets: Rendered, set_id: str) -> None:
    project, answers = rendered_sets[set_id]
    if answers["ci"] == "github":
        workflows = sorted((project / ".github" / "workflows").glob("*.yml"))
        validate("vendor.github-workflows", *workflows)
        ci = yaml.safe_load((project / ".github" / "workflows" / "ci.yml").read_text())
        services = ci["jobs"]["check"].get("services", {})
        update = yaml.safe_load(
            (project / ".github" / "workflows" / "template-update.yml").read_text()
        )
        # Least privilege: nothing at the top, and only the update job writes.
        assert update["permissions"] == {}
        (job,) = update["jobs"].values()
        assert job["permissions"] == {"contents": "write", "pull-requests": "write"}
        assert "scripts/update_pull_request.py --publish github" in str(job["steps"])
        assert set(job.get("services", {})) == set(ci["jobs"]["check"].get("services", {}))
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False
    elif answers["ci"] == "gitlab":
        validate("vendor.gitlab-ci", project / ".gitlab-ci.yml")
        ci = yaml.safe_load((project / ".gitlab-ci.yml").read_text())
        services = {entry["alias"]: entry for entry in ci["check"].get("services", [])}
        update_job = ci["template-update"]
        assert "scripts/update_pull_request.py --publish gitlab" in str(update_job["script"])
        assert "TEMPLATE_UPDATE_TOKEN" in str(update_job["script"])
        assert update_job["rules"][0] == {"if": '$CI_PIPELINE_SOURCE == "schedule"'}
        assert {s["alias"] for s in update_job.get("services", [])} == set(services)
    else:
        return
    # The committed lock is what CI installs and the image is built from.
    assert "uv sync --locked" in str(ci)
    assert "uv lock" not in str(ci)
    assert ("postgres" in services) == (answers["database"] == "postgresql")
    assert ("redis" in services) == answers["redis"]


@pytest.mark.parametrize("set_id", IDS)
def test_compose_file_is_valid_and_has_the_needed_services(
    rendered_sets: Rendered, set_id: str
) -> None:
    project, answers = rendered_sets[set_id]
    if not answers["docker"]:
        return
    validate("vendor.compose-spec", project / "compose.yaml")
    compose = yaml.safe_load((project / "compose.yaml").read_text())
    expected = {"app"}
    if answers["database"] != "none":
        expected.add("migrate")
    if answers["database"] == "postgresql":
        expected.add("postgres")
    if answers["redis"]:
        expected.add("redis")
    if answers["tracing"]:
        expected.add("jaeger")
    if answers.get("background_jobs"):
        expected.add("worker")
    assert set(compose["services"]) == expected
    app = compose["services"]["app"]
    assert app["environment"]["ENVIRONMENT"] == "production"
    assert ("DATABASE_URL" in app["environment"]) == (answers["database"] != "none")
    assert ("REDIS_URL" in app["environment"]) == answers["redis"]
    assert ("OTEL_EXPORTER_OTLP_ENDPOINT" in app["environment"]) == answers["tracing"]
    if answers.get("background_jobs"):
        worker = compose["services"]["worker"]
        assert worker["command"][-1].endswith(".worker")
        assert worker["healthcheck"]["test"][-1] == "--check"
        assert worker["environment"]["REDIS_URL"] == app["environment"]["REDIS_URL"]


@pytest.mark.parametrize("set_id", IDS)
def test_dockerfile_passes_hadolint(rendered_sets: Rendered, set_id: str) -> None:
    project, answers = rendered_sets[set_id]
    if not answers["docker"]:
        return
    result = subprocess.run(
        [str(BIN / "hadolint"), "--failure-threshold", "info", "Dockerfile"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    dockerfile = (project / "Dockerfile").read_text()
    assert "USER 10001:10001" in dockerfile
    assert "HEALTHCHECK" in dockerfile
    assert f"FROM python:{answers['python_version']}-slim@sha256:" in dockerfile
