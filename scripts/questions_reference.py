"""Write docs/questions.md, the questions reference, from copier.yml.

    uv run python scripts/questions_reference.py           # write docs/questions.md
    uv run python scripts/questions_reference.py --check   # exit 1 when it is out of date

Everything on the page except the "Adds" line comes from copier.yml: type, choices,
default, when it is asked, help and the messages of the validator. Defaults that are
Jinja expressions are evaluated the way copier does, with the other questions' defaults,
once for a new service and once for an updated one. The "Adds" line of each question comes
from ADDS below; a question without an entry stops the script.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import yaml
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

ROOT = Path(__file__).resolve().parent.parent
COPIER_FILE = ROOT / "copier.yml"
OUTPUT = ROOT / "docs" / "questions.md"
COMMAND = "uv run python scripts/questions_reference.py"

# What each answer adds to the generated service. One entry per question: the script
# refuses to write the page while a question of copier.yml has none.
ADDS = {
    "project_name": (
        "The title of the app (`Settings.app_name`), of the generated README and of the "
        "package docstring; `project_slug` and `package_name` are derived from it."
    ),
    "project_slug": (
        "The distribution name in `pyproject.toml`, the Docker image tag in CI, the "
        "OpenTelemetry service name, the JWT issuer and audience, and the prefix of API keys."
    ),
    "package_name": "The import name: the code lives in `src/<package_name>/`.",
    "description": "The description in `pyproject.toml`, the README and the package docstring.",
    "author_name": "The author in `pyproject.toml`.",
    "author_email": "The author's e-mail address in `pyproject.toml`.",
    "python_version": (
        "`requires-python`, the ruff and mypy targets, the Docker base image and the "
        "Python version CI runs."
    ),
    "database": (
        "`postgresql` or `sqlite`: SQLAlchemy 2 async (asyncpg or aiosqlite) in "
        "`core/database.py`, one transaction per request, Alembic in `migrations/`, a "
        "readiness check and tests against the real database. `none`: nothing about a "
        "database, and no `example_feature` or `auth` other than `none`."
    ),
    "auth": (
        "`jwt`: the `auth` and `users` features (OAuth2 password login, access and refresh "
        "tokens with rotation and reuse detection, roles), a `create-admin` command, items "
        "owned by their users. `api_key`: the `api_keys` feature (keys with scopes, shown "
        "once and stored as a keyed hash, admin endpoints, a bootstrap key). `none`: no auth "
        "code at all."
    ),
    "redis": (
        "`core/redis.py`: one Redis client per process, a readiness check, a JSON cache for "
        "the items reads, shared rate-limit counters, and Redis in `compose.yaml` and CI."
    ),
    "background_jobs": (
        "`core/jobs.py` on SAQ: jobs declared per feature in `features/<name>/jobs.py`, "
        "enqueued with `JobsDep`, run by `python -m <package>.worker` (`make worker`, a "
        "compose service, a worker Deployment with kubernetes) with retries and exponential "
        "backoff, delayed and periodic (`cron=`) jobs, idempotency keys, at-least-once "
        "delivery, a graceful SIGTERM and 503 while Redis is down; job metrics on the "
        "worker's own port with metrics, a span per run with tracing; the items example "
        "gets `POST /api/v1/items/{id}/process`. Needs `redis`."
    ),
    "rate_limit": (
        "`core/ratelimit.py`: a pure ASGI limiter (GCRA) per user, key or client address "
        "behind trusted proxies, stricter limits on auth routes, 429 with `Retry-After` and "
        "`X-RateLimit-*` headers."
    ),
    "example_feature": (
        "The `items` feature: router, service, repository, schemas, model, migration and "
        "tests, the pattern for a team's own features."
    ),
    "metrics": (
        "`core/metrics.py`: Prometheus `/metrics` with request count and latency by route "
        "template and status class, requests in flight and database pool gauges, in "
        "multiprocess mode under gunicorn."
    ),
    "tracing": (
        "`core/telemetry.py`: OpenTelemetry configured from the `OTEL_*` variables, OTLP/HTTP "
        "export, a server span per request from the service's own ASGI middleware, "
        "SQLAlchemy and Redis spans, `trace_id` and `span_id` on log lines, Jaeger in "
        "`compose.yaml`."
    ),
    "sentry": (
        "`core/error_reporting.py`: sentry-sdk with its Starlette and FastAPI integrations, "
        "initialised in `create_app` when `SENTRY_DSN` is set; each unhandled error of a "
        "request is one event tagged with its request id, scrubbed by the logs' redaction, "
        "without local variables or personal data; `SENTRY_*` settings for the environment "
        "and sample rates, the release from the package version."
    ),
    "ci": (
        "The pipeline (`.github/workflows/ci.yml` or `.gitlab-ci.yml`): lint, format, mypy "
        "and tests, with PostgreSQL and Redis services when the service uses them, an audit "
        "of the locked dependencies (pip-audit), and a scheduled job that fails when the "
        "template has a newer release; actions pinned to commits, images to digests."
    ),
    "docker": (
        "A multi-stage `Dockerfile` (uv build, non-root, HEALTHCHECK), `.dockerignore`, and "
        "`compose.yaml` with the chosen database, Redis and collector and a migration job."
    ),
    "dependency_updates": (
        "`renovate`: `renovate.json`, weekly pull requests for the Python packages and "
        "`uv.lock` (lock maintenance), the CI's pinned actions and images and the Docker base "
        "image digest, and template releases through Renovate's copier manager. "
        "`dependabot` (GitHub only): `.github/dependabot.yml` for uv, GitHub Actions and, "
        "with `docker`, Docker. `none`: neither."
    ),
    "kubernetes": (
        "`deploy/`: kustomize manifests, a base with staging and production overlays (locked-"
        "down Deployment with probes, Service, NetworkPolicy, autoscaler and disruption budget "
        "or, with SQLite, one pod on a volume; a migration Job with PostgreSQL; a "
        "ServiceMonitor with metrics), checked by the template's policy tests."
    ),
    "devcontainer": (
        "`.devcontainer/devcontainer.json`: Python `python_version` with uv, `uv sync` on "
        "creation, port 8000 forwarded. With PostgreSQL or Redis, `.devcontainer/compose.yaml` "
        "runs them beside the workspace, with `DATABASE_URL`, `REDIS_URL` and the tests' URLs "
        "pointed at them; otherwise one image. Checked against the devcontainer JSON schema."
    ),
    "feature": (
        "Nothing in a new service. Given by `make feature name=orders` in a service, it renders "
        "the feature generator (`feature/`) instead of `template/`: `features/orders/`, its "
        "tests and its migration, recorded in `.copier-answers.feature-orders.yml` "
        "(see [the feature generator](features.md))."
    ),
    "feature_class": (
        "The generated feature's model class and the prefix of its schemas, service, "
        "repository and errors (`Order`, `OrderCreate`, `OrderService`, ...)."
    ),
    "feature_migration_parent": (
        "The `down_revision` of the feature's migration: the head of the team's branch of "
        "revisions, or `0001`; `make feature` reads it from `migrations/versions`."
    ),
    "feature_migration_depends_on": (
        "The `depends_on` of the feature's migration: the template's heads not below its "
        "parent (the users table, for an owner column), as `make revision` would write them."
    ),
}

COPIER_TYPES = {
    "str": "text",
    "bool": "yes or no",
    "int": "whole number",
    "float": "number",
    "json": "JSON",
    "yaml": "YAML",
}

# The computed value in copier.yml that is true when copier reads an existing service's
# answers (update, recopy); its own expression needs copier's context, so it is set here.
EXISTING = "existing_service"

TAG = re.compile(r"({%.*?%}|{{.*?}})", re.S)


class MissingEntry(Exception):
    """A question of copier.yml has no sentence in ADDS."""


def questions(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The questions users answer: no `_settings`, no computed values (`when: false`)."""
    return {
        name: spec
        for name, spec in config.items()
        if not name.startswith("_") and isinstance(spec, dict) and spec.get("when") is not False
    }


