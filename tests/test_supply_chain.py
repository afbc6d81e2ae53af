"""Supply chain of every generated service (decision 0019): the GitHub workflows pass zizmor
(offline) with no finding, every action is pinned to a commit and every image to a digest,
checkouts keep no credentials, each job has only the permissions it needs, the locked
dependencies are audited, and the Renovate and Dependabot configs are valid against their
published schemas (vendored in tests/schemas/: SchemaStore's renovate-43.json and
dependabot-2.0.json, since the tests run offline)."""

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from support import COPIER_FILE, REPO_ROOT, answer_sets, render

BIN = Path(sys.executable).parent
IDS = [answer_set.id for answer_set in answer_sets()]
Rendered = dict[str, tuple[Path, dict[str, Any]]]
SCHEMAS = REPO_ROOT / "tests" / "schemas"
RENOVATE_SCHEMA = json.loads((SCHEMAS / "renovate-43.json").read_text())
DEPENDABOT_SCHEMA = json.loads((SCHEMAS / "dependabot-2.0.json").read_text())
CONFIG = yaml.safe_load(COPIER_FILE.read_text())
# The one list of pinned actions and images the template renders (copier.yml).
PINNED_ACTIONS = set(CONFIG["actions"]["default"].values())
PINNED_IMAGES = set(CONFIG["images"]["default"].values())

COMMIT_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
# `uses: owner/action@<sha> # v1.2.3`, as the line reads in the file.
USES_LINE = re.compile(r"^\s*(?:- )?uses: (?P<ref>\S+)(?P<comment> # v\d+(\.\d+)*)?\s*$")
# Workflows whose job may write, and what (the template update pull requests).
WRITERS = {"template-update.yml": {"contents", "pull-requests"}}
DIGEST_PIN = re.compile(r"^[\w./-]+(:[\w.-]+)?@sha256:[0-9a-f]{64}$")


