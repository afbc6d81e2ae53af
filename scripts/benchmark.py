#!/usr/bin/env python3
"""Throughput of a rendered service's liveness route against a bare FastAPI app.

Renders the service from this checkout with copier, builds its venv with uv, and serves
three apps from that same venv with identical uvicorn flags: the service (its full
middleware and logging stack, in production mode), a bare FastAPI app with the same
`GET /health/live`, and that bare app with FastAPI's built-in OpenTelemetry off, as the
service has it. wrk loads all three in each round, the order rotating; the script prints
every round, the medians, and the median of the rounds' ratios service/bare, and exits
non-zero when that ratio is below --min-ratio. The ratio against the third app, the cost
of the template's own middleware alone, is printed beside it. See docs/benchmark.md.

Standard library only: run it with the template repo's venv python or any python3.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TypeVar

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
LIVE_PATH = "/health/live"
DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
SERVER_FLAGS = ["--no-access-log", "--loop", "uvloop", "--http", "httptools", "--workers", "1"]
SERVER_CPU = "0"
WRK_CPU = "1"
STARTUP_TIMEOUT = 60.0
SETUP_TIMEOUT = 600.0
T = TypeVar("T")

BARE_APP = '''\
"""The baseline: FastAPI with the same liveness route and nothing else."""

from fastapi import FastAPI

app = FastAPI(%s)


@app.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/bench/items/{item_id}")
async def item(item_id: int) -> dict[str, int]:
    return {"id": item_id}
'''

# The service's create_app turns FastAPI's built-in OpenTelemetry off; the third app does too.
NO_NATIVE_TELEMETRY = (
    'telemetry={"tracing": False, "metrics": False, "logs": False, "auto_configure": False}'
)
BARE = "bare"
BARE_OTEL_OFF = "bare-otel-off"
SERVICE = "service"

# --feature-route adds this feature folder to the service (features are discovered), so the
# load reaches a route that is traced, counted by metrics and rate limited, unlike probes.
BENCH_FEATURE = """\
from fastapi import APIRouter

router = APIRouter(prefix="/bench", tags=["bench"])


@router.get("/items/{item_id}")
async def item(item_id: int) -> dict[str, int]:
    return {"id": item_id}
