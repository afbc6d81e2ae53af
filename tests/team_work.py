"""What a team does to a generated service in its first weeks, for the update tests.

Each edit is made the way the service's own documentation says at the version the service
was generated with: a service from before feature extension points adds its setting to
config.py and its client to main.RESOURCES; a later one uses features/<name>/settings.py and
resources.py. Dependencies are added with `uv add`, migrations written by `make revision`.
Every edit returns the text that must survive an update, by path.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import copier
import yaml
from support import (
    NEXT,
    admin_sql,
    check,
    clean_env,
    commit_all,
    find_python,
    git,
    render,
    rendered_answers,
)

# Runs in the service's venv: rows in, or the rows' count and an API answer out.
DATABASE_SQL = """
import asyncio, json, os, sys
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

async def main(statements):
    engine = create_async_engine(os.environ["DATABASE_URL"])
    results = []
    async with engine.begin() as connection:
        for statement in statements:
            result = await connection.execute(text(statement))
            rows = result.all() if result.returns_rows else None
            results.append([list(map(str, row)) for row in rows] if rows is not None else None)
    await engine.dispose()
    print(json.dumps(results))

asyncio.run(main(sys.argv[1:]))
"""
CALL_API = """
import asyncio, json, sys
from httpx import ASGITransport, AsyncClient
from {package}.config import Settings
from {package}.main import create_app

async def main(path):
    app = create_app(Settings(_env_file=None, environment="test"))
    async with app.router.lifespan_context(app):
        transport = ASGITransport(app=app)
        async with AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.get(path)
    print(json.dumps([response.status_code, response.text]))  # last line; logs come before

asyncio.run(main(sys.argv[1]))
"""


@dataclass
class Service:
    path: Path
    package: str
    answers: dict[str, Any]
    database_url: str = ""
    database_name: str = ""
    survivors: dict[str, list[str]] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return clean_env(DATABASE_URL=self.database_url) if self.database_url else clean_env()

    @property
    def has_extension_points(self) -> bool:
        features = (self.path / "src" / self.package / "core" / "features.py").read_text()
        return "discover_resources" in features

    def keep(self, path: str, *texts: str) -> None:
        self.survivors.setdefault(path, []).extend(texts)

    def run(self, *cmd: str, env: dict[str, str] | None = None) -> str:
        return check(list(cmd), self.path, env or self.env)

    def python(self, code: str, *args: str) -> str:
        return self.run("uv", "run", "--no-sync", "python", "-c", code, *args)

    def sql(self, *statements: str) -> list[Any]:
        """Each statement's rows (None for statements without rows), in one transaction."""
        import json

        return json.loads(self.python(DATABASE_SQL, *statements).splitlines()[-1])

    def get(self, path: str) -> tuple[int, str]:
        import json

        output = self.python(CALL_API.format(package=self.package), path)
        status, body = json.loads(output.splitlines()[-1])
        return status, body


def open_service(path: Path, tmp_path: Path) -> Service:
    """Install a freshly rendered service and give it a database of its own."""
    answers = rendered_answers(path)
    service = Service(path, answers["package_name"], answers)
    service.run("uv", "sync", "--python", find_python(answers["python_version"]))
    if answers["database"] == "postgresql":
        service.database_name = f"tmpl_update_{uuid.uuid4().hex[:12]}"
        admin_sql(path, f'CREATE DATABASE "{service.database_name}"')
        service.database_url = (
            f"postgresql+asyncpg://postgres@127.0.0.1:5432/{service.database_name}"
        )
    elif answers["database"] == "sqlite":
        service.database_url = f"sqlite+aiosqlite:///{tmp_path / 'service.db'}"
    return service


def drop_database(service: Service) -> None:
    if service.database_name:
        admin_sql(service.path, f'DROP DATABASE IF EXISTS "{service.database_name}" WITH (FORCE)')


def migrate(service: Service) -> None:
    """`make migrate`, as the service's Makefile writes it."""
    service.run("make", "migrate")


def make_revision(service: Service, message: str) -> Path:
    """`make revision`; a service from before revisions were written importable and lint-clean
    needs the hand fixes its team would have made."""
    versions = service.path / "migrations" / "versions"
    before = set(versions.glob("*.py"))
    service.run("make", "revision", f"m={message}")
    (written,) = set(versions.glob("*.py")) - before
    if "ruff_fix" in (service.path / "alembic.ini").read_text():
        return written  # written importable and lint-clean: nothing to repair
    # The repairs a team made by hand: an import for the type rendered with a module path,
    # then `make format` for the import order ruff's check found.
    prefix = re.escape(f"{service.package}.core.database.")
    text = re.sub(
        prefix + r"UTCDateTime\([^)]*\)", "sa.DateTime(timezone=True)", written.read_text()
    )
    written.write_text(text)
    service.run("uv", "run", "--no-sync", "ruff", "check", "--fix", "--quiet", str(written))
    service.run("uv", "run", "--no-sync", "ruff", "format", "--quiet", str(written))
    return written