def zizmor(project: Path) -> tuple[int, list[dict[str, Any]], str]:
    result = subprocess.run(
        [str(BIN / "zizmor"), "--offline", "--no-progress", "--format", "json", str(project)],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode, json.loads(result.stdout or "[]"), result.stderr


def workflows(project: Path) -> list[Path]:
    return sorted((project / ".github" / "workflows").glob("*.yml"))


def uses_lines(text: str) -> list[re.Match[str]]:
    return [m for line in text.splitlines() if (m := USES_LINE.match(line))]


def steps_and_jobs(workflow: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(job, step) for job in workflow["jobs"].values() for step in job.get("steps", [])]


# --- GitHub -------------------------------------------------------------------------------


@pytest.mark.parametrize("set_id", IDS)
def test_zizmor_finds_nothing_in_the_github_workflows(rendered_sets: Rendered, set_id: str) -> None:
    project, answers = rendered_sets[set_id]
    if answers["ci"] != "github":
        return
    # The whole service: workflows, and dependabot.yml when there is one.
    code, findings, stderr = zizmor(project)
    assert findings == [], json.dumps(findings, indent=1)[:4000]
    assert code == 0, stderr


@pytest.mark.parametrize("set_id", IDS)
def test_github_actions_are_pinned_and_jobs_least_privileged(
    rendered_sets: Rendered, set_id: str
) -> None:
    project, answers = rendered_sets[set_id]
    if answers["ci"] != "github":
        return
    files = workflows(project)
    assert {path.name for path in files} >= {"ci.yml", "audit.yml", "template-update.yml"}
    for path in files:
        text = path.read_text()
        workflow = yaml.safe_load(text)
        lines = uses_lines(text)
        assert lines, path
        for line in lines:
            assert COMMIT_PIN.match(line["ref"]), f"{path.name}: {line['ref']} is not a commit"
            assert line["comment"], f"{path.name}: {line['ref']} has no `# vX.Y.Z` comment"
            # One list of pins for every workflow: `uses: {{ actions.checkout }}`.
            assert f"{line['ref']}{line['comment']}" in PINNED_ACTIONS, (
                f"{path.name}: {line.group(0).strip()} is not one of copier.yml's `actions`"
            )
        # Nothing is granted to the whole workflow; each job says what it needs.
        assert workflow["permissions"] == {}, path.name
        for name, job in workflow["jobs"].items():
            granted = job["permissions"]
            assert isinstance(granted, dict) and granted.get("contents") in {"read", "write"}
            writes = {scope for scope, level in granted.items() if level == "write"}
            # Only the job that opens template update pull requests may write.
            allowed = WRITERS.get(path.name, set())
            assert writes <= allowed, f"{path.name}: {name} may write {writes - allowed}"
            for service in [*job.get("services", {}).values(), job.get("container")]:
                if service:
                    image = service["image"] if isinstance(service, dict) else service
                    assert image in PINNED_IMAGES, f"{path.name}: {name}: {image}"
        for _, step in steps_and_jobs(workflow):
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, path.name


@pytest.mark.parametrize("set_id", IDS)
def test_the_locked_dependencies_are_audited(rendered_sets: Rendered, set_id: str) -> None:
    project, answers = rendered_sets[set_id]
    command = CONFIG["audit_command"]["default"]
    assert command.startswith("uv export --frozen ")
    assert "pip-audit@" in command
    assert f"\t{command}\n" in (project / "Makefile").read_text()
    if answers["ci"] == "github":
        audit = yaml.safe_load((project / ".github" / "workflows" / "audit.yml").read_text())
        assert {"push", "pull_request", "schedule"} <= set(audit[True])  # YAML's `on:`
        assert audit["jobs"]["audit"]["steps"][-1]["run"] == command
    elif answers["ci"] == "gitlab":
        pipeline = yaml.safe_load((project / ".gitlab-ci.yml").read_text())
        assert pipeline["audit"]["script"] == [command]
        # Schedules too: new advisories appear without any change to the service.
        assert all("if" not in rule for rule in pipeline["audit"]["rules"])


# --- GitLab and the Dockerfile ------------------------------------------------------------


def gitlab_images(pipeline: dict[str, Any]) -> list[str]:
    images = []
    for job in pipeline.values():
        if not isinstance(job, dict):
            continue
        for entry in [job.get("image"), *job.get("services", [])]:
            if entry:
                images.append(entry["name"] if isinstance(entry, dict) else entry)
    return images


@pytest.mark.parametrize("set_id", IDS)
def test_gitlab_images_are_pinned_and_no_token_is_kept(
    rendered_sets: Rendered, set_id: str
) -> None:
    project, answers = rendered_sets[set_id]
    if answers["ci"] != "gitlab":
        return
    text = (project / ".gitlab-ci.yml").read_text()
    pipeline = yaml.safe_load(text)
    images = gitlab_images(pipeline)
    assert images
    for image in images:
        assert DIGEST_PIN.match(image) and image in PINNED_IMAGES, image
    assert f"python:{answers['python_version']}-slim@sha256:" in pipeline[".uv"]["image"]
    assert pipeline["variables"]["FF_GIT_URLS_WITHOUT_TOKENS"] == "true"
    assert pipeline["variables"]["UV_VERSION"] == CONFIG["uv_version"]["default"]
    # No job handles a token itself, or writes one into a remote.
    assert "CI_JOB_TOKEN" not in text
    assert "remote set-url" not in text


@pytest.mark.parametrize("set_id", IDS)
def test_dockerfile_images_are_pinned_by_digest(rendered_sets: Rendered, set_id: str) -> None:
    project, answers = rendered_sets[set_id]
    if not answers["docker"]:
        return
    dockerfile = (project / "Dockerfile").read_text()
    references = re.findall(r"^FROM (\S+)", dockerfile, re.M)
    references += re.findall(r"--from=(\S+)", dockerfile)
    references = [ref for ref in references if ref not in {"builder"}]
    assert len(references) == 3, references
    for reference in references:
        assert DIGEST_PIN.match(reference) and reference in PINNED_IMAGES, reference
    python = f"python:{answers['python_version']}-slim@sha256:"
    assert dockerfile.count(f"FROM {python}") == 2


def test_pins_are_full_commits_and_digests_listed_in_the_decision() -> None:
    decision = REPO_ROOT / "docs" / "decisions" / "0019-supply-chain-and-dependency-updates.md"
    listed = decision.read_text()
    for action in PINNED_ACTIONS:
        ref, _, comment = action.partition(" # ")
        assert COMMIT_PIN.match(ref) and re.fullmatch(r"v\d+\.\d+\.\d+", comment), action
        assert ref.split("@")[1] in listed, f"{action} is not in decision 0019's table"
    for image in PINNED_IMAGES:
        assert DIGEST_PIN.match(image), image
        assert image.split("@")[1] in listed, f"{image} is not in decision 0019's table"


# --- Renovate and Dependabot --------------------------------------------------------------


def renovate_unknown_keys(config: dict[str, Any]) -> list[str]:
    """Renovate's schema lets unknown keys through; a misspelt option would do nothing."""
    options = set(RENOVATE_SCHEMA["properties"])
    definitions = RENOVATE_SCHEMA["definitions"]
    rule_keys = set(definitions["packageRules"]["items"]["allOf"][0]["properties"])
    manager_keys = set(definitions["customManagers"]["items"]["allOf"][0]["properties"])
    unknown = [key for key in config if key not in options | {"$schema"}]
    unknown += [key for key in config.get("lockFileMaintenance", {}) if key not in options]
    for rule in config.get("packageRules", []):
        unknown += [key for key in rule if key not in options | rule_keys]
    for manager in config.get("customManagers", []):
        unknown += [key for key in manager if key not in manager_keys]
    # Each manager has an option of its own name; custom ones are "custom.<type>".
    for name in config.get("enabledManagers", []):
        if name not in options and not name.startswith("custom."):
            unknown.append(name)
    return unknown


def validate_renovate(config: dict[str, Any]) -> None:
    jsonschema.validate(config, RENOVATE_SCHEMA, cls=jsonschema.Draft7Validator)
    assert renovate_unknown_keys(config) == []


def validate_dependabot(config: dict[str, Any]) -> None:
    jsonschema.validate(config, DEPENDABOT_SCHEMA, cls=jsonschema.Draft7Validator)


@pytest.mark.parametrize("set_id", IDS)
def test_dependency_update_configs_are_valid_and_cover_the_answers(
    rendered_sets: Rendered, set_id: str
) -> None:
    project, answers = rendered_sets[set_id]
    choice = answers["dependency_updates"]
    renovate = project / "renovate.json"
    dependabot = project / ".github" / "dependabot.yml"
    assert renovate.exists() == (choice == "renovate")
    assert dependabot.exists() == (choice == "dependabot")
    if choice == "renovate":
        config = json.loads(renovate.read_text())
        validate_renovate(config)
        expected = {"copier", "pep621", "custom.regex"}
        expected |= {"github": {"github-actions"}, "gitlab": {"gitlabci"}}.get(answers["ci"], set())
        if answers["docker"]:
            expected.add("dockerfile")
        assert set(config["enabledManagers"]) == expected
        assert config["lockFileMaintenance"]["enabled"] is True
        digests = [rule for rule in config["packageRules"] if rule.get("pinDigests")]
        assert {"docker"} <= {d for rule in digests for d in rule.get("matchDatasources", [])}
    elif choice == "dependabot":
        config = yaml.safe_load(dependabot.read_text())
        validate_dependabot(config)
        ecosystems = {update["package-ecosystem"] for update in config["updates"]}
        assert ecosystems == {"uv", "github-actions"} | ({"docker"} if answers["docker"] else set())
        assert all(update["cooldown"]["default-days"] >= 7 for update in config["updates"])


def test_the_schemas_refuse_broken_configs(rendered_sets: Rendered) -> None:
    """The validation is real: a wrong value or a misspelt option fails."""
    project = next(p for p, a in rendered_sets.values() if a["dependency_updates"] == "renovate")
    renovate = json.loads((project / "renovate.json").read_text())
    with pytest.raises(jsonschema.ValidationError):
        validate_renovate({**renovate, "lockFileMaintenance": {"enabled": "yes"}})
    with pytest.raises(AssertionError):
        validate_renovate({**renovate, "packageRules": [{"matchManager": ["pep621"]}]})
    project = next(p for p, a in rendered_sets.values() if a["dependency_updates"] == "dependabot")
    dependabot = yaml.safe_load((project / ".github" / "dependabot.yml").read_text())
    broken = {**dependabot, "updates": [{**dependabot["updates"][0], "package-ecosystem": "uvv"}]}
    with pytest.raises(jsonschema.ValidationError):
        validate_dependabot(broken)


def test_zizmor_reports_an_unpinned_action(tmp_path: Path) -> None:
    """zizmor runs for real: the workflows as they were before pinning have findings."""
    project = render(tmp_path / "service", {"ci": "github", "docker": False})
    ci = project / ".github" / "workflows" / "ci.yml"
    pinned = CONFIG["actions"]["default"]["checkout"]
    ci.write_text(ci.read_text().replace(pinned, "actions/checkout@v4", 1))
    code, findings, _ = zizmor(project)
    assert code != 0
    assert "unpinned-uses" in {finding["ident"] for finding in findings}