def jinja_env() -> SandboxedEnvironment:
    """An environment with copier's filters (`regex_replace`, `regex_search`, ...)."""
    return SandboxedEnvironment(extensions=["jinja2_ansible_filters.AnsibleCoreFiltersExtension"])


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def variables(env: SandboxedEnvironment, text: str) -> set[str]:
    return meta.find_undeclared_variables(env.parse(text))


def cast(kind: str, value: Any) -> Any:
    """A rendered default as copier stores it for the question's type."""
    if kind == "bool" and isinstance(value, str):
        return value.strip().lower() in {"true", "yes", "y", "on", "1"}
    return value


def default_answers(
    env: SandboxedEnvironment, config: dict[str, Any], updated: bool
) -> dict[str, Any]:
    """Every question's default, evaluated in file order as copier does; `updated` says
    whether copier reads an existing service's answers (then `existing_service` is true)."""
    context: dict[str, Any] = {"_copier_conf": {"data": {}}}  # nothing given with -d
    for name, spec in config.items():
        if name.startswith("_") or not isinstance(spec, dict):
            continue
        if name == EXISTING:
            context[name] = updated
            continue
        default = spec.get("default")
        if is_template(default):
            default = env.from_string(default).render(context)
        context[name] = cast(spec.get("type", "str"), default)
    return context


