"""AGENTS.md, the guide in every service, is true for its answer set: every path it names
(in backticks) exists in the rendered service, every `make <target>` is a target of its
Makefile, and it says nothing about parts the answers left out."""

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from support import answer_sets

IDS = [answer_set.id for answer_set in answer_sets()]
Rendered = dict[str, tuple[Path, dict[str, Any]]]

# Made on a developer's machine (`make install`, `cp .env.example .env`), never rendered.
LOCAL_ONLY = {".env", ".venv/", "uv.lock"}
FILE_NAME = re.compile(r"^\.?[\w.-]*\w\.(py|md|ya?ml|toml|ini|json|lock|cfg|txt|mako|example)$")
DOTFILE = re.compile(r"^\.[\w.-]+/?$")
MAKE_TARGET = re.compile(r"^([A-Za-z][\w-]*)\s*:(?!=)", re.MULTILINE)
MAX_LINES = 120


def backticked(text: str) -> list[str]:
    return re.findall(r"`([^`\n]+)`", text)


def is_path(span: str) -> bool:
    """A file or directory of the repository: `src/x/main.py`, `.env.example`, `Makefile`.
    Code (`create_app()`), commands (`make test`) and URL paths (`/api/v1`) are not."""
    if re.search(r"\s|[()=\"']", span) or span.startswith("/"):
        return False
    return (
        "/" in span
        or bool(FILE_NAME.match(span) or DOTFILE.match(span))
        or span in {"Makefile", "Dockerfile"}
    )


def path_exists(project: Path, span: str) -> bool:
    if span in LOCAL_ONLY:
        return True
    # A placeholder (`features/<name>/router.py`): the part before it must exist.
    if "<" in span:
        prefix = span.split("<", 1)[0]
        return prefix.endswith("/") and (project / prefix).is_dir()
    if "*" in span:
        return any(project.glob(span))
    path = project / span
    return path.is_dir() if span.endswith("/") else path.is_file()


def makefile_targets(project: Path) -> set[str]:
    return set(MAKE_TARGET.findall((project / "Makefile").read_text()))


def guide_problems(text: str, project: Path) -> list[str]:
    """What the guide names that the project does not have."""
    targets = makefile_targets(project)
    problems = []
    for span in backticked(text):
        if span.startswith("make "):
            target = span.split()[1]
            if target not in targets:
                problems.append(f"`{span}`: no target {target!r} in the Makefile")
        elif is_path(span) and not path_exists(project, span):
            problems.append(f"`{span}`: no such file or directory")
    lines = text.splitlines()
    if len(lines) >= MAX_LINES:
        problems.append(f"{len(lines)} lines: keep it under {MAX_LINES}")
    if "\n\n\n" in text or text.startswith("\n") or not text.endswith("\n"):
        problems.append("blank-line debris")
    return problems


def test_the_checker_finds_what_does_not_exist(tmp_path: Path) -> None:
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "main.py").write_text("")
    (tmp_path / ".env.example").write_text("")
    (tmp_path / "Makefile").write_text(
        ".PHONY: test\ntest:  ## tests\n\tuv run pytest\nVERSION := 1\n"
    )
    mixed = (
        "See `src/pkg/main.py`, `src/pkg/`, `src/pkg/features/<name>/` is not there, "
        "`.env.example`, `uv.lock`, `create_app()`, `/api/v1`, `router = APIRouter()`; "
        "run `make test`.\n"
    )
    problems = guide_problems(mixed, tmp_path)
    assert problems == ["`src/pkg/features/<name>/`: no such file or directory"]
    bad = (
        "Edit `src/pkg/config.py` and `migrations/versions/*.py`, read `.gitlab-ci.yml`, "
        "`Makefile` and `tests/`, then `make migrate`, `make VERSION` and `make test`.\n\n\n"
    )
    assert guide_problems(bad, tmp_path) == [
        "`src/pkg/config.py`: no such file or directory",
        "`migrations/versions/*.py`: no such file or directory",
        "`.gitlab-ci.yml`: no such file or directory",
        "`tests/`: no such file or directory",
        "`make migrate`: no target 'migrate' in the Makefile",
        "`make VERSION`: no target 'VERSION' in the Makefile",
        "blank-line debris",
    ]


def test_the_checker_fails_when_a_service_loses_what_its_guide_names(
    rendered_sets: Rendered, tmp_path: Path
) -> None:
    rendered, _ = rendered_sets["everything-on"]
    project = tmp_path / "service"
    shutil.copytree(rendered, project, ignore=shutil.ignore_patterns(".git"))
    text = (project / "AGENTS.md").read_text()
    assert guide_problems(text, project) == []
    (project / "scripts" / "update_template.py").unlink()
    shutil.rmtree(project / "deploy" / "overlays")
    makefile = project / "Makefile"
    makefile.write_text(re.sub(r"^revision:.*$", "", makefile.read_text(), flags=re.MULTILINE))
    problems = guide_problems(text, project)
    assert "`scripts/update_template.py`: no such file or directory" in problems
    assert "`deploy/overlays/`: no such file or directory" in problems
    assert any(problem.startswith("`make revision") for problem in problems)


@pytest.mark.parametrize("set_id", IDS)
def test_the_guide_names_only_what_the_service_has(rendered_sets: Rendered, set_id: str) -> None:
    project, answers = rendered_sets[set_id]
    text = (project / "AGENTS.md").read_text()
    assert guide_problems(text, project) == []
    # The parts the answers left out are not mentioned at all.
    lowered = text.lower()
    if answers["database"] == "none":
        assert "migrat" not in lowered and "alembic" not in lowered
        assert "repository" not in lowered and "database" not in lowered
    if answers["auth"] == "none":
        assert "security" not in lowered
        assert "/auth/" not in text and "api_keys" not in text
    if not answers["redis"]:
        assert "redis" not in lowered
    if not answers["devcontainer"]:
        assert "devcontainer" not in lowered
    if not answers["kubernetes"]:
        assert "deploy/" not in text
    # The sections a newcomer looks for.
    for heading in ("## Layout and ownership", "## Commands", "## Adding a feature", "## Never"):
        assert heading in text
    assert ("## Migrations" in text) == (answers["database"] != "none")
    # Found from the README, and named as the template's in the layout.
    assert "`AGENTS.md`" in (project / "README.md").read_text()
