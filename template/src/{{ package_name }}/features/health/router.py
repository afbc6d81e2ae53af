"""Liveness (the process answers) and readiness (its dependencies answer)."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request

from ...core.errors import ServiceUnavailableError
from ...core.server import is_draining

ReadinessCheck = Callable[[], Awaitable[None]]

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


async def _run_check(check: ReadinessCheck, seconds: float) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        await asyncio.wait_for(check(), seconds)
    except TimeoutError:
        return {"status": "error", "error": f"timed out after {seconds}s"}
    except Exception as exc:
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"status": "ok", "duration_ms": round((time.perf_counter() - start) * 1000, 2)}


@router.get("/ready")
async def ready(request: Request) -> dict[str, Any]:
    """503 in the error envelope, with every check's result, when any check fails."""
    if is_draining():  # shutting down or recycling: send new requests elsewhere
        raise ServiceUnavailableError("Draining.", details={"checks": {}})
    checks: dict[str, ReadinessCheck] = request.app.state.readiness_checks
    timeout: float = request.app.state.settings.readiness_timeout
    results = await asyncio.gather(*(_run_check(check, timeout) for check in checks.values()))
    report = dict(zip(checks, results, strict=True))
    if any(result["status"] != "ok" for result in report.values()):
        raise ServiceUnavailableError("Not ready.", details={"checks": report})
    return {"status": "ok", "checks": report}
