"""The generated scripts/update_pull_request.py against a real git remote (a bare repository
on disk) holding a service generated at 0.1.0 with a team's edits. The script runs as the
scheduled job runs it, in a fresh clone, up to the API call (`--publish none`).

Run 1 pushes template-update/<next>: the service on it passes its checks, the body has the
template's changelog entries after 0.1.0 and "No conflicts". Then the team pushes an edit
to a template-owned line the update changes; run 2 refreshes the same branch (one branch,
force-with-lease), lists the file and marks the change as a draft.
Only committed work is tested: commit before running this.
"""

import importlib.util
import sys
from pathlib import Path

import pytest
from support import (
    NEXT,
    REPO_ROOT,
    check,
    clean_env,
    commit_all,
    find_python,
    git,
    rendered_answers,
)
from team_work import Service, edit_docs, edit_tooling, generate

spec = importlib.util.spec_from_file_location(
    "update_pull_request", REPO_ROOT / "template" / "scripts" / "update_pull_request.py"
)
assert spec is not None and spec.loader is not None
script = importlib.util.module_from_spec(spec)
sys.modules["update_pull_request"] = script  # dataclasses look their module up there
spec.loader.exec_module(script)

OLD = "0.1.0"
BRANCH = f"template-update/{NEXT}"
ANSWERS = {"project_name": "Payments", "database": "sqlite", "ci": "github"}


def heads(remote: Path) -> dict[str, str]:
    output = git(remote, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads")
    return dict(line.split() for line in output.splitlines())


def update_pull_request(template: Path, work: Path) -> tuple[str, str]:
    """The script as the job runs it; its output and the body it wrote."""
    script = template / "template" / "scripts" / "update_pull_request.py"
    env = clean_env(UV_PYTHON=find_python("3.12"))
    output = check(["python3", str(script), "--publish", "none"], work, env, timeout=600)
    body = (work / ".git" / "template-update-body.md").read_text()
    return output, body


def fresh_clone(remote: Path, destination: Path, branch: str = "main") -> Path:
    git(remote.parent, "clone", "--quiet", "--branch", branch, str(remote), str(destination))
    return destination


@pytest.mark.slow
def test_update_pull_requests_on_a_local_remote(template: Path, tmp_path: Path) -> None:
    project = generate(template, tmp_path / "service", ANSWERS, OLD)
    service = Service(project, "payments", rendered_answers(project))
    edit_tooling(service)
    edit_docs(service)
    check(["uv", "lock", "--quiet"], project, clean_env(UV_PYTHON=find_python("3.12")))
    commit_all(project, "Team work, with its lock")
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(remote))
    git(project, "push", "--quiet", str(remote), "main")

    # Run 1: a clean update.
    output, body = update_pull_request(template, fresh_clone(remote, tmp_path / "run1"))
    first = heads(remote)
    assert set(first) == {"main", BRANCH}, output
    assert f"**{OLD}** to **{NEXT}**" in body
    assert "No conflicts." in body
    assert "Draft" not in body and "--draft" not in output
    for name in ("uv sync --locked", "ruff check", "ruff format --check", "mypy", "pytest"):
        assert f"| `{name}` | passed |" in body, body
    # The template's changelog after 0.1.0, up to the new version, and nothing older.
    assert "### 0.2.0 (" in body and f"### {NEXT} " in body
    assert "`make update` (`scripts/update_template.py`)" in body
    assert "### 0.1.0" not in body
    # The branch holds the updated service with the team's edits, and it passes its checks
    # as a checkout of the branch (the script ran them on this very commit).
    checkout = fresh_clone(remote, tmp_path / "checkout", BRANCH)
    assert f"_commit: {NEXT}" in (checkout / ".copier-answers.yml").read_text()
    assert "      - run: make seed\n" in (checkout / ".github/workflows/ci.yml").read_text()
    assert (checkout / "scripts" / "update_pull_request.py").exists()
    env = clean_env(UV_PYTHON=find_python("3.12"))
    check(["uv", "sync", "--locked", "--quiet"], checkout, env)
    check(["uv", "run", "--no-sync", "pytest", "-q", "-p", "no:cacheprovider"], checkout, env)

    # The team edits a line the update changes (0.1.0 upgrades `head`; later, `heads`).
    team = fresh_clone(remote, tmp_path / "team")
    makefile = team / "Makefile"
    old_line = "\tuv run alembic upgrade head\n"
    assert old_line in makefile.read_text()
    makefile.write_text(
        makefile.read_text().replace(old_line, "\tuv run alembic upgrade head --tag ours\n")
    )
    commit_all(team, "Tag our migrations")
    git(team, "push", "--quiet", "origin", "main")

    # Run 2: the same branch, refreshed on the new main, now a draft listing the conflict.
    output, body = update_pull_request(template, fresh_clone(remote, tmp_path / "run2"))
    second = heads(remote)
    assert set(second) == {"main", BRANCH}
    assert second[BRANCH] != first[BRANCH]
    assert git(remote, "rev-parse", f"{BRANCH}^").strip() == second["main"]
    assert "**Draft:** 1 file(s) with conflicts" in body
    assert "- `Makefile`" in body
    assert "No conflicts." not in body
    assert "--draft" in output
    assert f"Branch {BRANCH}: refreshed" in output
    committed = git(remote, "show", f"{BRANCH}:Makefile")
    assert "<<<<<<< before updating" in committed  # committed as it is, for the team to resolve


