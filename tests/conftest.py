import subprocess
from pathlib import Path
from typing import Any

import pytest
from support import NEXT, RELEASES, REPO_ROOT, answer_sets, git, render, rendered_answers


@pytest.fixture(scope="session")
def rendered_sets(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[Path, dict[str, Any]]]:
    """Every matrix answer set rendered once per test process: id -> (project, answers)."""
    root = tmp_path_factory.mktemp("rendered")
    result = {}
    for answer_set in answer_sets():
        project = render(root / answer_set.id, answer_set.answers)
        result[answer_set.id] = (project, rendered_answers(project))
    return result


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clone of this repository's HEAD with the release tags re-created from releases.yml
    (tags do not always travel with the repository) and HEAD tagged as the next release.
    Only committed work is in it."""
    clone = tmp_path_factory.mktemp("template") / "repo"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True)
    for release in RELEASES["releases"]:
        git(clone, "tag", "--force", release["version"], release["commit"])
    git(clone, "tag", "--force", NEXT, "HEAD")
    return clone
