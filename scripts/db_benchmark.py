#!/usr/bin/env python3
"""Throughput of a rendered service's database routes against the same work written by hand.

Renders the service (PostgreSQL, jwt, the items example: the defaults), migrates a fresh
database, adds one user and PAGE_ITEMS of their items, and serves two apps from the
service's venv with identical uvicorn flags, pinned to one CPU: the service, in production
mode with its whole stack, and a minimal FastAPI app written below that does the same
security work by hand (the same PyJWT checks, the same check that the token's user still
exists, the same item and page queries). wrk loads both in alternating rounds with the
same bearer token, on an item read and a page of PAGE_ITEMS; the script prints req/s,
p50/p99 latency and the server's CPU per request, the median of the rounds' ratios
service/limit, each worker's resident memory at start, after warm-up and at the end, and
exits non-zero when a ratio is below --min-ratio. With --in-process it calls each app in a
process of its own instead, with no server and no wrk, and compares CPU per request. With
--statements it only times the item read's two statements, from the service's repositories
down to the driver, to show what each layer costs. See docs/benchmark.md.

Standard library only, like scripts/benchmark.py, whose helpers it shares.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchmark as shared

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PAGE_ITEMS = 20
# Resident memory may grow this much after warm-up (issue 16): more is a leak to look into.
MAX_MEMORY_GROWTH_PERCENT = 10
ROUTES = {"item": "/api/v1/items/{item_id}", "list": "/api/v1/items?page=1&size=20"}
SERVICE = "service"
LIMIT = "limit"

# Run with the service's venv python: creates the database, the user, their items and a token.
SEED = """\
import asyncio, json, os, sys
import asyncpg
from {package}.config import Settings
from {package}.core.security import create_token

async def admin(statement: str) -> None:
    connection = await asyncpg.connect(os.environ["ADMIN_URL"])
    await connection.execute(statement.format(os.environ["BENCH_DB"]))
    await connection.close()

async def seed() -> None:
    url = os.environ["DATABASE_URL"].replace("postgresql+asyncpg", "postgresql")
    db = await asyncpg.connect(url)
    user_id = await db.fetchval(
        "INSERT INTO users (email, password_hash, role, created_at, updated_at)"
        " VALUES ('bench@example.com', 'not-a-hash', 'user', now(), now()) RETURNING id"
    )
    await db.executemany(
        "INSERT INTO items (owner_id, name, description, created_at, updated_at)"
        " VALUES ($1, $2, $3, now(), now())",
        [(user_id, f"item {{n}}", "a benchmark item") for n in range({items})],
    )
    item_id = await db.fetchval("SELECT min(id) FROM items")
    await db.close()
    token, _ = create_token(Settings(), str(user_id), "access")
    print(json.dumps({{"token": token, "item_id": item_id, "user_id": user_id}}))

steps = {{
    "create": lambda: admin('CREATE DATABASE "{{}}"'),
    "drop": lambda: admin('DROP DATABASE IF EXISTS "{{}}" WITH (FORCE)'),
    "seed": seed,
}}
asyncio.run(steps[sys.argv[1]]())
"""

# The limit: what a careful engineer writes by hand for the same two routes.
LIMIT_APP = '''\
"""The same security work and queries as the service's item routes, by hand."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import jwt
from fastapi import FastAPI, Header, HTTPException, Query
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

SECRET = os.environ["SECRET_KEY"]
ISSUER = os.environ["BENCH_JWT_ISSUER"]
CLAIMS = ["exp", "iat", "nbf", "iss", "aud", "sub", "jti", "type"]
USER = text("SELECT id, role FROM users WHERE id = :id")
ITEM = text(
    "SELECT id, owner_id, name, description, created_at, updated_at FROM items WHERE id = :id"
)
PAGE = text(
    "SELECT id, owner_id, name, description, created_at, updated_at FROM items"
    " WHERE owner_id = :owner ORDER BY id LIMIT :size OFFSET :offset"
)
COUNT = text("SELECT count(*) FROM items WHERE owner_id = :owner")
engine: AsyncEngine


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    global engine
    engine = create_async_engine(
        os.environ["DATABASE_URL"],
        pool_size=int(os.environ["BENCH_POOL_SIZE"]),
        max_overflow=int(os.environ["BENCH_MAX_OVERFLOW"]),
        isolation_level="AUTOCOMMIT",  # reads: no BEGIN and COMMIT round trips
    )
    yield
    await engine.dispose()


app = FastAPI(lifespan=lifespan, telemetry=%s)


