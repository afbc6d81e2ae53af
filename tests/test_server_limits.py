"""Hostile clients against a rendered service's production server (gunicorn, 2 workers).

Large and many headers, long URLs, slow and idle clients and more connections than the cap,
sent as raw bytes to 127.0.0.1; and a server that leaves no directory behind when it exits.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_rig import Gunicorn, Postgres, service_env
from support import check, clean_env, find_python, render, rendered_answers

HEADER_TIMEOUT = 2
KEEPALIVE = 2
WORKER_CONNECTIONS = 20

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gunicorn]:
    root = tmp_path_factory.mktemp("limits")
    project = render(root / "service", {})
    answers = rendered_answers(project)
    check(["uv", "sync", "--python", find_python(answers["python_version"])], project, clean_env())
    postgres = Postgres()
    private_tmp = root / "tmp"
    private_tmp.mkdir()
    env = service_env(
        project,
        root,
        DATABASE_URL=postgres.url,
        HEADER_TIMEOUT=str(HEADER_TIMEOUT),
        KEEPALIVE=str(KEEPALIVE),
        WORKER_CONNECTIONS=str(WORKER_CONNECTIONS),
        TMPDIR=str(private_tmp),  # where gunicorn.conf.py makes its runtime directory
    )
    gunicorn = Gunicorn(project, env, root / "gunicorn.log")
    gunicorn.start()
    try:
        yield gunicorn
    finally:
        gunicorn.stop()
        postgres.close()


def _connect(server: Gunicorn) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _read_all(sock: socket.socket, timeout: float = 10) -> bytes:
    sock.settimeout(timeout)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def _read_response(sock: socket.socket) -> bytes:
    """One response on a kept-alive connection (it has a content-length)."""
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    length = int(_parse(data)[1]["content-length"])
    while len(data.partition(b"\r\n\r\n")[2]) < length:
        data += sock.recv(65536)
    return data


def _exchange(server: Gunicorn, request: bytes) -> tuple[int, dict[str, str], bytes]:
    with _connect(server) as sock:
        # Refused before all of it was sent, the answer is still there to read.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        return _parse(_read_all(sock))


def _parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(": ")
        headers[name.lower()] = value
    return int(lines[0].split()[1]), headers, body


def _code(body: bytes) -> str:
    code: str = json.loads(body)["error"]["code"]
    return code


def test_responses_do_not_name_the_server(server: Gunicorn) -> None:
    status, headers, _ = _exchange(
        server, b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    assert status == 200
    assert "server" not in headers


def test_a_1_mb_header_is_refused_quickly(server: Gunicorn) -> None:
    start = time.monotonic()
    big = b"X-Big: " + b"a" * 1_000_000 + b"\r\n"
    status, _, body = _exchange(
        server, b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n" + big + b"\r\n"
    )
    assert (status, _code(body)) == (431, "headers_too_large")
    assert time.monotonic() - start < 2


def test_200_headers_are_refused(server: Gunicorn) -> None:
    many = b"".join(b"X-Header-%d: value\r\n" % i for i in range(200))
    status, _, body = _exchange(
        server, b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n" + many + b"\r\n"
    )
    assert (status, _code(body)) == (431, "too_many_headers")


def test_a_64_kb_url_gets_414_in_the_envelope(server: Gunicorn) -> None:
    url = b"/api/v1/items?q=" + b"a" * 65536
    status, headers, body = _exchange(
        server, b"GET " + url + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    )
    assert (status, _code(body)) == (414, "uri_too_long")
    assert headers["content-type"] == "application/json"


def test_a_slow_header_client_is_closed_within_the_header_timeout(server: Gunicorn) -> None:
    with _connect(server) as sock:
        start = time.monotonic()
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        for _ in range(10):  # one header every half second, never the blank line
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.5)
            if time.monotonic() - start > HEADER_TIMEOUT + 1:
                break
        raw = _read_all(sock)
        elapsed = time.monotonic() - start
    assert _parse(raw)[0] == 408
    assert elapsed < HEADER_TIMEOUT + 1.5


def test_an_idle_keep_alive_connection_is_closed_after_the_timeout(server: Gunicorn) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert _read_response(sock).startswith(b"HTTP/1.1 200")
        start = time.monotonic()
        assert _read_all(sock, timeout=KEEPALIVE + 3) == b""  # closed by the server
        assert time.monotonic() - start < KEEPALIVE + 1


def test_connections_past_the_cap_get_503_and_the_workers_stay_responsive(
    server: Gunicorn,
) -> None:
    extra = 10
    held = [_connect(server) for _ in range(2 * WORKER_CONNECTIONS + extra)]
    try:
        # Within the header timeout, which closes idle connections (silently) too.
        time.sleep(0.5)
        answered, _, _ = select.select(held, [], [], 0.5)
        for sock in answered:
            status, headers, body = _parse(sock.recv(65536))
            assert (status, _code(body), headers["retry-after"]) == (
                503,
                "too_many_connections",
                "1",
            )
        assert len(answered) >= extra
        # A connection the workers kept is served at once.
        kept = next(sock for sock in held if sock not in answered)
        kept.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert kept.recv(65536).startswith(b"HTTP/1.1 200")
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.5)
    status, _, _ = _exchange(
        server, b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    assert status == 200


def test_the_server_leaves_no_directory_behind(server: Gunicorn, tmp_path: Path) -> None:
    # A server of its own (the module's keeps serving the other tests), same service.
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    own = Gunicorn(server.project, {**server.env, "TMPDIR": str(private_tmp)}, tmp_path / "log")
    own.start()
    made = list(private_tmp.iterdir())
    assert [path.name.startswith("my-service-server-") for path in made] == [True]
    assert (made[0] / "prometheus").is_dir()
    own.stop()
    assert own.process is not None and own.process.returncode == 0
    assert not list(private_tmp.iterdir())
