"""The feature generator (`make feature name=<name>`, the `feature/` sub-template; decision
0022): two features one after the other in a rendered service pass its lint, type check and
tests, their routes answer, their migrations apply and `alembic check` is clean, bad names
are refused with what to type, and the service and a feature still update afterwards."""

import subprocess
import sys
from pathlib import Path
from typing import Any

import copier
import pytest
import yaml
from support import (
    NEXT,
    check,
    clean_env,
    commit_all,
    find_python,
    git,
    render,
    rendered_answers,
    throwaway_database,
)

FEATURES = ["orders", "invoices"]
# One service per combination does everything: every auth mode each database allows, with
# and without the example feature (without it, and without auth, only the generator's
# features use shared/).
COMBINATIONS = [
    ("postgresql", "none", False),
    ("postgresql", "jwt", True),
    ("postgresql", "api_key", True),
    ("sqlite", "none", True),
    ("sqlite", "jwt", True),
    ("sqlite", "api_key", False),
    ("none", "none", False),
]
IDS = [
    f"{database}-{auth}{'' if example or database == 'none' else '-bare'}"
    for database, auth, example in COMBINATIONS
]


def _service(
    tmp_path: Path, database: str, auth: str, example_feature: bool = True, **kwargs: Any
) -> Path:
    answers = {"project_name": "Feature Shop", "database": database, "auth": auth}
    if database != "none":
        answers["example_feature"] = example_feature
    project = render(tmp_path / "service", answers, **kwargs)
    git(project, "init", "--quiet", "--initial-branch=main")
    commit_all(project, "Generate")
    return project


