"""The generated dev container: devcontainer.json validates against the dev container spec's
schema (vendored in tests/schemas/, so no network), and it brings what the answers need:
Python of the chosen version with uv, and PostgreSQL and Redis beside it (a compose file,
itself checked against the compose spec) with the settings and the tests pointed at them."""

import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from support import REPO_ROOT, answer_sets

BIN = Path(sys.executable).parent
IDS = [answer_set.id for answer_set in answer_sets()]
Rendered = dict[str, tuple[Path, dict[str, Any]]]
SCHEMA_FILE = REPO_ROOT / "tests" / "schemas" / "devContainer.base.schema.json"


@cache
def validator() -> jsonschema.Draft201909Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


def schema_errors(config: Any) -> list[str]:
    return [error.message for error in validator().iter_errors(config)]


def needs_compose(answers: dict[str, Any]) -> bool:
    return answers["database"] == "postgresql" or bool(answers["redis"])


def test_the_vendored_schema_refuses_a_broken_devcontainer() -> None:
    good = {"image": "python:3.12", "forwardPorts": [8000, "postgres:5432"]}
    assert schema_errors(good) == []
    assert schema_errors({"image": "python:3.12", "forwardPorts": ["port eight thousand"]})
    assert schema_errors({"image": "python:3.12", "postCreateCommand": 42})
    # A compose container names its service; an image one has no compose file.
    assert schema_errors({"dockerComposeFile": "compose.yaml"})
    assert schema_errors({"image": "python:3.12", "dockerComposeFile": "compose.yaml"})


@pytest.mark.parametrize("set_id", IDS)
def test_devcontainer_matches_the_schema_and_the_answers(
    rendered_sets: Rendered, set_id: str
) -> None:
    project, answers = rendered_sets[set_id]
    folder = project / ".devcontainer"
    if not answers["devcontainer"]:
        assert not folder.exists()
        return
    # Plain JSON (the format allows comments; this file has none, so any tool reads it).
    config = json.loads((folder / "devcontainer.json").read_text())
    assert schema_errors(config) == []
    assert config["name"] == answers["project_name"]
    assert 8000 in config["forwardPorts"]
    assert "uv sync" in config["postCreateCommand"]
    assert "install" in config["postCreateCommand"]  # uv itself, before it is used
    image = f"mcr.microsoft.com/devcontainers/python:1-{answers['python_version']}-bookworm"
    assert (folder / "compose.yaml").exists() == needs_compose(answers)
    if not needs_compose(answers):
        assert config["image"] == image
        env = config["containerEnv"]
        assert ("DATABASE_URL" in env) == (answers["database"] == "sqlite")
        assert "REDIS_URL" not in env
        return

    result = subprocess.run(
        [
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(folder / config["dockerComposeFile"]),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    compose = yaml.safe_load((folder / config["dockerComposeFile"]).read_text())
    services = compose["services"]
    expected = {"app"}
    if answers["database"] == "postgresql":
        expected.add("postgres")
    if answers["redis"]:
        expected.add("redis")
    assert set(services) == expected
    assert set(config["runServices"]) == expected
    assert config["service"] == "app"
    app = services["app"]
    assert app["image"] == image
    # The repository is mounted where the editor opens it.
    assert f"..:{config['workspaceFolder']}:cached" in app["volumes"]
    assert set(app["depends_on"]) == expected - {"app"}
    # Every forwarded service port is one of its services.
    for port in config["forwardPorts"]:
        if isinstance(port, str):
            assert port.split(":")[0] in services, port
    env = app["environment"]

    if answers["database"] == "postgresql":
        postgres = services["postgres"]["environment"]
        for name in ("DATABASE_URL", "TEST_ADMIN_DATABASE_URL"):
            url = urlsplit(env[name])
            assert url.scheme == "postgresql+asyncpg"
            assert (url.hostname, url.port) == ("postgres", 5432)
            assert (url.username, url.password) == (
                postgres["POSTGRES_USER"],
                postgres["POSTGRES_PASSWORD"],
            )
        assert urlsplit(env["DATABASE_URL"]).path == f"/{postgres['POSTGRES_DB']}"
        assert "postgres:5432" in config["forwardPorts"]
    elif answers["database"] == "sqlite":
        assert env["DATABASE_URL"].startswith("sqlite+aiosqlite:///")
    else:
        assert "DATABASE_URL" not in env
    if answers["redis"]:
        for name in ("REDIS_URL", "TEST_REDIS_URL"):
            url = urlsplit(env[name])
            assert (url.scheme, url.hostname, url.port) == ("redis", "redis", 6379)
        assert "redis:6379" in config["forwardPorts"]
    else:
        assert "REDIS_URL" not in env
