"""The generated scripts/update_pull_request.py against a real git remote (a bare repository
on disk) holding a service generated at 0.1.0 with a team's edits. The script runs as the
scheduled job runs it, in a fresh clone, up to the API call (`--publish none`).

Run 1 pushes template-update/<next>: the service on it passes its checks, the body has the
template's changelog entries after 0.1.0 and "No conflicts". Then the team pushes an edit
to a template-owned line the update changes; run 2 refreshes the same branch (one branch,
force-with-lease), lists the file and marks the change as a draft.
Only committed work is tested: commit before running this.
"""

from pathlib import Path

import pytest
from support import NEXT, check, clean_env, commit_all, find_python, git, rendered_answers
from team_work import Service, edit_docs, edit_tooling, generate

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
