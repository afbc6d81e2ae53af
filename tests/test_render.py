"""Rendering: every answer set renders cleanly, with exactly the files its options call for."""

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import REPO_ROOT, answer_sets, text_files

Answers = dict[str, Any]

# Jinja left in a rendered file; GitHub Actions' own `${{ }}` is not Jinja.
LEFTOVER_JINJA = re.compile(r"(?<!\$)\{\{|\{%|%\}|\{#")


def _has_database(a: Answers) -> bool:
    return a["database"] != "none"


def _items(a: Answers) -> bool:
    return bool(a.get("example_feature", False))


def _auth(mode: str) -> Callable[[Answers], bool]:
    return lambda a: a.get("auth", "none") == mode


def _chosen(question: str) -> Callable[[Answers], bool]:
    return lambda a: bool(a[question])


def _any_auth(a: Answers) -> bool:
    return a.get("auth", "none") != "none"


# Each path exists exactly when its predicate holds. "{pkg}" is the package directory.
OPTION_FILES: dict[str, Callable[[Answers], bool]] = {
    "alembic.ini": _has_database,
    "migrations/env.py": _has_database,
    "migrations/versions/0001_initial.py": _has_database,
    "src/{pkg}/core/database.py": _has_database,
    "tests/test_migrations.py": _has_database,
    "src/{pkg}/features/items/router.py": _items,
    # Every database service has them, for the features `make feature` adds (and their tests).
    "src/{pkg}/shared/pagination.py": _has_database,
    "src/{pkg}/shared/repository.py": _has_database,
    "src/{pkg}/shared/fields.py": _has_database,
    "tests/shared/test_pagination.py": _has_database,
    "tests/shared/test_repository.py": _has_database,
    "tests/shared/test_fields.py": _has_database,
    "tests/features/items/test_items.py": _items,
    "tests/features/items/test_items_input.py": _items,
    "src/{pkg}/core/security.py": _any_auth,
    "tests/auth_fixtures.py": _any_auth,
    "src/{pkg}/features/auth/router.py": _auth("jwt"),
    "tests/features/auth/test_token_subject.py": _auth("jwt"),
    "src/{pkg}/features/users/router.py": _auth("jwt"),
    "src/{pkg}/__main__.py": _auth("jwt"),
    "tests/features/items/test_item_owners.py": lambda a: _items(a) and _auth("jwt")(a),
    "src/{pkg}/features/api_keys/router.py": _auth("api_key"),
    "src/{pkg}/core/redis.py": _chosen("redis"),
    "tests/core/test_redis.py": _chosen("redis"),
    "tests/features/items/test_items_cache.py": lambda a: _items(a) and a["redis"],
    "src/{pkg}/core/ratelimit.py": _chosen("rate_limit"),
    "tests/core/test_ratelimit.py": _chosen("rate_limit"),
    "tests/core/test_ratelimit_identity.py": lambda a: a["rate_limit"] and _any_auth(a),
    "src/{pkg}/core/metrics.py": _chosen("metrics"),
    "tests/core/test_metrics.py": _chosen("metrics"),
    "src/{pkg}/core/telemetry.py": _chosen("tracing"),
    "tests/core/test_telemetry.py": _chosen("tracing"),
    "tests/core/test_database.py": _has_database,
    "tests/features/items/test_item_scopes.py": lambda a: _items(a) and _auth("api_key")(a),
    ".github/workflows/ci.yml": lambda a: a["ci"] == "github",
    ".github/workflows/template-update.yml": lambda a: a["ci"] == "github",
    ".github/workflows/audit.yml": lambda a: a["ci"] == "github",
    ".github/dependabot.yml": lambda a: a["dependency_updates"] == "dependabot",
    "renovate.json": lambda a: a["dependency_updates"] == "renovate",
    ".gitlab-ci.yml": lambda a: a["ci"] == "gitlab",
    "Dockerfile": lambda a: a["docker"],
    ".dockerignore": lambda a: a["docker"],
    "compose.yaml": lambda a: a["docker"],
    "AGENTS.md": lambda a: True,
    ".devcontainer/devcontainer.json": _chosen("devcontainer"),
    ".devcontainer/compose.yaml": (
        lambda a: a["devcontainer"] and (a["database"] == "postgresql" or a["redis"])
    ),
    "deploy/shared/kustomization.yaml": _chosen("kubernetes"),
    "deploy/shared/settings.env": _chosen("kubernetes"),
    "deploy/base/deployment.yaml": _chosen("kubernetes"),
    "deploy/base/networkpolicy.yaml": _chosen("kubernetes"),
    "deploy/base/hpa.yaml": lambda a: a["kubernetes"] and a["database"] != "sqlite",
    "deploy/base/pdb.yaml": lambda a: a["kubernetes"] and a["database"] != "sqlite",
    "deploy/base/pvc.yaml": lambda a: a["kubernetes"] and a["database"] == "sqlite",
    "deploy/base/servicemonitor.yaml": lambda a: a["kubernetes"] and a["metrics"],
    "deploy/migrate/job.yaml": lambda a: a["kubernetes"] and a["database"] == "postgresql",
    "deploy/overlays/staging/kustomization.yaml": _chosen("kubernetes"),
    "deploy/overlays/production/environment/kustomization.yaml": _chosen("kubernetes"),
    "deploy/overlays/production/replicas.yaml": (
        lambda a: a["kubernetes"] and a["database"] != "sqlite"
    ),
    "deploy/overlays/production/migrate/kustomization.yaml": (
        lambda a: a["kubernetes"] and a["database"] == "postgresql"
    ),
}