def show(value: Any) -> str:
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if value is None or value == "":
        return "empty"
    return f"`{value}`"


def sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?")) else f"{text}."


def choices(spec: dict[str, Any]) -> list[tuple[Any, str | None]]:
    """(value, label) pairs; labels only when copier.yml gives them."""
    given = spec.get("choices")
    if isinstance(given, dict):
        return [(value, label) for label, value in given.items()]
    return [(value, None) for value in given or []]


def messages(validator: str) -> list[str]:
    """The texts a validator can answer with, answers shown as <name>."""
    found = []
    for part in re.split(r"{%.*?%}", validator, flags=re.S):
        text = " ".join(part.split())
        if text:
            text = re.sub(r"{{\s*(.*?)\s*}}", r"&lt;\1&gt;", text)
            found.append(text)
    return found


def describe_default(
    env: SandboxedEnvironment,
    name: str,
    spec: dict[str, Any],
    new: dict[str, Any],
    updated: dict[str, Any],
) -> tuple[str, str]:
    """(summary for the table, sentence for the question's section)."""
    default = spec.get("default")
    if not is_template(default):
        return show(new[name]), show(new[name])
    used = variables(env, default)
    parts = [f"`{var}`" for var in sorted(used - {EXISTING})]
    if EXISTING in used:
        parts.append("whether the service is new")
    source = "Computed from " + (
        f"{', '.join(parts[:-1])} and {parts[-1]}" if len(parts) > 1 else "".join(parts)
    )
    expression = f"`{default.strip()}`"
    if EXISTING in used:
        summary = f"new: {show(new[name])}; updated: {show(updated[name])}"
        sentence = (
            f"{source}: {expression}. With the other defaults: {show(new[name])} for a new "
            f"service, {show(updated[name])} for a service updated from a release that did "
            "not ask this question."
        )
    else:
        summary = f"{show(new[name])} (computed)"
        sentence = f"{source}: {expression}. With the other defaults: {show(new[name])}."
    return summary, sentence