def add_dependencies(service: Service) -> None:
    service.run("uv", "add", "--quiet", "httpx", "tenacity")
    service.run("uv", "add", "--quiet", "--dev", "pytest-timeout")
    service.keep("pyproject.toml", '"httpx>=', '"tenacity>=', '"pytest-timeout>=')
    service.keep("uv.lock", 'name = "tenacity"', 'name = "pytest-timeout"')


ORDERS_MODEL = '''"""Orders placed through the payment gateway."""

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from ...core.database import Base, UTCDateTime, utcnow


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(40), unique=True)
    total_cents: Mapped[int]
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
'''

ORDERS_GATEWAY = '''"""The payment gateway's HTTP client: one per process, opened at startup."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request

from ...config import Settings
{settings_import}


@asynccontextmanager
async def open_gateway(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    {settings_line}
    async with httpx.AsyncClient(
        base_url=gateway_url, timeout=gateway_timeout
    ) as client:
        app.state.orders_gateway = client
        yield


async def get_gateway(request: Request) -> httpx.AsyncClient:
    client: httpx.AsyncClient = request.app.state.orders_gateway
    return client
'''

ORDERS_ROUTER = """from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, status
from pydantic import BaseModel
from sqlalchemy import select

from ...core.database import SessionDep
from .{gateway_module} import get_gateway
from .models import Order

router = APIRouter(prefix="/api/v1/orders", tags=["orders"])


class OrderIn(BaseModel):
    reference: str
    total_cents: int


class OrderOut(OrderIn):
    id: int


@router.post("", status_code=status.HTTP_201_CREATED)
async def place_order(data: OrderIn, session: SessionDep) -> OrderOut:
    order = Order(reference=data.reference, total_cents=data.total_cents)
    session.add(order)
    await session.flush()
    return OrderOut(id=order.id, reference=order.reference, total_cents=order.total_cents)


@router.get("")
async def list_orders(session: SessionDep) -> list[OrderOut]:
    orders = (await session.scalars(select(Order).order_by(Order.id))).all()
    return [OrderOut(id=o.id, reference=o.reference, total_cents=o.total_cents) for o in orders]


@router.get("/gateway")
async def gateway(
    client: Annotated[httpx.AsyncClient, Depends(get_gateway)],
) -> dict[str, str]:
    return {{"base_url": str(client.base_url)}}
"""

ORDERS_TESTS = """from httpx import AsyncClient


async def test_an_order_is_placed_and_listed(client: AsyncClient) -> None:
    response = await client.post("/api/v1/orders", json={"reference": "A-1", "total_cents": 990})
    assert response.status_code == 201, response.text
    listed = await client.get("/api/v1/orders")
    assert [order["reference"] for order in listed.json()] == ["A-1"]


async def test_the_gateway_client_uses_its_setting(client: AsyncClient) -> None:
    response = await client.get("/api/v1/orders/gateway")
    assert response.json() == {"base_url": "https://gateway.example.com"}
"""

ORDERS_SETTINGS = '''"""The orders feature's settings: ORDERS_* in the environment."""

from pydantic_settings import SettingsConfigDict

from ...core.features import FeatureSettings


class OrdersSettings(FeatureSettings):
    model_config = SettingsConfigDict(env_prefix="ORDERS_")

    gateway_url: str = "https://gateway.example.com"
    gateway_timeout: float = 5.0
'''


