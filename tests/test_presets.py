"""An organisation's preset (presets/example-org.yml) is what `copier copy --data-file`
renders, and `copier update --defaults` keeps it."""

import subprocess
import sys
from pathlib import Path

import yaml
from support import NEXT, REPO_ROOT, commit_all, git, questions, rendered_answers

PRESET = REPO_ROOT / "presets" / "example-org.yml"
COPIER = str(Path(sys.executable).parent / "copier")


def copier(*args: str) -> None:
    result = subprocess.run(
        [COPIER, *args, "--defaults", "--quiet"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def preset() -> dict[str, object]:
    return yaml.safe_load(PRESET.read_text())


def test_the_preset_sets_the_organisations_answers() -> None:
    answers = preset()
    assert {"author_name", "author_email", "ci", "python_version"} <= set(answers)
    assert set(answers) <= set(questions())  # every key is a question copier asks
    # Different from the defaults, so the test below proves the preset was read.
    for name in ("author_name", "author_email", "ci", "python_version", "redis", "tracing"):
        assert answers[name] != questions()[name]["default"], name


def test_a_preset_renders_what_it_says_and_an_update_keeps_it(
    template: Path, tmp_path: Path
) -> None:
    service = tmp_path / "billing-api"
    # The release before HEAD, so the update below has something to bring.
    old = git(template, "describe", "--tags", "--abbrev=0", f"{NEXT}^").strip()
    copier(
        "copy", "--data-file", str(PRESET), "--data", "project_name=Billing API",
        "--vcs-ref", old, str(template), str(service),
    )  # fmt: skip
    answers = rendered_answers(service)
    assert answers["project_name"] == "Billing API"
    for name, value in preset().items():
        assert answers[name] == value, name
    pyproject = (service / "pyproject.toml").read_text()
    assert 'requires-python = ">=3.13"' in pyproject
    assert "payments-platform@example.org" in pyproject
    assert (service / ".gitlab-ci.yml").exists() and not (service / ".github").exists()

    git(service, "init", "--quiet", "--initial-branch=main")
    commit_all(service, "Generate")
    copier("update", "--vcs-ref", NEXT, "--conflict", "inline", str(service))
    updated = rendered_answers(service)
    assert updated["_commit"] == NEXT
    for name, value in preset().items():
        assert updated[name] == value, name
    assert updated["project_name"] == "Billing API"
