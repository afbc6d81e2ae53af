"""Hostile bodies against a real server: eight clients each send 50 MB at once, declared
(Content-Length) and chunked, to a route that needs credentials, without any. Every one gets
the 413 envelope, and the worker's peak resident memory barely moves (before MAX_BODY_BYTES,
eight such bodies took one worker to 1.75 GB)."""

from __future__ import annotations

import json
import select
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from support import check, clean_env, find_python, render, rendered_answers

CLIENTS = 8
BODY_BYTES = 50 * 1024 * 1024
CHUNK = 64 * 1024
# Peak RSS growth allowed for the whole attack. Without the limit, one 50 MB JSON body alone
# grows it by more than this.
MAX_GROWTH_KIB = 48 * 1024
ANSWERS = {"database": "sqlite", "auth": "jwt", "example_feature": True, "redis": False}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")


def _attack(port: int, chunked: bool) -> int | str:
    """Send one 50 MB body, stopping as soon as the server answers; its status, or what
    happened to the connection."""
    head = [
        "POST /api/v1/items HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Content-Type: application/json",
        "Transfer-Encoding: chunked" if chunked else f"Content-Length: {BODY_BYTES}",
        "",
        "",
    ]
    chunk = b"x" * CHUNK
    framed = f"{CHUNK:x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall("\r\n".join(head).encode())
        try:
            for _ in range(BODY_BYTES // CHUNK):
                if select.select([sock], [], [], 0)[0]:
                    break  # the server has answered
                sock.sendall(framed)
        except OSError:
            pass  # it closed the connection on us: read what it said
        try:
            response = _read_all(sock)
        except OSError as error:
            return type(error).__name__
    if not response:
        return "closed"
    status_line, _, rest = response.partition(b"\r\n")
    status = int(status_line.split()[1])
    if status == 413:
        body = rest.partition(b"\r\n\r\n")[2]
        assert json.loads(body)["error"]["code"] == "payload_too_large", body
    return status


def _read_all(sock: socket.socket) -> bytes:
    """The response: the server closes the connection after a 413."""
    data = b""
    while len(data) < 1024 * 1024:
        received = sock.recv(65536)
        if not received:
            break
        data += received
    return data


def _run_clients(port: int, chunked: bool) -> list[int | str]:
    results: list[int | str] = [""] * CLIENTS

    def client(index: int) -> None:
        results[index] = _attack(port, chunked)

    threads = [threading.Thread(target=client, args=(index,)) for index in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


@pytest.mark.slow
def test_eight_concurrent_50_mb_bodies_leave_the_worker_small(tmp_path: Path) -> None:
    project = render(tmp_path / "service", ANSWERS)
    answers = rendered_answers(project)
    check(["uv", "sync", "--python", find_python(answers["python_version"])], project)
    env = clean_env(
        ENVIRONMENT="production",
        SECRET_KEY="a-production-secret-for-this-test-only-0123456789",
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'service.db'}",
        RATE_LIMIT_DEFAULT="1000000/minute",
        LOG_LEVEL="WARNING",
    )
    check(["uv", "run", "--no-sync", "alembic", "upgrade", "heads"], project, env)
    port = _free_port()
    command = [
        str(project / ".venv" / "bin" / "uvicorn"),
        f"{answers['package_name']}.main:create_app",
        "--factory",
        "--port",
        str(port),
        "--no-access-log",
    ]
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        server = subprocess.Popen(command, cwd=project, env=env, stdout=output, stderr=output)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        # One ordinary request first, so the baseline includes a warmed-up app.
        assert _attack_small(port) == 401
        before = _peak_rss_kib(server.pid)
        declared = _run_clients(port, chunked=False)
        streamed = _run_clients(port, chunked=True)
        after = _peak_rss_kib(server.pid)
        early_answer = _expect_continue(port)
    finally:
        server.terminate()
        server.wait(timeout=20)
    growth = after - before
    print(
        f"worker peak RSS: {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB after "
        f"{CLIENTS} declared and {CLIENTS} chunked concurrent 50 MB bodies "
        f"(+{growth / 1024:.1f} MiB); answers {declared} / {streamed}"
    )
    # Each client got the 413, or, still sending, had its connection reset once it was
    # refused (the server closes without reading the rest; TCP then drops the unread answer).
    refused = {413, "ConnectionResetError", "BrokenPipeError", "closed"}
    assert set(declared) | set(streamed) <= refused
    assert growth < MAX_GROWTH_KIB
    # A client that waits before sending (Expect: 100-continue) sees the 413 come first.
    assert early_answer.startswith(b"HTTP/1.1 413 ")
    assert b"100 Continue" not in early_answer
    assert b'"payload_too_large"' in early_answer


def _attack_small(port: int) -> int:
    body = b'{"name": "small"}'
    request = (
        f"POST /api/v1/items HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        return int(_read_all(sock).split(b"\r\n", 1)[0].split()[1])


def _expect_continue(port: int) -> bytes:
    request = (
        f"POST /api/v1/items HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {BODY_BYTES}\r\n"
        "Expect: 100-continue\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        return _read_all(sock)
