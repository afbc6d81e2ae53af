"""Schema changes on a database that is in use: answers changed later, and `make revision`.

A service at HEAD is generated, its database migrated and given rows; then an answer is
changed with `make update` (or a model with `make revision`). The old database must migrate,
`alembic check` must be clean, the rows must still be there and the tests must pass.
"""

from pathlib import Path
from typing import Any

import pytest
from support import NEXT, commit_all, git
from team_work import (
    Service,
    drop_database,
    generate,
    migrate,
    open_service,
    update_the_documented_way,
)

BASE = {"project_name": "Payments", "redis": False, "tracing": False, "ci": "none"}
# id -> (answers at generation, answers changed, rows inserted, a query that must find them)
CHANGES: dict[str, tuple[dict[str, Any], dict[str, Any], list[str], str]] = {
    "auth-none-to-jwt": (
        {"auth": "none", "example_feature": True},
        {"auth": "jwt"},
        [
            "INSERT INTO items (name, created_at, updated_at) VALUES ('kept', "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        ],
        "SELECT name FROM items WHERE owner_id IS NULL",
    ),
    "auth-none-to-api-key": (
        {"auth": "none", "example_feature": True, "database": "sqlite"},
        {"auth": "api_key"},
        [
            "INSERT INTO items (name, created_at, updated_at) VALUES ('kept', "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        ],
        "SELECT name FROM items",
    ),
    "example-feature-on": (
        {"auth": "jwt", "example_feature": False},
        {"example_feature": True},
        [
            "INSERT INTO users (email, password_hash, role, created_at, updated_at) VALUES "
            "('kept', 'x', 'user', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        ],
        "SELECT email FROM users",
    ),
    "redis-on": (
        {"auth": "none", "example_feature": True},
        {"redis": True},
        [
            "INSERT INTO items (name, created_at, updated_at) VALUES ('kept', "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        ],
        "SELECT name FROM items",
    ),
}


def _generated(template: Path, tmp_path: Path, answers: dict[str, Any]) -> Service:
    project = generate(template, tmp_path / "service", {**BASE, **answers}, NEXT)
    service = open_service(project, tmp_path)
    commit_all(project, "Lock")
    migrate(service)
    return service


@pytest.mark.slow
@pytest.mark.parametrize("change", list(CHANGES))
def test_an_answer_changed_later_migrates_the_live_database(
    template: Path, tmp_path: Path, change: str
) -> None:
    answers, changed, rows, query = CHANGES[change]
    service = _generated(template, tmp_path, answers)
    try:
        service.sql(*rows)
        update_the_documented_way(service, changed)
        commit_all(service.path, f"Change {changed}")
        service.run("uv", "sync", "--locked")
        migrate(service)
        service.run("uv", "run", "--no-sync", "alembic", "check")
        assert service.sql(query) == [[["kept"]]]
        output = service.run("uv", "run", "--no-sync", "pytest", "-q", "-p", "no:cacheprovider")
        assert " passed" in output
        # Released revision files are never rewritten, the initial one included.
        changed = git(service.path, "diff", "--name-only", "--diff-filter=MD", "HEAD~1")
        assert "migrations/versions/" not in changed
    finally:
        drop_database(service)


# auth -> the template heads a team's first revision depends on. With api_key, two template
# branches grow from 0001 side by side (Alembic failed on them with KeyError: '0001').
REVISION_CASES = {"jwt": ['"items_0002"'], "api_key": ['"api_keys_0001"', '"items_0001"']}


@pytest.mark.slow
@pytest.mark.parametrize("auth", list(REVISION_CASES))
def test_make_revision_writes_a_revision_that_applies_and_passes_lint(
    template: Path, tmp_path: Path, auth: str
) -> None:
    service = _generated(template, tmp_path, {"auth": auth, "example_feature": True})
    try:
        models = service.path / "src" / "payments" / "features" / "items" / "models.py"
        models.write_text(
            models.read_text().rstrip("\n")
            + "\n    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)\n"
        )
        service.run("make", "revision", "m=items are due")
        versions = service.path / "migrations" / "versions"
        (written,) = [path for path in versions.glob("*_items_are_due.py")]
        text = written.read_text()
        assert "payments." not in text  # no application import
        assert "sa.DateTime(timezone=True)" in text
        # The team's branch starts here, after the template's heads it may refer to.
        assert "down_revision: str | None = None" in text
        assert all(head in text for head in REVISION_CASES[auth])
        service.run("uv", "run", "--no-sync", "ruff", "check", str(written))
        service.run("uv", "run", "--no-sync", "ruff", "format", "--check", str(written))
        migrate(service)
        service.run("uv", "run", "--no-sync", "alembic", "check")
        # The next one continues that branch: one head of the team's, no merge needed.
        service.run("make", "revision", "m=nothing yet")
        (empty,) = [path for path in versions.glob("*_nothing_yet.py")]
        revision_id = written.name.split("_")[1]
        assert f'down_revision: str | None = "{revision_id}"' in empty.read_text()
        migrate(service)
        service.run("uv", "run", "--no-sync", "mypy")
        service.run("uv", "run", "--no-sync", "ruff", "check", ".")
    finally:
        drop_database(service)
