"""Jobs per second of a rendered service's background-job workers, on the local Redis.

    cd <rendered service with background_jobs> && \
        uv run --no-sync python <template>/scripts/jobs_throughput.py --workers 1 --jobs 2000

Uses `--workers` real worker processes (the service's tests/jobs_worker.py, whose
`tests.record` job increments one Redis counter). It enqueues `--jobs` jobs on a queue of its
own, then starts the workers and reports jobs per second from the first run to the last. The
service's settings come from the environment (REDIS_URL, DATABASE_URL...), as for the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2000)
    args = parser.parse_args()
    print(asyncio.run(measure(args.workers, args.jobs)))


async def measure(workers: int, jobs: int) -> str:
    sys.path.insert(0, str(Path.cwd()))  # the service's src/ is installed; its tests/ is not
    package = _package()
    config: Any = __import__(f"{package}.config", fromlist=["Settings"])
    core_jobs: Any = __import__(f"{package}.core.jobs", fromlist=["Jobs"])
    from tests.jobs_worker import record  # the service's own test jobs

    # This process only enqueues: a job_queued line per job would be all its output.
    structlog: Any = __import__("structlog")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    env = {**os.environ, "ENVIRONMENT": "test", "REDIS_KEY_PREFIX": prefix, "LOG_LEVEL": "WARNING"}
    env.setdefault("JOBS_CONCURRENCY", "10")
    # Several workers on one host: no metrics port each (the counting still runs), and spans
    # made but sent nowhere.
    env.setdefault("JOBS_METRICS_PORT", "0")
    env.setdefault("OTEL_TRACES_EXPORTER", "none")
    settings = config.Settings(_env_file=None, environment="test", redis_key_prefix=prefix)
    queue = core_jobs.create_queue(settings)
    await queue.connect()
    # All jobs are queued first, then the workers start: the time is the workers' alone,
    # from the first run to the last.
    enqueuer = core_jobs.Jobs(queue)
    counter = f"{prefix}runs"
    for _ in range(jobs):
        await enqueuer.enqueue(record, counter=counter)
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.jobs_worker"],
            env={**env, "JOBS_HEARTBEAT_FILE": f"/tmp/{prefix.replace(':', '-')}{n}.alive"},
            stdout=subprocess.DEVNULL,
        )
        for n in range(workers)
    ]
    try:
        while int(await queue.redis.get(counter) or 0) == 0:
            await asyncio.sleep(0.005)
        started = time.perf_counter()
        while int(await queue.redis.get(counter) or 0) < jobs:
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=60)
        await queue.disconnect()
    rate = jobs / elapsed
    return f"{workers} worker process(es): {jobs} jobs in {elapsed:.2f} s = {rate:.0f} jobs/s"


def _package() -> str:
    src = Path.cwd() / "src"
    return next(p.name for p in src.iterdir() if (p / "core" / "jobs.py").exists())


if __name__ == "__main__":
    main()
