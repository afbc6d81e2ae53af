"""The app factory's own settings, beyond routes (core/test_features) and middleware."""

import inspect
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from httpx import ASGITransport, AsyncClient
from opentelemetry import trace


class RecordingTracerProvider(trace.TracerProvider):
    """A global provider such as `opentelemetry-instrument` sets; it records who asks."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def get_tracer(self, instrumenting_module_name: str, *args: Any, **kwargs: Any) -> trace.Tracer:
        self.asked.append(instrumenting_module_name)
        return trace.NoOpTracer()


async def _get(app: FastAPI, path: str) -> int:
    transport = ASGITransport(app=app)
    async with AsyncClient(transport=transport, base_url="http://testserver") as client:
        return (await client.get(path)).status_code


async def test_fastapi_native_telemetry_stays_off_under_a_global_provider(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = RecordingTracerProvider()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    # A default FastAPI app starts tracing every request with that provider...
    default_app = FastAPI()

    @default_app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    assert await _get(default_app, "/health/live") == 200
    assert provider.asked == ["fastapi"]
    provider.asked.clear()
    # ...the service's app does not: its requests are traced once, by its own telemetry.
    assert await _get(app, "/health/live") == 200
    assert await _get(app, "/no/such/route") == 404
    assert provider.asked == []


def test_no_dependency_or_endpoint_takes_a_threadpool_round_trip(app: FastAPI) -> None:
    """FastAPI runs a plain `def` in its threadpool: a thread hop per request, worth it only
    for work that blocks. The ones below block on purpose (form parsing, metric files)."""
    blocking_on_purpose = {"OAuth2PasswordRequestForm", "metrics"}

    def calls(dependant: Any) -> list[Any]:
        found = [dependant.call] if dependant.call is not None else []
        for sub in dependant.dependencies:
            found += calls(sub)
        return found

    sync = set()
    for route in app.routes:
        if isinstance(route, APIRoute):
            for call in calls(route.dependant):
                name = getattr(call, "__name__", type(call).__name__)
                is_async = inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)
                if not inspect.isroutine(call) and not inspect.isclass(call):
                    is_async = inspect.iscoroutinefunction(type(call).__call__)
                if not is_async and name not in blocking_on_purpose:
                    sync.add(f"{route.path}: {name}")
    assert not sync, sorted(sync)