def caller_id(authorization: str | None) -> int:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(401)
    try:
        claims = jwt.decode(
            token,
            SECRET,
            algorithms=["HS256"],
            audience=ISSUER,
            issuer=ISSUER,
            leeway=timedelta(seconds=10),
            options={"require": CLAIMS},
        )
    except jwt.PyJWTError:
        raise HTTPException(401) from None
    subject = claims["sub"]
    if claims["type"] != "access" or not (isinstance(subject, str) and subject.isdigit()):
        raise HTTPException(401)
    return int(subject)


def item_body(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "owner_id": row.owner_id,
        "name": row.name,
        "description": row.description,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


@app.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/api/v1/items/{item_id}")
async def read_item(item_id: int, authorization: str | None = Header(None)) -> dict[str, Any]:
    user_id = caller_id(authorization)
    async with engine.connect() as connection:
        user = (await connection.execute(USER, {"id": user_id})).first()
        if user is None:
            raise HTTPException(401)
        row = (await connection.execute(ITEM, {"id": item_id})).first()
    if row is None or (user.role != "admin" and row.owner_id != user.id):
        raise HTTPException(404)
    return item_body(row)


@app.get("/api/v1/items")
async def list_items(
    authorization: str | None = Header(None),
    page: int = Query(1, ge=1),
    size: int = Query(20, ge=1, le=100),
) -> dict[str, Any]:
    user_id = caller_id(authorization)
    async with engine.connect() as connection:
        user = (await connection.execute(USER, {"id": user_id})).first()
        if user is None:
            raise HTTPException(401)
        where = {"owner": user.id}
        total = (await connection.execute(COUNT, where)).scalar_one()
        rows = await connection.execute(PAGE, {**where, "size": size, "offset": (page - 1) * size})
        items = [item_body(row) for row in rows]
    pages = -(-total // size)
    return {"items": items, "total": total, "page": page, "size": size, "pages": pages}
'''


# Run with the service's venv python for --in-process: calls one app's ASGI callable directly
# (no server, no sockets) under its lifespan. Each line on stdin, "REQUESTS PATH", is a pass
# of that many GETs of PATH; it prints the pass's CPU time per request. Every answer is 200.
IN_PROCESS_CHILD = """\
import importlib, os, sys, time
import uvloop

# The service writes its access lines to stdout: they go to /dev/null, the figures to a copy.
out = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)

module, token = sys.argv[1:3]
app = importlib.import_module(module)
app = app.create_app() if hasattr(app, "create_app") else app.app
BASE = {
    "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
    "scheme": "http", "root_path": "", "client": ("127.0.0.1", 40000),
    "server": ("127.0.0.1", 8000),
    "headers": [(b"host", b"127.0.0.1:8000"), (b"accept", b"*/*"),
                (b"authorization", b"Bearer " + token.encode())],
}

async def receive():
    return {"type": "http.request", "body": b"", "more_body": False}

async def call(scope):
    statuses = []
    async def send(message):
        if message["type"] == "http.response.start":
            statuses.append(message["status"])
    await app(dict(scope), receive, send)
    if statuses != [200]:
        sys.exit(f"{module} answered {statuses} on {scope['path']}")

async def main():
    async with app.router.lifespan_context(app):
        print("ready", file=out)
        for line in sys.stdin:
            requests, target = line.split()
            path, _, query = target.partition("?")
            scope = {**BASE, "path": path, "raw_path": path.encode()}
            scope["query_string"] = query.encode()
            start = time.process_time()
            for _ in range(int(requests)):
                await call(scope)
            print((time.process_time() - start) / int(requests) * 1e6, file=out)

uvloop.run(main())
"""


# Run with the service's venv python for --statements: the item read's two statements (the
# user check, then the item query) run four ways in one process, beside a read session that
# runs none, the ways alternating pass by pass; it prints each way's CPU per pair.
STATEMENTS_CHILD = """\
import importlib, statistics, sys, time
import uvloop
from sqlalchemy import bindparam, select

package, user_id, item_id, passes, pairs = sys.argv[1:6]
user_id, item_id, passes, pairs = int(user_id), int(item_id), int(passes), int(pairs)
config = importlib.import_module(package + ".config")
database = importlib.import_module(package + ".core.database")
users = importlib.import_module(package + ".features.users.repository")
items = importlib.import_module(package + ".features.items.repository")

def by_id(model):
    table = model.__table__
    return select(table).where(table.c.id == bindparam("id"))

USER, ITEM = by_id(users.UserRepository.model), by_id(items.ItemRepository.model)
USER_SQL = "SELECT id, role FROM users WHERE id = $1"
ITEM_SQL = "SELECT id, owner_id, name, description, created_at, updated_at FROM items WHERE id = $1"

async def main():
    engine = database.create_engine(config.Settings())
    factory = database.create_read_session_factory(engine)
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    async def repositories():
        async with factory() as session:
            assert await users.UserRepository(session).get(user_id) is not None
            assert await items.ItemRepository(session).get(item_id) is not None

    async def session_core():
        async with factory() as session:
            connection = await session.connection()
            assert (await connection.execute(USER, {"id": user_id})).first() is not None
            assert (await connection.execute(ITEM, {"id": item_id})).first() is not None

    async def session_alone():
        async with factory() as session:
            await session.connection()

    async def plain_core():
        async with autocommit.connect() as connection:
            assert (await connection.execute(USER, {"id": user_id})).first() is not None
            assert (await connection.execute(ITEM, {"id": item_id})).first() is not None

    async def driver():
        async with autocommit.connect() as connection:
            raw = (await connection.get_raw_connection()).driver_connection
            assert await raw.fetchrow(USER_SQL, user_id) is not None
            assert await raw.fetchrow(ITEM_SQL, item_id) is not None

    ways = {
        "the service's repositories on a read session (its routes)": repositories,
        "Core statements on the read session's connection": session_core,
        "a read session alone (opened, connection checked out, closed)": session_alone,
        "Core statements on a plain connection (the hand-written app)": plain_core,
        "the asyncpg driver under that connection": driver,
    }
    cpu = {name: [] for name in ways}
    for way in ways.values():  # warm-up: statement caches, the pool's connection
        for _ in range(200):
            await way()
    for number in range(passes):
        names = list(ways)[number % len(ways):] + list(ways)[:number % len(ways)]
        for name in names:
            start = time.process_time()
            for _ in range(pairs):
                await ways[name]()
            cpu[name].append((time.process_time() - start) / pairs * 1e6)
    for name, results in cpu.items():
        print(f"{statistics.median(results):7.1f} us CPU median, {min(results):7.1f} best: {name}")
    await engine.dispose()

uvloop.run(main())
"""


@dataclass
class Load:
    requests_per_second: float
    cpu_us_per_request: float
    p50_ms: float
    p99_ms: float
    requests: int


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise shared.BenchmarkError(f"no VmRSS for process {pid}")


def latency_ms(output: str, percentile: str) -> float:
    match = re.search(rf"^\s*{percentile}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    if not match:
        raise shared.BenchmarkError(f"no {percentile}% latency in wrk's output:\n{output}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[match[2]]
    return float(match[1]) * scale


def load(server: shared.Server, url_path: str, token: str, args: argparse.Namespace) -> Load:
    url = f"http://{shared.HOST}:{server.port}{url_path}"
    command = ["taskset", "-c", shared.WRK_CPU, "wrk", f"-t{args.threads}", f"-c{args.connections}"]
    # Generous: at 32 connections on one saturated core, a request can wait seconds for a turn.
    command += [f"-d{args.duration:g}s", "--timeout", "15s", "--latency"]
    command += ["-H", f"Authorization: Bearer {token}", url]
    cpu_before = shared.cpu_seconds(server.process.pid)
    output = shared.run(command, timeout=args.duration + 30)
    cpu_used = shared.cpu_seconds(server.process.pid) - cpu_before
    if server.process.poll() is not None:
        raise shared.BenchmarkError(f"{server.name} died under load:\n{shared.tail(server.log)}")
    for problem in ("Socket errors", "Non-2xx or 3xx responses"):
        if problem in output:
            raise shared.BenchmarkError(f"wrk reported problems against {server.name}:\n{output}")
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    requests = re.search(r"^\s*(\d+) requests in", output, re.MULTILINE)
    if not rate or not requests or int(requests[1]) == 0:
        raise shared.BenchmarkError(f"no request counts in wrk's output:\n{output}")
    count = int(requests[1])
    return Load(
        float(rate[1]),
        cpu_used / count * 1e6,
        latency_ms(output, "50"),
        latency_ms(output, "99"),
        count,
    )


def check_same_answer(servers: list[shared.Server], paths: dict[str, str], token: str) -> None:
    """Both apps must answer every benchmarked route with 200 and the same JSON."""
    for route, path in paths.items():
        bodies = []
        for server in servers:
            request = urllib.request.Request(
                f"http://{shared.HOST}:{server.port}{path}",
                headers={"Authorization": f"Bearer {token}"},
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                bodies.append(response.read())
        # The same instants: pydantic writes UTC as "Z", the limit's isoformat() "+00:00".
        decoded = [json.loads(body.replace(b"+00:00", b"Z")) for body in bodies]
        if decoded[0] != decoded[1]:
            raise shared.BenchmarkError(
                f"the apps disagree on {route}: {bodies[0][:300]!r} vs {bodies[1][:300]!r}"
            )


def in_process(
    args: argparse.Namespace,
    python: Path,
    apps: dict[str, tuple[Path, dict[str, str], str]],
    paths: dict[str, str],
    token: str,
    child_file: Path,
) -> dict[str, float]:
    """CPU per request of each app called in process, no server: after a warm-up pass,
    --rounds passes of --requests per route and app, the app that goes first alternating.
    `apps` maps a name to the child's working directory, environment and module; the child,
    IN_PROCESS_CHILD, is `child_file`, beside the limit's module so that it can import it."""
    children: dict[str, subprocess.Popen[str]] = {}

    def measure(name: str, path: str, requests: int) -> float:
        child = children[name]
        assert child.stdin is not None and child.stdout is not None
        try:
            child.stdin.write(f"{requests} {path}\n")
            child.stdin.flush()
        except BrokenPipeError:
            answer = ""
        else:
            answer = child.stdout.readline().strip()
        if not answer:
            raise shared.BenchmarkError(f"{name} stopped in process (its error is above)")
        return float(answer)

    cpu: dict[tuple[str, str], list[float]] = {}
    try:
        for name, (cwd, env, module) in apps.items():
            command = ["taskset", "-c", shared.SERVER_CPU, str(python), str(child_file)]
            children[name] = subprocess.Popen(
                [*command, module, token],
                cwd=cwd,
                env=env,
                text=True,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            assert children[name].stdout is not None
            if children[name].stdout.readline().strip() != "ready":
                raise shared.BenchmarkError(f"{name} did not start in process (see above)")
        for name in children:
            for path in paths.values():
                measure(name, path, args.requests)
        print(f"in process: {args.rounds} passes of {args.requests} requests", flush=True)
        for pass_number in range(1, args.rounds + 1):
            order = list(children) if pass_number % 2 else list(children)[::-1]
            for route, path in paths.items():
                for name in order:
                    result = measure(name, path, args.requests)
                    cpu.setdefault((route, name), []).append(result)
                    print(f"pass {pass_number} {route:<4} {name:<7} {result:7.1f} us CPU/request")
    finally:
        for child in children.values():
            if child.stdin is not None:
                with contextlib.suppress(BrokenPipeError):  # a child that died
                    child.stdin.close()
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
    ratios = {}
    for route in paths:
        ours, limit = cpu[(route, SERVICE)], cpu[(route, LIMIT)]
        for name, passes in ((SERVICE, ours), (LIMIT, limit)):
            print(
                f"median {route:<4} {name:<7} {statistics.median(passes):7.1f} us CPU/request "
                f"(best {min(passes):.1f})"
            )
        ratios[route] = statistics.median(b / s for s, b in zip(ours, limit, strict=True))
        print(f"ratio {route}: limit/service CPU per request {ratios[route]:.2f} (in process)")
    return ratios


class Outcome(NamedTuple):
    ratios: dict[str, float]  # service/limit by route
    memory_grew: bool  # beyond MAX_MEMORY_GROWTH_PERCENT


def benchmark(args: argparse.Namespace, workdir: Path) -> Outcome:
    service_dir = shared.service_to_measure(args, workdir)
    answers = shared.read_answers(service_dir)
    wanted = {"database": "postgresql", "auth": "jwt", "example_feature": "true"}
    if any(answers.get(key) != value for key, value in wanted.items()):
        raise shared.BenchmarkError(
            "the database benchmark needs database=postgresql, auth=jwt, example_feature=true"
            " (it reads the items example's routes)"
        )
    print("building the service's venv (uv sync)", flush=True)
    python = shared.build_venv(service_dir)
    package = answers["package_name"]

    database = f"bench_{secrets.token_hex(4)}"
    database_url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}"
    secret_key = secrets.token_urlsafe(36)
    env = {
        **os.environ,
        "ENVIRONMENT": "production",
        "SECRET_KEY": secret_key,
        "LOG_LEVEL": "INFO",
        "DATABASE_URL": database_url,
        "RATE_LIMIT_DEFAULT": "100000000/second",  # still counted, never refused
        "ADMIN_URL": ADMIN_URL,
        "BENCH_DB": database,
        **shared.parse_pairs(args.env, "--env"),
    }
    seed = workdir / "seed.py"
    seed.write_text(SEED.format(package=package, items=PAGE_ITEMS))
    shared.run([str(python), str(seed), "create"], cwd=service_dir, env=env)
    print(f"created the database {database} (dropped at the end)", flush=True)
    servers: list[shared.Server] = []
    try:
        shared.run([str(python), "-m", "alembic", "upgrade", "heads"], cwd=service_dir, env=env)
        seeded = json.loads(shared.run([str(python), str(seed), "seed"], cwd=service_dir, env=env))
        if args.statements:
            child_file = workdir / "statements_child.py"  # not in the service's directory
            child_file.write_text(STATEMENTS_CHILD)
            print(f"the item read's statements: {args.rounds} passes of {args.requests} pairs")
            command = [str(python), str(child_file), package, str(seeded["user_id"])]
            command += [str(seeded["item_id"]), str(args.rounds), str(args.requests)]
            pinned = ["taskset", "-c", shared.SERVER_CPU, *command]
            print(shared.run(pinned, cwd=service_dir, env=env), end="", flush=True)
            return Outcome({}, memory_grew=False)
        token = seeded["token"]
        paths = {name: path.format(item_id=seeded["item_id"]) for name, path in ROUTES.items()}
        settings_probe = f"from {package}.config import Settings; print(Settings().jwt_issuer)"
        issuer = shared.run([str(python), "-c", settings_probe], cwd=service_dir, env=env).strip()
        pool = (
            f"from {package}.config import Settings; s = Settings(); "
            "print(s.db_pool_size, s.db_max_overflow)"
        )
        pool_size, max_overflow = shared.run(
            [str(python), "-c", pool], cwd=service_dir, env=env
        ).split()

        limit_dir = workdir / "limit"
        limit_dir.mkdir()
        (limit_dir / "bench_limit_app.py").write_text(
            LIMIT_APP % shared.NO_NATIVE_TELEMETRY.split("=", 1)[1]
        )
        limit_env = {
            **env,
            "BENCH_JWT_ISSUER": issuer,
            "BENCH_POOL_SIZE": pool_size,
            "BENCH_MAX_OVERFLOW": max_overflow,
        }
        if args.in_process:
            apps = {
                SERVICE: (service_dir, env, f"{package}.main"),
                LIMIT: (limit_dir, limit_env, "bench_limit_app"),
            }
            child_file = limit_dir / "in_process_child.py"  # not in the service's directory
            child_file.write_text(IN_PROCESS_CHILD)
            ratios = in_process(args, python, apps, paths, token, child_file)
            return Outcome(ratios, memory_grew=False)
        logs = workdir / "logs"
        logs.mkdir()
        servers.append(
            shared.start_server(
                LIMIT,
                python,
                ["--app-dir", str(limit_dir), "bench_limit_app:app"],
                limit_dir,
                limit_env,
                logs,
            )
        )
        servers.append(
            shared.start_server(
                SERVICE,
                python,
                [f"{package}.main:create_app", "--factory"],
                service_dir,
                env,
                logs,
            )
        )
        for server in servers:
            shared.wait_until_live(server)
            print(f"{server.name} is live on {shared.HOST}:{server.port} (log: {server.log})")
        check_same_answer(servers, paths, token)
        memory = {server.name: [rss_mib(server.process.pid)] for server in servers}
        warmup = argparse.Namespace(**{**vars(args), "duration": args.warmup})
        for server in servers:
            for path in paths.values():
                load(server, path, token, warmup)
            memory[server.name].append(rss_mib(server.process.pid))
        print(
            f"pool {pool_size} + {max_overflow} overflow in both; warmed up {args.warmup:g}s per "
            f"route; {args.rounds} rounds of {args.duration:g}s, wrk -t{args.threads} "
            f"-c{args.connections}",
            flush=True,
        )
        results: dict[tuple[str, str], list[Load]] = {}
        for round_number in range(1, args.rounds + 1):
            order = servers if round_number % 2 else servers[::-1]
            for route, path in paths.items():
                for server in order:
                    result = load(server, path, token, args)
                    results.setdefault((route, server.name), []).append(result)
                    print(
                        f"round {round_number} {route:<4} {server.name:<7} "
                        f"{result.requests_per_second:9.1f} req/s "
                        f"p50 {result.p50_ms:6.2f} ms p99 {result.p99_ms:6.2f} ms "
                        f"{result.cpu_us_per_request:7.1f} us CPU/request",
                        flush=True,
                    )
        served = {
            server.name: sum(
                r.requests for (_, name), rs in results.items() if name == server.name for r in rs
            )
            for server in servers
        }
        # The memory soak: the service keeps serving item reads until it has served
        # --soak-requests in all, so its resident memory is read after that many.
        service = next(server for server in servers if server.name == SERVICE)
        while served[SERVICE] < args.soak_requests:
            soak = load(service, paths["item"], token, args)
            served[SERVICE] += soak.requests
            print(f"soak: the service has served {served[SERVICE]} requests", flush=True)
        for server in servers:
            memory[server.name].append(rss_mib(server.process.pid))
    finally:
        for server in servers:
            shared.stop_server(server)
        drop = [str(python), str(seed), "drop"]
        subprocess.run(drop, cwd=service_dir, env=env, check=False, capture_output=True, timeout=60)

    ratios = {}
    for route in paths:
        ours, limit = results[(route, SERVICE)], results[(route, LIMIT)]
        for name, rounds in ((SERVICE, ours), (LIMIT, limit)):
            print(
                f"median {route:<4} {name:<7} "
                f"{statistics.median(r.requests_per_second for r in rounds):9.1f} req/s "
                f"p50 {statistics.median(r.p50_ms for r in rounds):6.2f} ms "
                f"p99 {statistics.median(r.p99_ms for r in rounds):6.2f} ms "
                f"{statistics.median(r.cpu_us_per_request for r in rounds):7.1f} us CPU/request"
            )
        ratios[route] = statistics.median(
            s.requests_per_second / b.requests_per_second for s, b in zip(ours, limit, strict=True)
        )
        cpu_ratio = statistics.median(
            b.cpu_us_per_request / s.cpu_us_per_request for s, b in zip(ours, limit, strict=True)
        )
        print(
            f"ratio {route}: service/limit req/s {ratios[route]:.2f}, "
            f"CPU per request {cpu_ratio:.2f}"
        )
    memory_grew = False
    for name, (start, warm, end) in memory.items():
        growth = (end - warm) / warm * 100
        print(
            f"memory {name:<7} RSS {start:.1f} MiB at start, {warm:.1f} after warm-up, "
            f"{end:.1f} after {served[name]} requests ({growth:+.1f}% since warm-up)"
        )
        if name == SERVICE and growth > MAX_MEMORY_GROWTH_PERCENT:
            print(f"the service's memory grew more than {MAX_MEMORY_GROWTH_PERCENT}% since warm-up")
            memory_grew = True
    return Outcome(ratios, memory_grew)


def main() -> int:
    parser = shared.load_arguments(
        "Requests/s of the service's item routes versus the same work by hand.",
        0.80,
        "a route's service/limit",
    )
    parser.add_argument(
        "--soak-requests",
        type=int,
        default=0,
        help="after the rounds, load the service's item read until it has served this many "
        "requests in all, then read its memory (docs/benchmark.md uses 100000)",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="call both apps in process, no server and no wrk: CPU per request only "
        "(--rounds passes of --requests per route and app)",
    )
    parser.add_argument(
        "--statements",
        action="store_true",
        help="instead, time the item read's two statements in process, four ways from the "
        "service's repositories to the asyncpg driver (--rounds passes of --requests pairs); "
        "prints CPU per pair, no ratio",
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=1000,
        help="requests per pass with --in-process, pairs of statements with --statements",
    )
    args = shared.parse_load_arguments(parser)
    if args.in_process and args.statements:
        parser.error("--in-process and --statements are two measurements; choose one")
    if (args.in_process or args.statements) and args.soak_requests:
        parser.error("--soak-requests needs the served apps; drop --in-process or --statements")
    if args.requests < 1:
        parser.error("--requests must be >= 1")
    served = not (args.in_process or args.statements)
    outcome = shared.run_benchmark(args, "db-benchmark-", benchmark, wrk=served)
    if isinstance(outcome, int):
        return outcome
    ratios = outcome.ratios
    if not ratios:  # --statements: figures to read, nothing to compare
        return 0
    summary = ", ".join(f"{route} {ratio:.2f}" for route, ratio in ratios.items())
    print(
        f"service/limit, the median of the rounds' ratios: {summary} "
        f"(threshold {args.min_ratio:.2f})"
    )
    return 1 if outcome.memory_grew or any(r < args.min_ratio for r in ratios.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