def render(config: dict[str, Any], adds: dict[str, str] = ADDS) -> str:
    """The whole page for a parsed copier.yml."""
    asked = questions(config)
    missing = [name for name in asked if name not in adds]
    if missing:
        raise MissingEntry(
            "No sentence on what these questions add: "
            + ", ".join(missing)
            + f"; add one per question to ADDS in {Path(__file__).name}."
        )
    env = jinja_env()
    new = default_answers(env, config, updated=False)
    updated = default_answers(env, config, updated=True)
    uses_existing = any(
        is_template(spec.get("default")) and EXISTING in variables(env, spec["default"])
        for spec in asked.values()
    )

    lines = [
        "<!-- Generated from copier.yml by scripts/questions_reference.py; do not edit.",
        f"     After changing copier.yml, run: {COMMAND} -->",
        "",
        "# Questions",
        "",
        "Copier asks these questions when it generates a service. Every question has a "
        "default, so `copier copy --defaults` and `copier update --defaults` never stop on "
        "one; `-d key=value` sets one answer on the command line (`-d database=sqlite`). A "
        "bad answer is refused with a message that says what to type instead.",
        "",
        "Some defaults are computed from earlier answers. For those, this page shows the "
        "Jinja expression copier evaluates and the value it gives with the other defaults.",
        "",
    ]
    if uses_existing:
        lines += [
            "A default that uses `existing_service` depends on whether the service is new. "
            "`existing_service` is true when copier reads an existing service's answers "
            "file, as `copier update` does. So such a default means: for a new service, the "
            "first value; for a service updated from an earlier release, which lacks the "
            "answer only because that release did not ask it, the behaviour the service "
            "already had. An update never turns on something the service did not have.",
            "",
        ]
    lines += ["| question | type | default |", "|---|---|---|"]
    sections = []
    for name, spec in asked.items():
        kind = spec.get("type", "str")
        summary, default_sentence = describe_default(env, name, spec, new, updated)
        kind_text = "one of " + ", ".join(show(v) for v, _ in choices(spec))
        if not spec.get("choices"):
            kind_text = COPIER_TYPES.get(kind, kind)
        lines.append(f"| [`{name}`](#{name}) | {kind_text} | {summary} |")

        help_text = " ".join(str(spec.get("help", "")).split())
        body = [f"## `{name}`", ""]
        if is_template(help_text):
            rendered = " ".join(env.from_string(help_text).render(new).split())
            used = ", ".join(f"`{var}`" for var in sorted(variables(env, help_text)))
            body += [
                sentence(rendered),
                "",
                f"(Copier shows this help text with the answers so far: here, with the "
                f"defaults. It changes with {used}.)",
                "",
            ]
        elif help_text:
            body += [sentence(help_text), ""]
        one_of = ", one of:" if spec.get("choices") else ""
        body.append(f"- **Type:** {COPIER_TYPES.get(kind, kind)} (`{kind}`){one_of}")
        for value, label in choices(spec):
            body.append(f"    - {show(value)}" + (f": {label}" if label else ""))
        body.append(f"- **Default:** {default_sentence}")
        when = spec.get("when")
        if when is not None:
            condition = TAG.sub(lambda m: m[0][2:-2].strip(), str(when)).strip()
            body.append(
                f"- **Asked:** only when `{condition}`; otherwise copier does not ask it and "
                "uses the default."
            )
        for text in messages(str(spec.get("validator", ""))):
            body.append(f"- **Refused, with the message:** {text}")
        body.append(f"- **Adds:** {adds[name]}")
        sections += ["", *body]
    return "\n".join([*lines, *sections]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="only compare; exit 1 when the page is stale"
    )
    args = parser.parse_args(argv)
    try:
        page = render(yaml.safe_load(COPIER_FILE.read_text(encoding="utf-8")))
    except MissingEntry as error:
        print(error, file=sys.stderr)
        return 1
    relative = OUTPUT.relative_to(ROOT)
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != page:
            print(f"{relative} is out of date; run: {COMMAND}", file=sys.stderr)
            return 1
        print(f"{relative} is up to date")
        return 0
    OUTPUT.write_text(page, encoding="utf-8")
    print(f"wrote {relative}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