# Dependencies that appear in pyproject.toml exactly when their predicate holds.
OPTION_DEPENDENCIES: dict[str, Callable[[Answers], bool]] = {
    '"sqlalchemy[asyncio]': _has_database,
    '"alembic': _has_database,
    '"asyncpg': lambda a: a["database"] == "postgresql",
    '"aiosqlite': lambda a: a["database"] == "sqlite",
    '"pyjwt': _auth("jwt"),
    '"libpass': _auth("jwt"),
    '"redis>=': _chosen("redis"),
    '"prometheus-client': _chosen("metrics"),
    '"opentelemetry-sdk': _chosen("tracing"),
    '"opentelemetry-instrumentation-sqlalchemy': lambda a: a["tracing"] and _has_database(a),
}

IDS = [answer_set.id for answer_set in answer_sets()]


@pytest.mark.parametrize("set_id", IDS)
def test_no_jinja_is_left_in_any_file(
    rendered_sets: dict[str, tuple[Path, Answers]], set_id: str
) -> None:
    project, _ = rendered_sets[set_id]
    leftovers = []
    for path in text_files(project):
        text = path.read_text(errors="replace")
        if path.suffix == ".jinja" or LEFTOVER_JINJA.search(text):
            leftovers.append(str(path.relative_to(project)))
    assert leftovers == []


@pytest.mark.parametrize("set_id", IDS)
def test_files_match_the_chosen_options(
    rendered_sets: dict[str, tuple[Path, Answers]], set_id: str
) -> None:
    project, answers = rendered_sets[set_id]
    for pattern, wanted in OPTION_FILES.items():
        path = project / pattern.format(pkg=answers["package_name"])
        assert path.exists() == wanted(answers), f"{pattern}: expected exists={wanted(answers)}"
    pyproject = (project / "pyproject.toml").read_text()
    for dependency, wanted in OPTION_DEPENDENCIES.items():
        assert (dependency in pyproject) == wanted(answers), dependency
    empty_dirs = [
        str(path.relative_to(project))
        for path in project.rglob("*")
        if path.is_dir() and not any(path.iterdir())
    ]
    assert empty_dirs == []


@pytest.mark.parametrize("set_id", IDS)
def test_no_blank_line_debris(rendered_sets: dict[str, tuple[Path, Answers]], set_id: str) -> None:
    """Conditional blocks must not leave runs of blank lines or leading blank lines."""
    project, _ = rendered_sets[set_id]
    debris = []
    for path in text_files(project):
        if path.suffix in {
            ".py",
            ".toml",
            ".yml",
            ".yaml",
            ".ini",
            ".md",
            ".json",
        } or path.name in {
            "Dockerfile",
            "Makefile",
            ".env.example",
        }:
            text = path.read_text()
            if not text:
                continue
            too_many_blanks = "\n\n\n\n" if path.suffix == ".py" else "\n\n\n"
            if text.startswith("\n") or too_many_blanks in text or not text.endswith("\n"):
                debris.append(str(path.relative_to(project)))
    assert debris == []


@pytest.mark.parametrize("set_id", IDS)
def test_answers_file_records_every_asked_question_and_no_secret(
    rendered_sets: dict[str, tuple[Path, Answers]], set_id: str
) -> None:
    _, answers = rendered_sets[set_id]
    assert answers["_src_path"]
    assert answers["_commit"]
    assert {"project_name", "project_slug", "package_name", "database", "ci"} <= answers.keys()
    assert not {"python_keywords", "reserved_module_names"} & answers.keys()
    assert not [key for key in answers if "secret" in key or "password" in key]


@pytest.mark.parametrize("set_id", IDS)
def test_dependency_lists_let_uv_add_append_below_yours(
    rendered_sets: dict[str, tuple[Path, Answers]], set_id: str
) -> None:
    """`uv add` inserts in order into a sorted list and appends to any other: the template's
    entries stay unsorted, so a team's land at the end, below `# Yours:`, where updates
    never write."""
    project, _ = rendered_sets[set_id]
    text = (project / "pyproject.toml").read_text()
    for opening in ("dependencies = [\n", "dev = [\n"):
        body = text.split(opening, 1)[1].split("\n]", 1)[0].splitlines()
        names = [line.strip().strip('",').lower() for line in body if line.strip().startswith('"')]
        assert names != sorted(names), opening
        assert body[-1].strip() == "# Yours:", opening


def test_released_migrations_are_what_their_release_shipped() -> None:
    releases = yaml.safe_load((REPO_ROOT / "releases.yml").read_text())["releases"]
    versions = "template/{% if database != 'none' %}migrations{% endif %}/versions"
    for release in releases:
        shipped = subprocess.run(
            ["git", "ls-tree", "-z", "--name-only", release["commit"], f"{versions}/"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\0")[:-1]
        assert shipped, release
        for path in shipped:
            then = subprocess.run(
                ["git", "show", f"{release['commit']}:{path}"],
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            assert (REPO_ROOT / path).read_text() == then, (
                f"{path} changed since {release['version']}"
            )
    settings = yaml.safe_load((REPO_ROOT / "copier.yml").read_text())
    assert "migrations/versions/*.py" in settings["_skip_if_exists"]
