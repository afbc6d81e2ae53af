"""`copier update` keeps a real team's service working.

The tests clone this repository into a temporary directory, re-create the release tags
from releases.yml (tags may not travel with the repository), render a service at a release,
commit it with its lock, do a team's first weeks of work on a migrated database that holds
rows (tests/team_work.py), and update it to HEAD the documented way. Then: no conflict, no
lost edit, `uv sync --locked`, lint, type check and tests pass, the old database migrates,
`alembic check` is clean, the rows are still there, and the API behaves as before.
Only committed work is tested: commit before running these.
"""

from pathlib import Path
from typing import Any

import copier
import pytest
from support import (
    NEXT,
    RELEASES,
    check,
    commit_all,
    git,
    render,
    rendered_answers,
    service_questions,
)
from team_work import (
    Service,
    conflict_counts,
    do_team_work,
    drop_database,
    generate,
    lost_edits,
    migrate,
    open_service,
    run_the_checks,
    update_the_documented_way,
)

OLD_VERSIONS = [release["version"] for release in RELEASES["releases"]]
# Answers a service is generated with; questions a version lacks take its defaults.
SCENARIOS: dict[str, dict[str, Any]] = {
    "defaults": {"project_name": "Payments"},
    "sqlite": {"project_name": "Payments", "database": "sqlite", "ci": "gitlab"},
    # No auth and no example: the releases before 0.3.0 gave such a service no shared/.
    "sqlite-bare": {"project_name": "Payments", "database": "sqlite", "example_feature": False},
    # 48 characters: the releases before 0.3.0 took any length, 0.3.0 asks new ones for 40.
    "long-package-name": {
        "project_name": "Customer notification preferences export service",
        "database": "sqlite",
    },
    "everything-on": {
        "project_name": "Payments",
        "auth": "jwt",
        "redis": True,
        "rate_limit": True,
        "metrics": True,
        "tracing": True,
    },
}
# What a service had before each question existed: an update gives it that answer.
BEHAVIOUR_BEFORE: dict[str, Any] = {
    "auth": "none",
    "redis": False,
    "background_jobs": False,
    "rate_limit": False,
    "metrics": False,
    "tracing": False,
    "sentry": False,
    "kubernetes": False,
    "dependency_updates": "none",
    "devcontainer": False,
}


@pytest.mark.slow
@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("old_version", OLD_VERSIONS)
def test_update_keeps_a_real_teams_service_working(
    template: Path, tmp_path: Path, old_version: str, scenario: str
) -> None:
    answers = SCENARIOS[scenario]
    project = generate(template, tmp_path / "service", answers, old_version)
    service = open_service(project, tmp_path)
    try:
        commit_all(project, "Lock")
        long_name = len(service.package) > 40
        if long_name:  # before 0.3.0 a long name's first render needed these to lint clean
            lint_fix(service)
            commit_all(project, "Lint")
        do_team_work(service)
        commit_all(project, "Team work")
        old_answers = rendered_answers(project)
        # Answers the old version could not record are given now, as a team would ask.
        requested = {key: value for key, value in answers.items() if key not in old_answers}

        # `make update` runs the old release's script, if it had one; else this release's.
        this_releases_script = not (project / "scripts" / "update_template.py").exists()
        output = update_the_documented_way(service, requested)
        assert "No conflicts" in output
        if long_name:  # neither refused nor renamed; told what makes it lint clean again
            assert rendered_answers(project)["package_name"] == service.package
            if this_releases_script:
                assert f"The package name has {len(service.package)} characters" in output
            lint_fix(service)

        assert conflict_counts(project) == {}
        assert lost_edits(service) == []
        service.answers = rendered_answers(project)
        # A question added since the old version keeps the service's behaviour.
        added = [name for name in service_questions() if name not in old_answers]
        for name in added:
            assert service.answers[name] == requested.get(name, BEHAVIOUR_BEFORE[name]), name

        if scenario == "sqlite-bare":
            # The update brought shared/, which a feature with a database builds on.
            generated = service.run("make", "feature", "name=refunds")
            assert "Added the feature refunds" in generated
        tests = run_the_checks(service)
        assert "test_orders.py" in check(
            ["uv", "run", "--no-sync", "pytest", "--co", "-q", "tests/features/orders"], project
        )
        assert " passed" in tests

        migrate(service)
        service.run("uv", "run", "--no-sync", "alembic", "check")
        assert service.sql("SELECT reference FROM orders") == [[["OLD-1"]]]
        if service.answers["example_feature"]:
            items = service.sql("SELECT name, priority FROM items")
            assert items == [[["old widget", "2"]]]
            status, body = service.get("/api/v1/items")
            if service.answers["auth"] == "none":
                assert status == 200, body  # no credentials before, none needed now
                assert "old widget" in body
            else:
                assert status == 401, body
    finally:
        drop_database(service)


def lint_fix(service: Service) -> None:
    service.run("uv", "run", "--no-sync", "ruff", "format", "--quiet", ".")
    service.run("uv", "run", "--no-sync", "ruff", "check", "--fix", "--quiet", ".")


def test_update_from_head_to_head_changes_nothing(template: Path, tmp_path: Path) -> None:
    project = render(tmp_path / "service", {"database": "sqlite"}, src=template, vcs_ref=NEXT)
    git(project, "init", "--quiet", "--initial-branch=main")
    commit_all(project, "Generate")
    copier.run_update(
        str(project), vcs_ref=NEXT, defaults=True, overwrite=True, unsafe=False, quiet=True
    )
    assert git(project, "status", "--porcelain") == ""
