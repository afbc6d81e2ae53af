"""Each answer set, rendered and checked the way its own CI would: in a fresh venv, ruff,
ruff format, mypy --strict, its pytest suite with the coverage gate, and its migrations
against a real database."""

from pathlib import Path

import pytest
from support import (
    answer_sets,
    check,
    clean_env,
    find_python,
    render,
    rendered_answers,
    throwaway_database,
)

SETS = answer_sets()


def _migrations_match_models(project: Path, database: str, tmp_path: Path) -> None:
    """`alembic upgrade heads` then `alembic check` (no model change without a migration)."""
    with throwaway_database(project, database, tmp_path) as url:
        env = clean_env(DATABASE_URL=url)
        check(["uv", "run", "--no-sync", "alembic", "upgrade", "heads"], project, env)
        check(["uv", "run", "--no-sync", "alembic", "check"], project, env)


@pytest.mark.slow
@pytest.mark.parametrize("answer_set", SETS, ids=[s.id for s in SETS])
def test_generated_service_passes_its_own_checks(answer_set, tmp_path: Path) -> None:
    project = render(tmp_path / "service", answer_set.answers)
    answers = rendered_answers(project)

    sync = ["uv", "sync", "--python", find_python(answers["python_version"])]
    if answer_set.resolution != "highest":
        sync += ["--resolution", answer_set.resolution]
    check(sync, project)

    check(["uv", "run", "--no-sync", "ruff", "check", "."], project)
    check(["uv", "run", "--no-sync", "ruff", "format", "--check", "."], project)
    check(["uv", "run", "--no-sync", "mypy"], project)
    output = check(["uv", "run", "--no-sync", "pytest", "-q", "-p", "no:cacheprovider"], project)
    assert " passed" in output and "Required test coverage" in output
    if answers["database"] != "none":
        _migrations_match_models(project, answers["database"], tmp_path)
