"""The generated `make update` merges pyproject.toml's dependency lists by name."""

import importlib.util
import sys
import tomllib
from pathlib import Path

import pytest
from support import REPO_ROOT

spec = importlib.util.spec_from_file_location(
    "update_template", REPO_ROOT / "template" / "scripts" / "update_template.py"
)
assert spec is not None and spec.loader is not None
update_template = importlib.util.module_from_spec(spec)
sys.modules["update_template"] = update_template  # dataclasses look their module up there
spec.loader.exec_module(update_template)


def pyproject(dependencies: list[str], dev: list[str] | None = None) -> str:
    """A pyproject.toml with the template's layout: comments around the entries."""
    lines = ["[project]", 'name = "svc"', "dependencies = ["]
    lines += ["    # The template's.", *[f'    "{d}",' for d in dependencies], "]", ""]
    if dev is not None:
        lines += ["[dependency-groups]", "dev = [", *[f'    "{d}",' for d in dev], "]", ""]
    lines += ["[tool.ruff]", "line-length = 100"]
    return "\n".join(lines) + "\n"


def merged(base: str, ours: str, theirs: str, text: str | None = None) -> str:
    """The merge of `text` (copier's result; the template's file when not given)."""
    return update_template.merge_dependencies(text or theirs, base, ours, theirs)


def requirements(text: str, group: str | None = None) -> list[str]:
    data = tomllib.loads(text)
    if group is None:
        return data["project"]["dependencies"]
    return data["dependency-groups"][group]


def test_yours_are_kept_after_the_templates_new_entries() -> None:
    base = pyproject(["fastapi>=0.115", "asyncpg>=0.30"])
    ours = pyproject(["fastapi>=0.115", "asyncpg>=0.30", "tenacity>=9.0"])
    theirs = pyproject(["fastapi>=0.142", "orjson>=3.10", "asyncpg>=0.30"])
    result = merged(base, ours, theirs)
    assert requirements(result) == [
        "fastapi>=0.142",
        "orjson>=3.10",
        "asyncpg>=0.30",
        "tenacity>=9.0",
    ]
    assert "    # The template's." in result
    assert "line-length = 100" in result


def test_a_bound_you_raised_stays_unless_the_template_changed_it_too() -> None:
    base = pyproject(["fastapi>=0.115", "asyncpg>=0.30"])
    ours = pyproject(["fastapi>=0.120", "asyncpg>=0.31"])
    theirs = pyproject(["fastapi>=0.142", "asyncpg>=0.30"])
    result = merged(base, ours, theirs)
    assert "asyncpg>=0.31" in result
    assert result.count("<<<<<<< before updating") == 1
    block = result.split("<<<<<<< before updating")[1].split(">>>>>>> after updating")[0]
    assert "fastapi>=0.120" in block and "fastapi>=0.142" in block


def test_removals_on_either_side() -> None:
    base = pyproject(["fastapi>=0.115", "gunicorn>=23", "structlog>=24"])
    ours = pyproject(["fastapi>=0.115", "structlog>=24.4"])  # removed gunicorn, changed structlog
    theirs = pyproject(["fastapi>=0.115", "gunicorn>=23"])  # removed structlog
    result = merged(base, ours, theirs)
    assert "gunicorn" not in result
    block = result.split("<<<<<<< before updating")[1].split(">>>>>>> after updating")[0]
    assert "structlog>=24.4" in block  # you changed what the template dropped: yours, marked


def test_an_entry_both_added_is_listed_once_as_yours() -> None:
    base = pyproject(["fastapi>=0.115"])
    ours = pyproject(["fastapi>=0.115", "httpx>=0.28.1"])
    theirs = pyproject(["fastapi>=0.115", "httpx>=0.28"])
    assert requirements(merged(base, ours, theirs)) == ["fastapi>=0.115", "httpx>=0.28.1"]


def test_every_group_is_merged_and_names_are_normalised() -> None:
    base = pyproject(["fastapi>=0.115"], dev=["pytest>=8.3"])
    ours = pyproject(["fastapi>=0.115"], dev=["pytest>=8.3", "Pytest_Timeout>=2.4"])
    theirs = pyproject(["fastapi>=0.115"], dev=["pytest>=8.4", "pytest-timeout>=2.3"])
    result = merged(base, ours, theirs)
    assert requirements(result, "dev") == ["pytest>=8.4", "Pytest_Timeout>=2.4"]
    assert update_template.requirement_name("Foo.Bar[x]>=1; python_version>'3.11'") == "foo-bar"


def test_copiers_conflict_blocks_are_replaced_by_the_merge() -> None:
    base = pyproject(["fastapi>=0.115", "asyncpg>=0.30"])
    ours = pyproject(["fastapi>=0.115", "asyncpg>=0.30", "tenacity>=9.0"])
    theirs = pyproject(["fastapi>=0.115", "asyncpg>=0.30", "redis>=6.0"])
    text_merge = theirs.replace(
        '    "redis>=6.0",\n',
        '<<<<<<< before updating\n    "tenacity>=9.0",\n=======\n    "redis>=6.0",\n'
        ">>>>>>> after updating\n",
    )
    assert update_template.needs_dependency_merge(text_merge)
    result = merged(base, ours, theirs, text_merge)
    assert not update_template.needs_dependency_merge(result)
    assert requirements(result) == [
        "fastapi>=0.115",
        "asyncpg>=0.30",
        "redis>=6.0",
        "tenacity>=9.0",
    ]


def test_an_entry_listed_twice_needs_the_merge_and_a_clean_file_does_not() -> None:
    clean = pyproject(["fastapi>=0.115", "httpx>=0.28"])
    assert not update_template.needs_dependency_merge(clean)
    assert update_template.needs_dependency_merge(pyproject(["httpx>=0.28", "httpx>=0.28.1"]))


def test_a_conflict_that_spans_the_closing_bracket_is_left_to_you() -> None:
    base = pyproject(["fastapi>=0.115"])
    theirs = pyproject(["fastapi>=0.142"])
    text_merge = theirs.replace(
        '    "fastapi>=0.142",\n]\n',
        '<<<<<<< before updating\n    "fastapi>=0.115",\n]\n=======\n    "fastapi>=0.142",\n]\n'
        ">>>>>>> after updating\n",
    )
    assert merged(base, base, theirs, text_merge) == text_merge


@pytest.mark.parametrize(
    ("source", "accepted"),
    [("https://github.com/org/template.git", True), ("gh:org/template", True), (".", False)],
)
def test_a_source_that_is_the_service_itself_is_refused(
    tmp_path: Path, source: str, accepted: bool
) -> None:
    if accepted:
        update_template.check_source(tmp_path, source)
    else:
        with pytest.raises(SystemExit, match=r"`_src_path: \.`"):
            update_template.check_source(tmp_path, source)