def add_orders_feature(service: Service) -> None:
    """A feature with a table, a setting and a per-process client, and its migration."""
    package = service.path / "src" / service.package
    feature = package / "features" / "orders"
    feature.mkdir()
    (feature / "__init__.py").write_text("")
    (feature / "models.py").write_text(ORDERS_MODEL)
    if service.has_extension_points:
        (feature / "settings.py").write_text(ORDERS_SETTINGS)
        gateway = ORDERS_GATEWAY.format(
            settings_import="from ...core.features import Resource, get_feature_settings\n"
            "from .settings import OrdersSettings",
            settings_line="own = get_feature_settings(app, OrdersSettings)\n"
            "    gateway_url, gateway_timeout = own.gateway_url, own.gateway_timeout",
        )
        gateway += "\n\nRESOURCES: list[Resource] = [open_gateway]\n"
        (feature / "resources.py").write_text(gateway)
        service.keep(f"src/{service.package}/features/orders/resources.py", "RESOURCES")
        gateway_module = "resources"
    else:
        # The only ways this version offered: the service's Settings and main.RESOURCES.
        config = package / "config.py"
        text = config.read_text()
        last_field = "    readiness_timeout: float = Field(default=2.0, gt=0)\n"
        assert last_field in text
        setting = (
            "\n    # The payment gateway of the orders feature.\n"
            '    orders_gateway_url: str = "https://gateway.example.com"\n'
            "    orders_gateway_timeout: float = 5.0\n"
        )
        config.write_text(text.replace(last_field, last_field + setting))
        service.keep(f"src/{service.package}/config.py", "orders_gateway_url: str")
        gateway = ORDERS_GATEWAY.format(
            settings_import="",
            settings_line="gateway_url = settings.orders_gateway_url\n"
            "    gateway_timeout = settings.orders_gateway_timeout",
        ).replace("from ...config import Settings\n\n\n", "from ...config import Settings\n\n")
        (feature / "client.py").write_text(gateway)
        main = package / "main.py"
        text = main.read_text()
        text = text.replace(
            "from .core.middleware import add_middleware\n",
            "from .core.middleware import add_middleware\n"
            "from .features.orders.client import open_gateway\n",
        )
        text = text.replace("    open_database,\n", "    open_database,\n    open_gateway,\n")
        main.write_text(text)
        service.keep(
            f"src/{service.package}/main.py",
            "from .features.orders.client import open_gateway",
            "    open_gateway,\n",
        )
        gateway_module = "client"
    (feature / "router.py").write_text(ORDERS_ROUTER.format(gateway_module=gateway_module))
    tests = service.path / "tests" / "features" / "orders"
    tests.mkdir()
    (tests / "__init__.py").write_text("")
    (tests / "test_orders.py").write_text(ORDERS_TESTS)
    for folder in (feature, tests):  # `make format`, as a team runs it before committing
        service.run("uv", "run", "--no-sync", "ruff", "check", "--fix", "--quiet", str(folder))
        service.run("uv", "run", "--no-sync", "ruff", "format", "--quiet", str(folder))
    written = make_revision(service, "add orders")
    migrate(service)
    service.keep(str(written.relative_to(service.path)), 'op.create_table(\n        "orders"')
    service.keep("tests/features/orders/test_orders.py", "test_the_gateway_client_uses_its_setting")


def add_item_priority(service: Service) -> None:
    """A field added to the example model, its schemas, a test, and its migration."""
    items = service.path / "src" / service.package / "features" / "items"
    models = items / "models.py"
    models.write_text(
        models.read_text().rstrip("\n")
        + '\n    priority: Mapped[int] = mapped_column(default=0, server_default="0")\n'
    )
    schemas = items / "schemas.py"
    text = schemas.read_text()
    text = text.replace(
        "    description: str | None = Field(default=None, max_length=1000)\n\n\nclass ItemUpdate",
        "    description: str | None = Field(default=None, max_length=1000)\n"
        "    priority: int = Field(default=0, ge=0, le=9)\n\n\nclass ItemUpdate",
    )
    text = text.replace(
        "    updated_at: datetime\n", "    updated_at: datetime\n    priority: int\n", 1
    )
    schemas.write_text(text)
    service.keep(f"src/{service.package}/features/items/models.py", "priority: Mapped[int]")
    service.keep(f"src/{service.package}/features/items/schemas.py", "priority: int = Field(")
    test = service.path / "tests" / "features" / "items" / "test_item_priority.py"
    test.write_text(
        "from httpx import AsyncClient\n\n\n"
        "async def test_priority_round_trips(client: AsyncClient) -> None:\n"
        '    response = await client.post("/api/v1/items", json={"name": "P", "priority": 3})\n'
        "    assert response.status_code == 201, response.text\n"
        '    assert response.json()["priority"] == 3\n'
    )
    written = make_revision(service, "item priority")
    migrate(service)
    service.keep(str(written.relative_to(service.path)), '"priority"')


def edit_tooling(service: Service) -> None:
    """A Makefile target, an ignore line, a ruff rule turned off, a CI step."""
    makefile = service.path / "Makefile"
    lines = makefile.read_text().splitlines()
    assert lines[0].startswith(".PHONY:")
    lines[0] += " seed"
    makefile.write_text(
        "\n".join(lines) + "\n\nseed:  ## Demo data\n\tuv run python -c \"print('seeded')\"\n"
    )
    service.keep("Makefile", " seed\n", "seed:  ## Demo data")

    gitignore = service.path / ".gitignore"
    gitignore.write_text(gitignore.read_text() + "/notes/\n")
    service.keep(".gitignore", "/notes/\n")

    pyproject = service.path / "pyproject.toml"
    text = pyproject.read_text()
    anchor = '    "UP047",\n'
    assert anchor in text
    pyproject.write_text(text.replace(anchor, anchor + '    "RUF012",  # our own choice\n'))
    service.keep("pyproject.toml", '"RUF012",  # our own choice')

    workflow = service.path / ".github" / "workflows" / "ci.yml"
    gitlab = service.path / ".gitlab-ci.yml"
    if workflow.exists():
        text = workflow.read_text()
        step = "      - run: uv run pytest\n"
        workflow.write_text(text.replace(step, step + "      - run: make seed\n", 1))
        service.keep(".github/workflows/ci.yml", "      - run: make seed\n")
    elif gitlab.exists():
        text = gitlab.read_text()
        step = "    - uv run pytest\n"
        gitlab.write_text(text.replace(step, step + "    - make seed\n", 1))
        service.keep(".gitlab-ci.yml", "    - make seed\n")


