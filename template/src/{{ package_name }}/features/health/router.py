"""Liveness (the process answers) and readiness (its dependencies answer)."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from fastapi import APIRouter, Request

from ...core.errors import DependencyUnavailableError, ServiceUnavailableError
from ...core.server import is_draining

ReadinessCheck = Callable[[], Awaitable[None]]

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


async def _run_check(name: str, check: ReadinessCheck, seconds: float) -> dict[str, Any]:
    """A check's status: "ok", "failed" or "timed out". What went wrong is logged, never
    answered: the text may name the database's user, host or port."""
    start = time.perf_counter()
    try:
        await asyncio.wait_for(check(), seconds)
    except TimeoutError:
        log.warning("readiness_check_failed", check=name, error=f"timed out after {seconds}s")
        return {"status": "timed out"}
    except Exception as exc:
        log.warning("readiness_check_failed", check=name, error=f"{type(exc).__name__}: {exc}")
        return {"status": "failed"}
    return {"status": "ok", "duration_ms": round((time.perf_counter() - start) * 1000, 2)}


@router.get("/ready")
async def ready(request: Request) -> dict[str, Any]:
    """503 in the error envelope, with Retry-After and every check's status, when any fails."""
    if is_draining():  # shutting down or recycling: send new requests elsewhere
        raise ServiceUnavailableError(
            "Draining.",
            details={"checks": {}},
            headers={"Retry-After": str(DependencyUnavailableError.retry_after)},
        )
    checks: dict[str, ReadinessCheck] = request.app.state.readiness_checks
    timeout: float = request.app.state.settings.readiness_timeout
    results = await asyncio.gather(
        *(_run_check(name, check, timeout) for name, check in checks.items())
    )
    report = dict(zip(checks, results, strict=True))
    if any(result["status"] != "ok" for result in report.values()):
        raise ServiceUnavailableError(
            "Not ready.",
            details={"checks": report},
            headers={"Retry-After": str(DependencyUnavailableError.retry_after)},
        )
    return {"status": "ok", "checks": report}
