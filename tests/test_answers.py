"""Bad answers are refused by copier, with a message that says what to type instead."""

import subprocess
import sys
from pathlib import Path

import copier
import pytest
import yaml
from support import (
    COPIER_FILE,
    NEXT,
    RELEASES,
    REPO_ROOT,
    commit_all,
    git,
    invalid_sets,
    render,
    rendered_answers,
)

INVALID = invalid_sets()


@pytest.mark.parametrize("answer_set", INVALID, ids=[s.id for s in INVALID])
def test_invalid_answers_are_refused_with_a_helpful_message(answer_set, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=answer_set.message):
        render(tmp_path / "project", answer_set.answers)
    assert not (tmp_path / "project" / "pyproject.toml").exists()


def test_the_cli_shows_the_message(tmp_path: Path) -> None:
    copier = Path(sys.executable).parent / "copier"
    result = subprocess.run(
        [
            str(copier),
            "copy",
            "--defaults",
            "-d",
            "project_slug=Billing API",
            str(REPO_ROOT),
            str(tmp_path / "project"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "Type a slug that starts with a lowercase letter" in result.stderr


def test_reserved_module_names_cover_this_pythons_standard_library() -> None:
    config = yaml.safe_load(COPIER_FILE.read_text())
    reserved = set(config["reserved_module_names"]["default"])
    public_stdlib = {name for name in sys.stdlib_module_names if not name.startswith("_")}
    assert public_stdlib - reserved == set()


def test_derived_names_follow_the_project_name(tmp_path: Path) -> None:
    project = render(tmp_path / "project", {"project_name": "Billing & Invoices API"})
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["project_slug"] == "billing-invoices-api"
    assert answers["package_name"] == "billing_invoices_api"
    assert (project / "src" / "billing_invoices_api" / "main.py").exists()


# What a new service gets for the questions added after 0.1.0; an updated one keeps its
# behaviour instead (tests/test_update.py).
NEW_SERVICE_DEFAULTS = {
    "auth": "jwt",
    "rate_limit": True,
    "metrics": True,
    "redis": False,
    "background_jobs": False,
    "dependency_updates": "renovate",
    "devcontainer": True,
    "sentry": False,
}


@pytest.mark.parametrize(
    "given",
    [
        {},
        # Every answer the "existing service" check reads, given at copy time.
        {
            "description": "x",
            "author_email": "a@b.co",
            "database": "sqlite",
            "ci": "gitlab",
            "docker": False,
        },
    ],
    ids=["nothing-given", "all-later-answers-given"],
)
def test_a_new_service_gets_the_new_defaults(tmp_path: Path, given: dict[str, object]) -> None:
    answers = yaml.safe_load(
        (render(tmp_path / "project", given) / ".copier-answers.yml").read_text()
    )
    assert {key: answers[key] for key in NEW_SERVICE_DEFAULTS} == NEW_SERVICE_DEFAULTS
    assert "existing_service" not in answers


def test_an_updated_service_gets_the_guide_and_no_new_options(
    template: Path, tmp_path: Path
) -> None:
    """devcontainer and dependency_updates came after the last release: a service from it
    keeps having neither (decision 0011); the guide, which changes no behaviour, arrives."""
    last = RELEASES["releases"][-1]["version"]
    answers = {"database": "sqlite", "ci": "github"}
    project = render(tmp_path / "service", answers, src=template, vcs_ref=last)
    git(project, "init", "--quiet", "--initial-branch=main")
    commit_all(project, "Generate")
    copier.run_update(
        str(project), vcs_ref=NEXT, defaults=True, overwrite=True, unsafe=False, quiet=True
    )
    assert rendered_answers(project)["devcontainer"] is False
    assert not (project / ".devcontainer").exists()
    assert (project / "AGENTS.md").exists()
    assert rendered_answers(project)["dependency_updates"] == "none"
    assert not (project / "renovate.json").exists()
    assert not (project / ".github" / "dependabot.yml").exists()