def edit_docs(service: Service) -> None:
    readme = service.path / "README.md"
    text = readme.read_text()
    description = service.answers["description"]
    assert f"\n{description}\n" in text
    text = text.replace(f"\n{description}\n", "\nTakes card payments for the shop.\n", 1)
    readme.write_text(text.rstrip("\n") + "\n\n## On-call\n\nPage #payments-oncall.\n")
    service.keep("README.md", "Takes card payments for the shop.", "## On-call")

    env_example = service.path / ".env.example"
    env_example.write_text(
        env_example.read_text() + "\n# Orders\nORDERS_GATEWAY_URL=https://gateway.example.com\n"
    )
    service.keep(".env.example", "ORDERS_GATEWAY_URL=https://gateway.example.com")

    guide = service.path / "AGENTS.md"
    if guide.exists():  # since 0.3.0; the team's notes go below its last line
        guide.write_text(guide.read_text() + "\nPayments: amounts are integer cents.\n")
        service.keep("AGENTS.md", "Payments: amounts are integer cents.")


def do_team_work(service: Service) -> None:
    """Everything above, on a migrated database that then holds rows."""
    migrate(service)
    add_dependencies(service)
    add_orders_feature(service)
    if service.answers.get("example_feature"):
        add_item_priority(service)
    edit_tooling(service)
    edit_docs(service)
    insert_rows(service)


def insert_rows(service: Service) -> None:
    statements = [
        "INSERT INTO orders (reference, total_cents, placed_at) VALUES ('OLD-1', 1250, "
        "CURRENT_TIMESTAMP)"
    ]
    if service.answers.get("example_feature"):
        statements.append(
            "INSERT INTO items (name, description, created_at, updated_at, priority) VALUES "
            "('old widget', 'made before the update', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 2)"
        )
    service.sql(*statements)


def conflict_counts(project: Path) -> dict[str, int]:
    """Conflict blocks per file, and .rej files, after an update."""
    counts: dict[str, int] = {}
    for path in project.rglob("*"):
        if ".git" in path.parts or ".venv" in path.parts or not path.is_file():
            continue
        name = str(path.relative_to(project))
        if name.endswith(".rej"):
            counts[name] = counts.get(name, 0) + 1
            continue
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        blocks = len(re.findall(r"^<{7} ", text, flags=re.MULTILINE))
        if blocks:
            counts[name] = blocks
    return counts


def lost_edits(service: Service) -> list[str]:
    lost = []
    for path, texts in service.survivors.items():
        file = service.path / path
        content = file.read_text() if file.exists() else ""
        lost.extend(f"{path}: {text!r}" for text in texts if text not in content)
    return lost


def generate(template: Path, destination: Path, answers: dict[str, Any], version: str) -> Path:
    """A service at `version`, committed with its lock, as a team starts."""
    known = set(yaml.safe_load(git(template, "show", f"{version}:copier.yml")))
    project = render(
        destination,
        {key: value for key, value in answers.items() if key in known},
        src=template,
        vcs_ref=version,
    )
    git(project, "init", "--quiet", "--initial-branch=main")
    commit_all(project, "Generate")
    return project


def update_the_documented_way(service: Service, data: dict[str, Any]) -> str:
    """`make update`; a service from before it existed runs copier update once, as the
    template's docs/updating.md says, and `make update` finishes what that started."""
    args = ["--vcs-ref", NEXT] + [f"-d{key}={value}" for key, value in data.items()]
    if not (service.path / "scripts" / "update_template.py").exists():
        copier.run_update(
            str(service.path),
            vcs_ref=NEXT,
            data=data,
            defaults=True,
            overwrite=True,
            unsafe=False,
            quiet=True,
            conflict="inline",
        )
        args = []
    return check(["make", "update", f"ARGS={' '.join(args)}"], service.path, service.env)


def run_the_checks(service: Service) -> str:
    python = find_python(service.answers["python_version"])
    service.run("uv", "sync", "--locked", "--python", python)
    service.run("uv", "run", "--no-sync", "ruff", "check", ".")
    service.run("uv", "run", "--no-sync", "ruff", "format", "--check", ".")
    service.run("uv", "run", "--no-sync", "mypy")
    return service.run("uv", "run", "--no-sync", "pytest", "-q", "-p", "no:cacheprovider")
