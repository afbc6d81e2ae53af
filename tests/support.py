"""Helpers shared by the template's tests: the matrix, rendering, and running commands."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import copier
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
MATRIX_FILE = REPO_ROOT / "tests" / "matrix.yml"
RELEASES = yaml.safe_load((REPO_ROOT / "releases.yml").read_text())
# The version HEAD will be released as; tests tag HEAD with it in their clone.
NEXT = RELEASES["next"]
COPIER_FILE = REPO_ROOT / "copier.yml"


@dataclass(frozen=True)
class AnswerSet:
    id: str
    answers: dict[str, Any]
    resolution: str = "highest"
    message: str = ""


def load_matrix() -> dict[str, Any]:
    return yaml.safe_load(MATRIX_FILE.read_text())


def answer_sets() -> list[AnswerSet]:
    return [AnswerSet(**entry) for entry in load_matrix()["answer_sets"]]


def invalid_sets() -> list[AnswerSet]:
    return [AnswerSet(**entry) for entry in load_matrix()["invalid"]]


def questions() -> dict[str, dict[str, Any]]:
    """The questions users answer (settings and computed values left out)."""
    config = yaml.safe_load(COPIER_FILE.read_text())
    return {
        name: spec
        for name, spec in config.items()
        if not name.startswith("_") and isinstance(spec, dict) and spec.get("when") is not False
    }


def service_questions() -> dict[str, dict[str, Any]]:
    """The questions a service records: those of the feature generator (asked only when
    `make feature` gives a `feature`, docs/decisions/0022) left out."""
    asked = questions().items()
    return {name: spec for name, spec in asked if "feature !=" not in str(spec.get("when"))}


def render(dest: Path, answers: dict[str, Any], src: Path = REPO_ROOT, **kwargs: Any) -> Path:
    """copier copy, non-interactive and without --trust, exactly as the README says.

    From this checkout it renders the working tree (HEAD with uncommitted changes): without a
    ref, copier would take the newest release tag, and test a release instead of the change.
    """
    if src == REPO_ROOT:
        kwargs.setdefault("vcs_ref", "HEAD")
    copier.run_copy(
        str(src),
        str(dest),
        data=answers,
        defaults=True,
        unsafe=False,
        quiet=True,
        **kwargs,
    )
    return dest


def rendered_answers(project: Path) -> dict[str, Any]:
    return yaml.safe_load((project / ".copier-answers.yml").read_text())


def find_python(version: str) -> str:
    """An interpreter for `version`: pyenv's install first, then whatever uv can find."""
    home = Path.home()
    candidates = sorted(glob.glob(str(home / f".pyenv/versions/{version}.*/bin/python{version}")))
    if candidates:
        return candidates[-1]
    found = shutil.which(f"python{version}")
    if found and subprocess.run([found, "--version"], capture_output=True).returncode == 0:
        return found
    result = subprocess.run(
        ["uv", "python", "find", version], capture_output=True, text=True, check=False
    )
    if result.returncode == 0:
        return result.stdout.strip()
    raise RuntimeError(
        f"No Python {version} on this machine; install it (e.g. `uv python install {version}`)."
    )


def clean_env(**extra: str) -> dict[str, str]:
    """A minimal environment, so nothing from this shell (DATABASE_URL, VIRTUAL_ENV, ...)
    leaks into a generated project's settings."""
    keep = (
        "PATH",
        "HOME",
        "LANG",
        "LC_ALL",
        "TMPDIR",
        "UV_CACHE_DIR",
        "UV_INDEX_URL",
        "UV_DEFAULT_INDEX",
        "PIP_INDEX_URL",
        "SSL_CERT_FILE",
        "TEST_ADMIN_DATABASE_URL",
        "TEST_REDIS_URL",
    )
    env = {key: os.environ[key] for key in keep if key in os.environ}
    env.update(extra)
    return env


def run(
    cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd,
        cwd=cwd,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def check(
    cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 900
) -> str:
    """Run a command; on failure, fail the test with the command and the end of its output."""
    result = run(cmd, cwd, env, timeout)
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        tail = "\n".join(output.splitlines()[-60:])
        raise AssertionError(f"`{' '.join(cmd)}` failed in {cwd} ({result.returncode}):\n{tail}")
    return output


ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
ADMIN_SQL = """
import asyncio, os, sys
import asyncpg

async def main(statement):
    connection = await asyncpg.connect(os.environ["ADMIN_DSN"])
    try:
        await connection.execute(statement)
    finally:
        await connection.close()

asyncio.run(main(sys.argv[1]))
"""


def admin_sql(project: Path, statement: str) -> None:
    """A statement on the machine's PostgreSQL (CREATE/DROP DATABASE), run with asyncpg from
    a generated project's venv."""
    check(
        ["uv", "run", "--no-sync", "python", "-c", ADMIN_SQL, statement],
        project,
        clean_env(ADMIN_DSN=ADMIN_DSN),
    )


@contextmanager
def throwaway_database(project: Path, database: str, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database for `project`: a new PostgreSQL database on the machine's
    server, dropped afterwards, or an SQLite file in tmp_path."""
    if database == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'throwaway.db'}"
        return
    name = f"tmpl_{uuid.uuid4().hex[:12]}"
    admin_sql(project, f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        admin_sql(project, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def commit_all(project: Path, message: str) -> None:
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "--no-verify", "--message", message)


def text_files(project: Path) -> list[Path]:
    skip = {".git", ".venv", ".mypy_cache", ".pytest_cache", ".ruff_cache", "__pycache__"}
    files = []
    for path in project.rglob("*"):
        if path.is_file() and not skip.intersection(path.relative_to(project).parts):
            files.append(path)
    return files