CHANGELOG = """# Changelog

## 1.1.0 (unreleased)

### Added
- Eleven.

## 1.0.0 (2026-02-01)

### Upgrading from 0.9.0
- Ten.

## 0.9.0 (2026-01-01)
- Nine.
"""


def test_the_changelog_entries_are_those_after_the_old_version_up_to_the_new() -> None:
    entries = script.changelog_entries(CHANGELOG, "0.9.0", "1.0.0")
    assert entries.splitlines() == [
        "### 1.0.0 (2026-02-01)",
        "",
        "#### Upgrading from 0.9.0",
        "- Ten.",
    ]
    assert "Eleven" in script.changelog_entries(CHANGELOG, "0.9.0", "1.1.0")
    assert "Nine" not in script.changelog_entries(CHANGELOG, "0.9.0", "1.1.0")


def test_the_newest_release_is_the_highest_final_version(tmp_path: Path) -> None:
    repo = tmp_path / "template"
    git(tmp_path, "init", "--quiet", str(repo))
    git(repo, "commit", "--quiet", "--allow-empty", "-m", "one")
    for tag in ("0.2.0", "0.10.0", "v0.9.1", "1.0.0rc1", "nightly"):
        git(repo, "tag", tag)
    assert script.release_tags(str(repo)) == ["0.2.0", "v0.9.1", "0.10.0"]


def test_a_branch_someone_pushed_to_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "--quiet", "--bare", str(remote))
    work = tmp_path / "work"
    git(tmp_path, "init", "--quiet", "--initial-branch=main", str(work))
    git(work, "remote", "add", "origin", str(remote))
    git(work, "commit", "--quiet", "--allow-empty", "-m", "base")
    monkeypatch.chdir(work)
    result = script.Result(old="0.1.0", new="0.2.0", base="main", branch=BRANCH, src="x")
    message = script.commit_message(result)
    git(work, "checkout", "--quiet", "-b", BRANCH)
    git(work, "commit", "--quiet", "--allow-empty", "-m", message)
    script.push(result, "origin", push_branch=True)
    assert result.pushed == "pushed"
    # The same result again: nothing to push.
    git(work, "reset", "--quiet", "--hard", "main")
    git(work, "commit", "--quiet", "--allow-empty", "-m", message)
    script.push(result, "origin", push_branch=True)
    assert result.pushed == "unchanged"
    # A person fixes the conflicts on the branch; the next run must not throw that away.
    git(work, "commit", "--quiet", "--allow-empty", "-m", "Resolve the Makefile")
    git(work, "push", "--quiet", "origin", BRANCH)
    fixed = heads(remote)[BRANCH]
    git(work, "reset", "--quiet", "--hard", "main")
    git(work, "commit", "--quiet", "--allow-empty", "-m", message)
    with pytest.raises(script.Failure, match="commits that this script did not make"):
        script.push(result, "origin", push_branch=True)
    assert heads(remote)[BRANCH] == fixed