"""
FEATURE_PATH = "/bench/items/42"


class BenchmarkError(Exception):
    """A step failed; the message says which and why."""


@dataclass
class Round:
    requests_per_second: float
    cpu_us_per_request: float  # the server's own CPU time: less sensitive to other load


@dataclass
class Server:
    name: str
    port: int
    log: Path
    process: subprocess.Popen[bytes]


def parse_pairs(pairs: list[str], option: str) -> dict[str, str]:
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"{option} takes KEY=VALUE, got {pair!r}")
        result[key] = value
    return result


def run(
    command: list[str],
    *,
    cwd: Path | None = None,
    timeout: float = SETUP_TIMEOUT,
    env: dict[str, str] | None = None,
) -> str:
    """Run a setup command; on failure raise with its output so the cause is visible."""
    try:
        done = subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkError(f"timed out after {timeout:.0f}s: {' '.join(command)}") from exc
    if done.returncode != 0:
        raise BenchmarkError(
            f"failed ({done.returncode}): {' '.join(command)}\n{done.stdout}{done.stderr}"
        )
    return done.stdout


def require_tools(*, wrk: bool = True) -> None:
    tools = ("uv", "wrk", "taskset") if wrk else ("uv", "taskset")
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        hint = " (Debian: apt-get update && apt-get install -y wrk)" if "wrk" in missing else ""
        raise BenchmarkError(f"missing on PATH: {', '.join(missing)}{hint}")
    if (os.cpu_count() or 1) < 2:
        raise BenchmarkError("needs 2 CPUs: the servers are pinned to CPU 0 and wrk to CPU 1")


def find_python(version: str) -> str:
    """An interpreter for `version` ("3.12"): pyenv's install, then uv's, then PATH."""
    pattern = str(Path.home() / f".pyenv/versions/{version}.*/bin/python{version}")
    candidates = sorted(
        glob.glob(pattern),
        key=lambda path: [int(part) for part in re.findall(r"\d+", Path(path).parts[-3])],
    )
    candidates.reverse()  # newest patch release first
    try:
        found = subprocess.run(
            ["uv", "python", "find", "--system", version],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if found.returncode == 0 and found.stdout.strip():
            candidates.append(found.stdout.strip())
    except (OSError, subprocess.TimeoutExpired):
        pass
    on_path = shutil.which(f"python{version}")
    if on_path:
        candidates.append(on_path)
    for candidate in candidates:
        # pyenv shims exist for every version but fail for the inactive ones: check it runs.
        probe = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    raise BenchmarkError(f"no Python {version} interpreter found (pyenv, uv python find, PATH)")


def read_answers(service_dir: Path) -> dict[str, str]:
    """The flat `key: value` lines of .copier-answers.yml (all this script needs)."""
    answers = {}
    for line in (service_dir / ".copier-answers.yml").read_text().splitlines():
        match = re.match(r"^([A-Za-z_]\w*):\s*(.*)$", line)
        if match:
            answers[match[1]] = match[2].strip().strip("'\"")
    return answers


def render_service(destination: Path, data: dict[str, str]) -> None:
    copier = REPO / ".venv/bin/copier"
    if not copier.exists():
        print("creating the template repo's venv (uv sync)", flush=True)
        run(["uv", "sync"], cwd=REPO)
    # --vcs-ref HEAD renders this checkout, uncommitted changes included, not the latest tag.
    command = [str(copier), "copy", "--defaults", "--quiet", "--vcs-ref", "HEAD"]
    for key, value in data.items():
        command += ["--data", f"{key}={value}"]
    run([*command, str(REPO), str(destination)])


def build_venv(service_dir: Path) -> Path:
    answers = read_answers(service_dir)
    python = find_python(answers["python_version"])
    run(["uv", "sync", "--no-dev", "--python", python], cwd=service_dir)
    # A venv copied along with a service may still import the original's code: refuse it.
    # (Servers run as `python -m uvicorn`: a copied venv's scripts start the original python.)
    venv_python = service_dir / ".venv/bin/python"
    package = answers["package_name"]
    imported = run([str(venv_python), "-c", f"import {package}; print({package}.__file__)"])
    if not Path(imported.strip()).resolve().is_relative_to(service_dir):
        raise BenchmarkError(
            f"{venv_python} imports {package} from {imported.strip()}, not from {service_dir}: "
            "delete that .venv (it was copied) and rerun"
        )
    return venv_python


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def start_server(
    name: str, python: Path, target: list[str], cwd: Path, env: dict[str, str], logs: Path
) -> Server:
    port = free_port()
    log = logs / f"{name}.log"
    command = ["taskset", "-c", SERVER_CPU, str(python), "-m", "uvicorn", *target]
    command += ["--host", HOST, "--port", str(port), *SERVER_FLAGS]
    with log.open("wb") as output:
        # Own session: Ctrl-C reaches only this script, which then stops the server itself.
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return Server(name, port, log, process)


def wait_until_live(server: Server) -> None:
    url = f"http://{HOST}:{server.port}{LIVE_PATH}"
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise BenchmarkError(f"{server.name} exited at startup:\n{tail(server.log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                body = json.loads(response.read())
            if body == {"status": "ok"}:
                return
            raise BenchmarkError(f"{server.name} answered {body!r} on {LIVE_PATH}")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise BenchmarkError(
        f"{server.name} not live after {STARTUP_TIMEOUT:.0f}s:\n{tail(server.log)}"
    )


def stop_server(server: Server) -> None:
    if server.process.poll() is not None:
        return
    os.killpg(server.process.pid, signal.SIGTERM)
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)


def tail(path: Path, lines: int = 20) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(server: Server, args: argparse.Namespace, seconds: float) -> Round:
    """Run wrk against the server. Errors or non-2xx responses fail the run."""
    path = FEATURE_PATH if args.feature_route else LIVE_PATH
    url = f"http://{HOST}:{server.port}{path}"
    command = ["taskset", "-c", WRK_CPU, "wrk", f"-t{args.threads}", f"-c{args.connections}"]
    command += [f"-d{seconds:g}s", "--timeout", "5s", "--latency", url]
    cpu_before = cpu_seconds(server.process.pid)
    output = run(command, timeout=seconds + 30)
    cpu_used = cpu_seconds(server.process.pid) - cpu_before
    if server.process.poll() is not None:
        raise BenchmarkError(f"{server.name} died under load:\n{tail(server.log)}")
    for problem in ("Socket errors", "Non-2xx or 3xx responses"):
        if problem in output:
            raise BenchmarkError(f"wrk reported problems against {server.name}:\n{output}")
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    requests = re.search(r"^\s*(\d+) requests in", output, re.MULTILINE)
    if not rate or not requests or int(requests[1]) == 0:
        raise BenchmarkError(f"no request counts in wrk's output:\n{output}")
    return Round(float(rate[1]), cpu_used / int(requests[1]) * 1e6)


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into SystemExit so the `finally` blocks still stop the servers."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def service_to_measure(args: argparse.Namespace, workdir: Path) -> Path:
    """--service-dir, or the template rendered into the work directory with --data."""
    if args.service_dir:
        service_dir: Path = args.service_dir.resolve()
        print(f"using the rendered service in {service_dir}", flush=True)
    else:
        service_dir = workdir / "service"
        print(f"rendering the template into {service_dir}", flush=True)
        render_service(service_dir, parse_pairs(args.data, "--data"))
    return service_dir


def benchmark(args: argparse.Namespace, workdir: Path) -> float:
    service_dir = service_to_measure(args, workdir)
    print("building the service's venv (uv sync)", flush=True)
    python = build_venv(service_dir)
    package = read_answers(service_dir)["package_name"]
    if args.feature_route:
        feature = service_dir / "src" / package / "features" / "bench"
        feature.mkdir(exist_ok=True)
        (feature / "__init__.py").write_text("")
        (feature / "router.py").write_text(BENCH_FEATURE)

    bare_dir = workdir / "bare"
    bare_dir.mkdir()
    (bare_dir / "bench_bare_app.py").write_text(BARE_APP % "")
    (bare_dir / "bench_bare_otel_off_app.py").write_text(BARE_APP % NO_NATIVE_TELEMETRY)
    logs = workdir / "logs"
    logs.mkdir()

    extra_env = parse_pairs(args.env, "--env")
    base_env = {**os.environ, **extra_env}
    service_env = {
        **os.environ,
        "ENVIRONMENT": "production",
        "SECRET_KEY": secrets.token_urlsafe(36),  # 48 characters
        "LOG_LEVEL": "INFO",
        "DATABASE_URL": DATABASE_URL,  # the liveness route never touches it
        # The limiter still runs on every request; it just never refuses the load.
        "RATE_LIMIT_DEFAULT": "100000000/second",
        **extra_env,  # last, so --env can override any of the above
    }

    servers: list[Server] = []
    try:
        for name, module in ((BARE, "bench_bare_app"), (BARE_OTEL_OFF, "bench_bare_otel_off_app")):
            servers.append(
                start_server(
                    name,
                    python,
                    ["--app-dir", str(bare_dir), f"{module}:app"],
                    bare_dir,
                    base_env,
                    logs,
                )
            )
        servers.append(
            start_server(
                SERVICE,
                python,
                [f"{package}.main:create_app", "--factory"],
                service_dir,
                service_env,
                logs,
            )
        )
        for server in servers:
            wait_until_live(server)
            print(f"{server.name} is live on {HOST}:{server.port} (log: {server.log})", flush=True)

        for server in servers:
            load(server, args, args.warmup)
        print(
            f"warmed up {args.warmup:g}s each; {args.rounds} rounds of {args.duration:g}s, "
            f"wrk -t{args.threads} -c{args.connections}",
            flush=True,
        )

        results: dict[str, list[Round]] = {server.name: [] for server in servers}
        for round_number in range(1, args.rounds + 1):
            # Each round loads the apps back to back, the first one rotating: a machine that
            # speeds up or slows down over the run then tilts no app's rounds more than another's.
            shift = (round_number - 1) % len(servers)
            for server in servers[shift:] + servers[:shift]:
                result = load(server, args, args.duration)
                results[server.name].append(result)
                print(
                    f"round {round_number} {server.name:<13} "
                    f"{result.requests_per_second:10.1f} req/s "
                    f"{result.cpu_us_per_request:8.1f} us CPU/request",
                    flush=True,
                )
            for baseline in (BARE, BARE_OTEL_OFF):
                ratio = ratio_of(results[SERVICE][-1], results[baseline][-1])
                print(f"round {round_number} service/{baseline:<13} {ratio:5.2f}", flush=True)
    finally:
        for server in servers:
            stop_server(server)

    rates = {
        name: statistics.median(r.requests_per_second for r in rounds)
        for name, rounds in results.items()
    }
    cpu = {
        name: statistics.median(r.cpu_us_per_request for r in rounds)
        for name, rounds in results.items()
    }
    for name in results:
        print(f"median   {name:<13} {rates[name]:10.1f} req/s {cpu[name]:8.1f} us CPU/request")
    ratios = {}
    for baseline in (BARE, BARE_OTEL_OFF):
        print(
            f"service/{baseline}: ratio of the medians {rates[SERVICE] / rates[baseline]:.2f}, "
            f"CPU per request {cpu[baseline] / cpu[SERVICE]:.2f}"
        )
        # The paired ratio: a round's loads ran minutes closer together than the medians'.
        ratios[baseline] = statistics.median(
            ratio_of(service, bare)
            for service, bare in zip(results[SERVICE], results[baseline], strict=True)
        )
    print(
        f"ratio service/{BARE_OTEL_OFF} (the template's middleware alone), "
        f"the median of the rounds' ratios: {ratios[BARE_OTEL_OFF]:.2f}"
    )
    return ratios[BARE]


def ratio_of(service: Round, baseline: Round) -> float:
    return service.requests_per_second / baseline.requests_per_second


def load_arguments(description: str, min_ratio: float, ratio_help: str) -> argparse.ArgumentParser:
    """The options both benchmark scripts take; each adds its own."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra copier answer (repeatable), e.g. --data metrics=true",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the servers (repeatable)",
    )
    parser.add_argument(
        "--service-dir",
        type=Path,
        help="benchmark this already rendered service instead of rendering one",
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--duration", type=float, default=10, help="seconds per load")
    parser.add_argument("--warmup", type=float, default=3, help="warm-up seconds per load")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument(
        "--min-ratio",
        type=float,
        default=min_ratio,
        help=f"exit 1 when {ratio_help} is below this (default {min_ratio:.2f})",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the work directory (rendered service, server logs)",
    )
    return parser


def parse_load_arguments(parser: argparse.ArgumentParser) -> argparse.Namespace:
    args = parser.parse_args()
    if args.service_dir and args.data:
        parser.error("--data applies when rendering; --service-dir is already rendered")
    if args.rounds < 1 or args.duration <= 0 or args.warmup <= 0:
        parser.error("--rounds must be >= 1; --duration and --warmup must be positive")
    return args


def run_benchmark(
    args: argparse.Namespace,
    prefix: str,
    body: Callable[[argparse.Namespace, Path], T],
    *,
    wrk: bool = True,
) -> T | int:
    """`body(args, workdir)` with the tools checked (wrk only if the body loads a server
    with it), servers stopped on SIGTERM and the work directory removed (unless --keep); an
    int on failure: 2 for a failed step, 130 on Ctrl-C."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        with stop_on_sigterm():
            require_tools(wrk=wrk)
            return body(args, workdir)
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; servers stopped", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = load_arguments(
        "Requests/s of the rendered service versus a bare FastAPI app.", 0.85, "service/bare"
    )
    parser.add_argument(
        "--feature-route",
        action="store_true",
        help=f"load {FEATURE_PATH}, a route added as a feature folder (traced, counted and "
        "rate limited), instead of /health/live",
    )
    args = parse_load_arguments(parser)
    ratio = run_benchmark(args, "benchmark-", benchmark)
    if isinstance(ratio, int):
        return ratio
    print(
        f"ratio service/{BARE}, the median of the rounds' ratios: {ratio:.2f} "
        f"(threshold {args.min_ratio:.2f})"
    )
    return 0 if ratio >= args.min_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
