"""A production-like rig for the fault and server-limit tests.

A rendered service runs under gunicorn (2 workers, production settings) against its own
PostgreSQL cluster and Redis server, started here on free ports, so the machine's shared
ones are never stopped. Everything stopped is stopped by the PID this module started.

The load generator runs in the service's venv (it has httpx): `python fault_rig.py load
SPEC.json OUT.json`. It only talks to 127.0.0.1, with a bounded number of clients.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _pg_bindir() -> Path:
    """PostgreSQL's programs: where pg_config says, else the newest Debian/Ubuntu install."""
    if shutil.which("pg_config"):
        found = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if (Path(found.stdout.strip()) / "initdb").exists():
            return Path(found.stdout.strip())
    installs = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    return installs[-1] if installs else Path("/usr/bin")


PG_BINDIR = _pg_bindir()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _as_postgres(*cmd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    prefix = [] if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--"]
    return subprocess.run(
        [*prefix, *cmd], capture_output=True, text=True, timeout=timeout, check=False
    )


class Postgres:
    """A private PostgreSQL cluster on a free port, in a temporary directory."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="fault-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        init = _as_postgres(
            str(PG_BINDIR / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "--no-sync", "-E", "UTF8",
        )  # fmt: skip
        assert init.returncode == 0, init.stderr
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        result = _as_postgres(
            str(PG_BINDIR / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"),
            "-o", options, "-w", "start",
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr

    def stop(self, mode: str = "fast") -> None:
        _as_postgres(str(PG_BINDIR / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def sql(self, query: str) -> str:
        result = subprocess.run(
            [str(PG_BINDIR / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
             "-d", "postgres", "-At", "-c", query],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def client_connections(self) -> int:
        return int(
            self.sql(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
                " AND pid <> pg_backend_pid()"
            )
        )

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


class Redis:
    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)
            self.process = None

    close = stop


def service_env(project: Path, home: Path, **extra: str) -> dict[str, str]:
    """Production settings for a rendered service, with generous rate limits for load."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),  # gunicorn's control socket, one per rig
        "LANG": "C.UTF-8",
        "ENVIRONMENT": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "LOG_LEVEL": "INFO",
        "WEB_CONCURRENCY": "2",
        "GRACEFUL_TIMEOUT": "10",
        "RATE_LIMIT_DEFAULT": "100000/minute",
        "RATE_LIMIT_ROUTES": "{}",
        "OTEL_TRACES_EXPORTER": "none",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
    }
    env.update(extra)
    return env


@dataclass
class Gunicorn:
    project: Path
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        env = {**self.env, "PORT": str(self.port)}
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(self.project / ".venv" / "bin" / "gunicorn"), "-c", "gunicorn.conf.py"],
            cwd=self.project, env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"gunicorn exited:\n{self.log_tail()}"
            if len(self.workers()) == 2 and self.ready():
                return
            time.sleep(0.1)
        raise AssertionError(f"gunicorn not ready in {timeout}s:\n{self.log_tail()}")

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"GET /health/ready HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                return sock.recv(32).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def workers(self) -> list[int]:
        assert self.process is not None
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid and fields[0] != "Z":
                children.append(int(stat.parent.name))
        return sorted(children)

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        code = self.process.wait(timeout)
        self._log.close()
        return code

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_lines()[-lines:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def run_load(project: Path, spec: dict[str, Any], out: Path) -> subprocess.Popen[bytes]:
    """Start the load generator in the service's venv; it writes its records to `out`."""
    spec_path = out.with_suffix(".spec.json")
    spec_path.write_text(json.dumps({"started": str(started_marker(out)), **spec}))
    return subprocess.Popen(
        [str(project / ".venv" / "bin" / "python"), __file__, "load", str(spec_path), str(out)],
        env={"PATH": os.environ["PATH"], "LANG": "C.UTF-8"},
    )


def started_marker(out: Path) -> Path:
    """Made by the load generator when its first request is answered."""
    return out.with_suffix(".started")


def read_records(out: Path) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = json.loads(out.read_text())
    return records


def failed(record: dict[str, Any]) -> bool:
    return record["error"] is not None or record["status"] >= 500


# The load generator (runs in the service's venv).


async def _load(spec: dict[str, Any]) -> list[dict[str, Any]]:
    import asyncio
    import uuid

    import httpx

    base, token = spec["base_url"], spec.get("token")
    deadline = time.time() + spec["duration"]
    records: list[dict[str, Any]] = []
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def one(client: httpx.AsyncClient, method: str, path: str, body: Any = None) -> None:
        request_id = uuid.uuid4().hex
        record: dict[str, Any] = {
            "method": method, "path": path, "t0": time.time(), "request_id": request_id,
            "status": 0, "error": None, "code": None, "retry_after": None, "id": None,
        }  # fmt: skip
        try:
            response = await client.request(
                method, base + path, json=body, headers={**headers, "X-Request-ID": request_id}
            )
            record["status"] = response.status_code
            record["retry_after"] = response.headers.get("retry-after")
            if response.headers.get("content-type", "").startswith("application/json"):
                data = response.json()
                if isinstance(data, dict) and isinstance(data.get("error"), dict):
                    record["code"] = data["error"].get("code")
                elif isinstance(data, dict) and method == "POST":
                    record["id"] = data.get("id")
                    record["name"] = body["name"]
        except httpx.HTTPError as exc:
            record["error"] = f"{type(exc).__name__}: {exc}"[:200]
        record["t1"] = time.time()
        records.append(record)
        if len(records) == 1:
            Path(spec["started"]).touch()

    async def worker(client: httpx.AsyncClient, n: int) -> None:
        i = 0
        while time.time() < deadline:
            i += 1
            kind = (n + i) % 4
            if spec["items"] and kind == 0:
                name = f"w{n}-{i}-{uuid.uuid4().hex[:8]}"
                await one(client, "POST", "/api/v1/items", {"name": name})
            elif spec["items"] and kind in (1, 2):
                await one(client, "GET", "/api/v1/items?size=5")
            else:
                await one(client, "GET", "/health/live")
            await asyncio.sleep(spec.get("pause", 0.01))

    async def prober(client: httpx.AsyncClient) -> None:
        while time.time() < deadline:
            await one(client, "GET", "/health/ready")
            await asyncio.sleep(0.05)

    # Keep-alive below the server's (5 s), as a proxy in front would: a connection the
    # server closes as idle is not picked for a new request at the same moment.
    limits = httpx.Limits(keepalive_expiry=2)
    timeout = httpx.Timeout(spec.get("timeout", 15))
    clients = [httpx.AsyncClient(limits=limits, timeout=timeout) for _ in range(spec["clients"])]
    # Readiness the way an orchestrator probes: a new connection every time.
    probe_client = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0), timeout=2)
    tasks = [worker(clients[n % len(clients)], n) for n in range(spec["concurrency"])]
    await asyncio.gather(*tasks, prober(probe_client))
    for client in [*clients, probe_client]:
        await client.aclose()
    return records


def _main() -> None:
    import asyncio

    command, spec_path, out = sys.argv[1:4]
    assert command == "load"
    spec = json.loads(Path(spec_path).read_text())
    records = asyncio.run(_load(spec))
    Path(out).write_text(json.dumps(records))


if __name__ == "__main__":
    _main()
