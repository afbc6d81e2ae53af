from pathlib import Path
from typing import Any

import pytest
from support import answer_sets, render, rendered_answers


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
