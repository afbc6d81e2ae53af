"""Fuzz every answer set that has API routes with schemathesis: the service rendered, started
for real (uvicorn on a free port, a fresh database, Redis when chosen), authenticated, and every
check run (all phases, stateful where the schema has links) => 0 failures.

Bounded so the whole list stays a few minutes on two cores: MAX_EXAMPLES cases per operation
and phase, a fixed seed (the same cases each run, so a failure reproduces), one worker.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from support import (
    AnswerSet,
    answer_sets,
    check,
    clean_env,
    find_python,
    render,
    rendered_answers,
    throwaway_database,
)

MAX_EXAMPLES = 15
SEED = 20261201
# Generous: a run under load on two shared cores; schemathesis stops itself much sooner.
RUN_TIMEOUT = 600
STARTUP_TIMEOUT = 90
BOOTSTRAP_API_KEY = "fuzz-bootstrap-key-0123456789abcdefghijklmnop"
FUZZ_EMAIL = "fuzz-admin@example.com"
FUZZ_PASSWORD = "Fuzz-Password-1234"
HOOKS_DIR = Path(__file__).resolve().parent  # fuzz_hooks.py
# Every rate limit out of the way: a 429 is documented, but a fuzzer that hits it all the time
# tests nothing else.
NO_LIMIT = "1000000/minute"
RATE_LIMIT_ROUTES = {
    route: NO_LIMIT
    for route in (
        "POST /api/v1/auth/login",
        "POST /api/v1/auth/register",
        "POST /api/v1/auth/refresh",
        "POST /api/v1/api-keys",
    )
}


def _effective(answers: dict[str, Any]) -> dict[str, Any]:
    """The answers that decide whether there are API routes, with copier.yml's defaults."""
    database = answers.get("database", "postgresql")
    return {
        "database": database,
        "auth": answers.get("auth", "jwt" if database != "none" else "none"),
        "example_feature": answers.get("example_feature", database != "none"),
    }


def _has_api_routes(answer_set: AnswerSet) -> bool:
    answers = _effective(answer_set.answers)
    return answers["auth"] != "none" or bool(answers["example_feature"])


FUZZ_SETS = [answer_set for answer_set in answer_sets() if _has_api_routes(answer_set)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _request(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


REDIS_CLEANUP = """
import os
from redis import Redis

client = Redis.from_url(os.environ["REDIS_URL"])
keys = list(client.scan_iter(match=os.environ["REDIS_KEY_PREFIX"] + "*", count=1000))
if keys:
    client.delete(*keys)
"""


def _dev_command(project: Path) -> list[str]:
    """`make dev`'s command as the service's Makefile writes it, without the reloader."""
    makefile = (project / "Makefile").read_text()
    words = makefile.split("\ndev:", 1)[1].splitlines()[1].split()
    assert words[:2] == ["uv", "run"], words
    # Synced already, maybe to the lowest versions: `uv run` must not sync it again.
    return ["uv", "run", "--no-sync", *(word for word in words[2:] if word != "--reload")]


@contextmanager
def _service(project: Path, env: dict[str, str], log: Path) -> Iterator[str]:
    """uvicorn serving the app, as `make dev` does without reloading; its base URL."""
    port = _free_port()
    command = [*_dev_command(project), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--no-access-log"]
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=project, env=env, stdout=output, stderr=output)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                _request(f"{base}/health/live")
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"the service did not start:\n{log.read_text()[-3000:]}"
                    ) from None
                time.sleep(0.3)
        with urllib.request.urlopen(f"{base}/health/live", timeout=30) as response:
            assert "server" not in response.headers, "the server names itself"
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _auth_header(base: str, project: Path, env: dict[str, str], auth: str) -> str:
    if auth == "api_key":
        return f"X-API-Key: {BOOTSTRAP_API_KEY}"
    # An admin, so the admin-only routes are fuzzed past their 403.
    package = rendered_answers(project)["package_name"]
    admin = ["uv", "run", "--no-sync", "python", "-m", package, "create-admin"]
    check([*admin, "--email", FUZZ_EMAIL], project, {**env, "ADMIN_PASSWORD": FUZZ_PASSWORD})
    form = urllib.parse.urlencode({"username": FUZZ_EMAIL, "password": FUZZ_PASSWORD})
    tokens = _request(f"{base}/api/v1/auth/login", data=form.encode())
    return f"Authorization: Bearer {tokens['access_token']}"


def _schemathesis(base: str, header: str | None, workdir: Path) -> str:
    """Run every check; the CLI's output, or a failure with it."""
    command = [
        str(Path(sys.executable).parent / "st"),
        "run",
        f"{base}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--request-timeout",
        "20",
        "--no-color",
    ]
    if header:
        command += ["--header", header]
    env = {
        **os.environ,
        # Teaches the e-mail format what the service refuses (see the hooks module).
        "SCHEMATHESIS_HOOKS": "fuzz_hooks",
        "PYTHONPATH": str(HOOKS_DIR),
    }
    result = subprocess.run(
        command,
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise AssertionError(f"schemathesis failed ({result.returncode}):\n{output[-12000:]}")
    return output


def _figures(output: str) -> tuple[str, str]:
    operations = re.search(r"Tested:\s*(\d+)", output)
    cases = re.search(r"(\d+) generated, (\d+) passed", output)
    return (
        operations.group(1) if operations else "?",
        cases.group(1) if cases else "?",
    )


@pytest.mark.slow
@pytest.mark.parametrize("answer_set", FUZZ_SETS, ids=[s.id for s in FUZZ_SETS])
def test_schemathesis_finds_nothing(answer_set: AnswerSet, tmp_path: Path) -> None:
    project = render(tmp_path / "service", answer_set.answers)
    answers = rendered_answers(project)
    sync = ["uv", "sync", "--python", find_python(answers["python_version"])]
    if answer_set.resolution != "highest":
        sync += ["--resolution", answer_set.resolution]
    check(sync, project)

    with throwaway_database(project, answers["database"], tmp_path) as database_url:
        env = clean_env(
            ENVIRONMENT="development",  # /openapi.json is off in production
            DATABASE_URL=database_url,
            PASSWORD_HASH_TIME_COST="1",
            PASSWORD_HASH_MEMORY_KIB="64",
            OTEL_TRACES_EXPORTER="none",
            REDIS_URL=os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
            REDIS_KEY_PREFIX=f"test:fuzz:{uuid.uuid4().hex[:12]}:",
            RATE_LIMIT_DEFAULT=NO_LIMIT,
            RATE_LIMIT_ROUTES=json.dumps(RATE_LIMIT_ROUTES),
            BOOTSTRAP_API_KEY=BOOTSTRAP_API_KEY,
            LOG_LEVEL="WARNING",
        )
        check(["uv", "run", "--no-sync", "alembic", "upgrade", "heads"], project, env)
        try:
            with _service(project, env, tmp_path / "service.log") as base:
                header = None
                if answers["auth"] != "none":
                    header = _auth_header(base, project, env, answers["auth"])
                output = _schemathesis(base, header, tmp_path)
        finally:
            if answers["redis"]:
                check(["uv", "run", "--no-sync", "python", "-c", REDIS_CLEANUP], project, env)
    operations, cases = _figures(output)
    print(f"schemathesis {answer_set.id}: {operations} operations, {cases} cases, 0 failures")
    assert operations not in ("?", "0"), output[-3000:]
