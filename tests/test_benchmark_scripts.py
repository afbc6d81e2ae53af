"""scripts/db_benchmark.py runs end to end, served and in process, against the machine's
PostgreSQL on a render of the defaults: the hand-written app and the service answer both
routes, a ratio is printed per route, and the benchmark's database is dropped afterwards.
Its figures are not checked here (too noisy to gate on; docs/benchmark.md), only that the
measurement a change is judged by still works."""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from support import REPO_ROOT, render

BENCH_DATABASES = r"SELECT datname FROM pg_database WHERE datname LIKE 'bench\_%'"


def bench_databases() -> set[str]:
    listed = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-Atc", BENCH_DATABASES],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return set(listed.stdout.split())


def service_files(service: Path) -> set[Path]:
    """What the benchmark must leave alone: all but the venv and lock that `uv sync` writes."""
    venv, lock = service / ".venv", service / "uv.lock"
    return {path for path in service.rglob("*") if path != lock and not path.is_relative_to(venv)}


@pytest.fixture(scope="module")
def defaults(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(tmp_path_factory.mktemp("benchmark") / "service", {"project_name": "Bench"})


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode",
    [
        ["--in-process", "--requests", "20"],
        ["--duration", "1", "--warmup", "1"],
        ["--statements", "--requests", "20"],
    ],
    ids=["in-process", "served", "statements"],
)
def test_db_benchmark_runs_and_cleans_up(defaults: Path, mode: list[str]) -> None:
    if "--in-process" not in mode:
        assert shutil.which("wrk"), "the served benchmark needs wrk (.ci/run installs it)"
    files_before = service_files(defaults)
    command = [sys.executable, "scripts/db_benchmark.py", "--service-dir", str(defaults)]
    command += ["--rounds", "2", "--min-ratio", "0", *mode]
    done = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    if "--statements" in mode:  # a figure for each way, each way's statements found their rows
        ways = re.findall(r"^ *\d+\.\d us CPU median, +\d+\.\d best: (.+)$", done.stdout, re.M)
        assert len(ways) == 5 and "the service's repositories" in ways[0], output
    else:
        for route in ("item", "list"):
            assert re.search(rf"^ratio {route}: .* \d\.\d\d", done.stdout, re.MULTILINE), output
    created = re.search(r"^created the database (bench_\w+)", done.stdout, re.MULTILINE)
    assert created, output
    assert created[1] not in bench_databases(), f"{created[1]} was left behind:\n{output}"
    # --service-dir may be a team's checkout: the benchmark writes nothing of its own there.
    assert service_files(defaults) == files_before


def load_db_benchmark() -> ModuleType:
    path = REPO_ROOT / "scripts" / "db_benchmark.py"
    spec = importlib.util.spec_from_file_location("db_benchmark", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_in_process_reports_a_child_that_dies_mid_run(tmp_path: Path) -> None:
    """An app that fails in the middle of a pass is a failed step (exit status 2 in main),
    not a BrokenPipeError, and the other child is stopped."""
    db_benchmark = load_db_benchmark()
    # In the child's place: ready, then gone before its first pass (a non-200 answer ends
    # the real child), so the pass is written to a closed pipe.
    child = tmp_path / "child.py"
    child.write_text("import sys\nprint('ready', flush=True)\nsys.exit(3)\n")
    app = (tmp_path, dict(os.environ), "unused")
    args = argparse.Namespace(requests=5, rounds=1)
    apps = {db_benchmark.SERVICE: app, db_benchmark.LIMIT: app}
    with pytest.raises(db_benchmark.shared.BenchmarkError, match="stopped in process"):
        db_benchmark.in_process(args, Path(sys.executable), apps, {"item": "/x"}, "t", child)


def test_the_two_in_process_measurements_are_refused_together() -> None:
    command = [sys.executable, "scripts/db_benchmark.py", "--in-process", "--statements"]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--in-process and --statements are two measurements; choose one" in done.stderr


@pytest.mark.parametrize("answer", ["database: sqlite", "auth: api_key", "example_feature: false"])
def test_a_service_without_the_measured_routes_is_refused_first(
    tmp_path: Path, answer: str
) -> None:
    """Refused before its venv is built, with what the benchmark needs, instead of failing
    halfway through its setup (the seed inserts into the items example's table)."""
    db_benchmark = load_db_benchmark()
    service = tmp_path / "service"
    service.mkdir()
    answers = {"database": "postgresql", "auth": "jwt", "example_feature": "true"}
    key, value = answer.split(": ")
    lines = [f"{name}: {value if name == key else default}" for name, default in answers.items()]
    (service / ".copier-answers.yml").write_text("\n".join(lines) + "\n")
    args = argparse.Namespace(service_dir=service)
    expected = "needs database=postgresql, auth=jwt, example_feature=true"
    with pytest.raises(db_benchmark.shared.BenchmarkError, match=expected):
        db_benchmark.benchmark(args, tmp_path / "work")
    assert sorted(path.name for path in service.iterdir()) == [".copier-answers.yml"]
