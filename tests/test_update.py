"""`copier update` keeps a team's work and brings the template's.

The tests clone this repository into a temporary directory, re-create the release tags
from releases.yml (tags may not travel with the repository), render a service at an old
release, commit it, make the edits a team typically makes, and update it to HEAD.
Only committed work is tested: commit before running these.
"""

import subprocess
from pathlib import Path
from typing import Any

import copier
import pytest
import yaml
from support import (
    REPO_ROOT,
    check,
    clean_env,
    find_python,
    questions,
    render,
    rendered_answers,
    text_files,
)

RELEASES = yaml.safe_load((REPO_ROOT / "releases.yml").read_text())
NEXT = RELEASES["next"]
OLD_VERSIONS = [release["version"] for release in RELEASES["releases"]]
CONFLICT_MARKERS = ("<<<<<<< ", ">>>>>>> ")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    clone = tmp_path_factory.mktemp("template") / "repo"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True)
    for release in RELEASES["releases"]:
        git(clone, "tag", release["version"], release["commit"])
    git(clone, "tag", NEXT, "HEAD")
    return clone


def commit_all(project: Path, message: str) -> None:
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "--message", message)


def update(project: Path, version: str) -> None:
    copier.run_update(
        str(project),
        vcs_ref=version,
        defaults=True,
        overwrite=True,
        unsafe=False,
        quiet=True,
        conflict="inline",
    )


def team_edits(project: Path, package: str) -> dict[str, str]:
    """What a team typically changes; returns path -> text that must survive."""
    feature = project / "src" / package / "features" / "orders"
    feature.mkdir()
    (feature / "__init__.py").write_text("")
    (feature / "router.py").write_text(
        "from fastapi import APIRouter\n\n"
        'router = APIRouter(prefix="/api/v1/orders", tags=["orders"])\n\n\n'
        '@router.get("")\n'
        "async def list_orders() -> list[str]:\n"
        "    return []\n"
    )
    tests = project / "tests" / "features" / "orders"
    tests.mkdir()
    (tests / "__init__.py").write_text("")
    (tests / "test_orders.py").write_text(
        "from httpx import AsyncClient\n\n\n"
        "async def test_orders_list_is_empty(client: AsyncClient) -> None:\n"
        '    response = await client.get("/api/v1/orders")\n'
        "    assert response.json() == []\n"
    )

    env_example = project / ".env.example"
    env_example.write_text(env_example.read_text().replace("LOG_LEVEL=INFO", "LOG_LEVEL=DEBUG"))

    readme = project / "README.md"
    readme.write_text(
        readme.read_text().replace("## Run it\n", "## Run it\n\nOn-call: #payments-oncall.\n")
    )

    schemas = project / "src" / package / "features" / "items" / "schemas.py"
    schemas.write_text(schemas.read_text().replace("max_length=1000", "max_length=500", 1))

    return {
        f"src/{package}/features/orders/router.py": "/api/v1/orders",
        "tests/features/orders/test_orders.py": "test_orders_list_is_empty",
        ".env.example": "LOG_LEVEL=DEBUG",
        "README.md": "On-call: #payments-oncall.",
        f"src/{package}/features/items/schemas.py": "max_length=500",
    }


def relative_files(project: Path) -> dict[str, Path]:
    return {str(path.relative_to(project)): path for path in text_files(project)}


@pytest.mark.slow
@pytest.mark.parametrize("old_version", OLD_VERSIONS)
def test_update_from_a_release_keeps_team_edits_and_brings_template_changes(
    template: Path, tmp_path: Path, old_version: str
) -> None:
    answers: dict[str, Any] = {"project_name": "Payments"}
    project = render(tmp_path / "service", answers, src=template, vcs_ref=old_version)
    git(project, "init", "--quiet", "--initial-branch=main")
    commit_all(project, "Generate")
    package = rendered_answers(project)["package_name"]
    survivors = team_edits(project, package)
    commit_all(project, "Team edits")

    update(project, NEXT)

    # The edits survive.
    for path, text in survivors.items():
        assert text in (project / path).read_text(), path
    # Every file the team did not touch is exactly what a fresh copy of HEAD renders, with
    # the same answers: template changes arrived, no conflict markers, new questions got
    # their defaults (the answers files are equal too).
    fresh = render(tmp_path / "fresh", answers, src=template, vcs_ref=NEXT)
    updated_files, fresh_files = relative_files(project), relative_files(fresh)
    assert not [name for name in updated_files if name.endswith(".rej")]
    for name, path in fresh_files.items():
        if name in survivors:
            continue
        assert name in updated_files, f"{name} did not arrive"
        assert updated_files[name].read_text() == path.read_text(), f"{name} differs"
    team_only = set(updated_files) - set(fresh_files) - set(survivors)
    assert team_only == {
        f"src/{package}/features/orders/__init__.py",
        "tests/features/orders/__init__.py",
    }
    for path in survivors:
        text = (project / path).read_text()
        assert not any(marker in text for marker in CONFLICT_MARKERS), path

    # Questions added since the old release were answered with their defaults.
    old_questions = set(yaml.safe_load(git(template, "show", f"{old_version}:copier.yml")))
    added = [name for name in questions() if name not in old_questions]
    assert added, "expected questions added since the old release"
    updated_answers, fresh_answers = rendered_answers(project), rendered_answers(fresh)
    assert {name: updated_answers.get(name) for name in added} == {
        name: fresh_answers.get(name) for name in added
    }

    # And the updated service still passes its own tests, the team's included.
    check(
        ["uv", "sync", "--python", find_python(rendered_answers(project)["python_version"])],
        project,
    )
    output = check(
        ["uv", "run", "--no-sync", "pytest", "-q", "-p", "no:cacheprovider"], project, clean_env()
    )
    assert "test_orders" in check(
        ["uv", "run", "--no-sync", "pytest", "-q", "--co", "tests/features/orders"], project
    )
    assert " passed" in output


def test_update_from_head_to_head_changes_nothing(template: Path, tmp_path: Path) -> None:
    project = render(tmp_path / "service", {"database": "sqlite"}, src=template, vcs_ref=NEXT)
    git(project, "init", "--quiet", "--initial-branch=main")
    commit_all(project, "Generate")
    update(project, NEXT)
    assert git(project, "status", "--porcelain") == ""