def _generate(project: Path, name: str) -> subprocess.CompletedProcess[str]:
    """scripts/new_feature.py, the script behind `make feature`, with this environment's
    copier; from this checkout's working tree (HEAD), as the service was rendered."""
    return subprocess.run(
        [sys.executable, "scripts/new_feature.py", name, "--vcs-ref", "HEAD"],
        cwd=project,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _new_files(project: Path) -> list[str]:
    return git(project, "status", "--porcelain", "--untracked-files=all").splitlines()


# Each bad name, and a part of the one line that says what to type instead.
BAD_NAMES = {
    "class": '"class" is a Python keyword; type another name, for example "class_records"',
    "Orders": "lowercase Python identifier (letters, digits, underscores; starting with a "
    'letter), for example "orders"',
    "my-orders": "lowercase Python identifier",
    "2orders": "lowercase Python identifier",
    "users": '"users" is a module the template owns or may add; type another name',
    "core": '"core" is a module the template owns or may add',
    "items": 'features/items exists already: "items" is a feature of this service; type '
    "another name, for example: make feature name=items_v2",
    "": "Type the feature's name: make feature name=orders",
}
# Without the example, "items" is still the template's: a later update may add it.
BAD_NAMES_BARE = BAD_NAMES | {
    "items": '"items" is a module the template owns or may add; type another name, for '
    'example "items_records"',
}


@pytest.mark.parametrize("example_feature", [True, False], ids=["items", "bare"])
def test_bad_names_are_refused_with_what_to_type(tmp_path: Path, example_feature: bool) -> None:
    project = _service(tmp_path, "sqlite", "none", example_feature)
    for name, message in (BAD_NAMES if example_feature else BAD_NAMES_BARE).items():
        result = _generate(project, name)
        assert result.returncode == 1, (name, result.stdout, result.stderr)
        assert message in result.stderr, (name, result.stderr)
        assert _new_files(project) == [], name


def test_an_existing_feature_made_by_the_generator_is_refused(tmp_path: Path) -> None:
    project = _service(tmp_path, "none", "none")
    assert _generate(project, "orders").returncode == 0
    package = rendered_answers(project)["package_name"]
    assert (project / "src" / package / "features" / "orders" / "router.py").is_file()
    answers = yaml.safe_load((project / ".copier-answers.feature-orders.yml").read_text())
    assert (answers["feature"], answers["feature_class"], answers["database"]) == (
        "orders",
        "Order",
        "none",
    )
    again = _generate(project, "orders")
    assert again.returncode == 1
    assert "orders exists already" in again.stderr


TEAM_REVISION = """revision: str = "{revision}"
down_revision: str | None = "{down}"
branch_labels = None
depends_on = None
"""


def _migration(project: Path, feature: str) -> str:
    return (project / "migrations" / "versions" / f"{feature}_0001_{feature}_table.py").read_text()


def test_a_features_migration_continues_the_teams_branch(tmp_path: Path) -> None:
    """Placed as `make revision` places one (migrations/env.py), read from the files alone:
    after the team's head (or 0001), depending on the template's heads it needs."""
    project = _service(tmp_path, "postgresql", "jwt")
    assert _generate(project, "orders").returncode == 0
    first = _migration(project, "orders")
    assert 'down_revision: str | None = "0001"' in first
    # The users table, for the owner column; no other template branch.
    assert 'depends_on: str | Sequence[str] | None = ["auth_0001"]' in first
    assert _generate(project, "invoices").returncode == 0
    second = _migration(project, "invoices")
    assert 'down_revision: str | None = "orders_0001"' in second
    assert "depends_on: str | Sequence[str] | None = None" in second

    versions = project / "migrations" / "versions"
    team = TEAM_REVISION.format(revision="a1b2c3", down="invoices_0001")
    (versions / "20261201_a1b2c3_team.py").write_text(team)
    assert _generate(project, "refunds").returncode == 0
    assert 'down_revision: str | None = "a1b2c3"' in _migration(project, "refunds")

    fork = TEAM_REVISION.format(revision="d4e5f6", down="a1b2c3")
    (versions / "20261201_d4e5f6_fork.py").write_text(fork)
    (versions / "20261201_f7a8b9_fork.py").write_text(fork.replace("d4e5f6", "f7a8b9"))
    refused = _generate(project, "payments")
    assert refused.returncode == 1
    assert "more than one head; join them first: uv run alembic merge" in refused.stderr


def _migrations_apply_and_match(project: Path, database: str, tmp_path: Path) -> None:
    with throwaway_database(project, database, tmp_path) as url:
        env = clean_env(DATABASE_URL=url)
        output = check(["uv", "run", "--no-sync", "alembic", "upgrade", "heads"], project, env)
        for feature in FEATURES:
            assert f"-> {feature}_0001" in output
        check(["uv", "run", "--no-sync", "alembic", "check"], project, env)
        heads = check(["uv", "run", "--no-sync", "alembic", "heads"], project, env)
        # The second feature continues the first on the team's branch: one team head.
        assert "orders_0001 (head)" not in heads and "invoices_0001 (head)" in heads


@pytest.mark.slow
@pytest.mark.parametrize(("database", "auth", "example_feature"), COMBINATIONS, ids=IDS)
def test_two_generated_features_work_and_the_service_still_updates(
    template: Path, tmp_path: Path, database: str, auth: str, example_feature: bool
) -> None:
    """From a clone of HEAD tagged as the next release (only committed work), as a team
    would: the service at a release, `make feature` at the service's version."""
    project = _service(tmp_path, database, auth, example_feature, src=template, vcs_ref=NEXT)
    answers = rendered_answers(project)
    package = answers["package_name"]
    check(["uv", "sync", "--python", find_python(answers["python_version"])], project)

    # The documented command, one feature after the other.
    for feature in FEATURES:
        output = check(["make", "feature", f"name={feature}"], project, clean_env())
        assert f"Added the feature {feature}" in output
    features = project / "src" / package / "features"
    expected = {"__init__.py", "router.py", "schemas.py", "service.py", "exceptions.py"}
    expected |= {"repository.py", "models.py"} if database != "none" else {"store.py"}
    tests = {"__init__.py", "test_{}.py"}
    tests |= {"conftest.py", "test_{}_owners.py"} if auth == "jwt" else set()
    tests |= {"conftest.py", "test_{}_scopes.py"} if auth == "api_key" else set()
    for feature in FEATURES:
        assert expected <= {path.name for path in (features / feature).iterdir()}
        written = {path.name for path in (project / "tests" / "features" / feature).iterdir()}
        assert written - {"__pycache__"} == {name.format(feature) for name in tests}
        if auth == "none":  # open routes: nothing of auth in the feature
            code = "".join(path.read_text() for path in (features / feature).glob("*.py"))
            for wiring in ("auth", "api_keys", "require_scopes", "CurrentUser", "owner"):
                assert wiring not in code, (feature, wiring)
    if database != "none":
        second = (
            project / "migrations" / "versions" / "invoices_0001_invoices_table.py"
        ).read_text()
        assert 'down_revision: str | None = "orders_0001"' in second

    check(["uv", "run", "--no-sync", "ruff", "check", "."], project)
    check(["uv", "run", "--no-sync", "ruff", "format", "--check", "."], project)
    check(["uv", "run", "--no-sync", "mypy"], project)
    output = check(
        ["uv", "run", "--no-sync", "pytest", "-q", "-p", "no:cacheprovider", "-rA"], project
    )
    assert "Required test coverage" in output
    for feature in FEATURES:  # the new routes answered in the generated tests
        assert f"tests/features/{feature}/test_{feature}.py::" in output
    if database != "none":
        _migrations_apply_and_match(project, database, tmp_path)

    # The service still updates (the documented way), and so does a feature, from its own
    # answers file; neither touches the other's files.
    commit_all(project, "Add orders and invoices")
    check(["make", "update"], project, clean_env())
    assert "orders" in {path.name for path in features.iterdir()}
    if _new_files(project):
        commit_all(project, "Update")  # copier updates a clean tree only
    copier.run_update(
        str(project),
        answers_file=".copier-answers.feature-orders.yml",
        vcs_ref=NEXT,
        defaults=True,
        overwrite=True,
        unsafe=False,
        quiet=True,
        conflict="inline",
    )
    changed: list[Any] = _new_files(project)
    assert changed == [], changed
