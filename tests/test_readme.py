"""The README's generate command, run exactly as written, makes a service that can update."""

import re
import subprocess
from pathlib import Path

import pytest
from support import REPO_ROOT, check, clean_env, commit_all, find_python, git, rendered_answers


def readme_generate_command() -> str:
    blocks = re.findall(r"```bash\n(.*?)```", (REPO_ROOT / "README.md").read_text(), re.DOTALL)
    (command,) = [line for block in blocks for line in block.splitlines() if "copier copy" in line]
    return command


@pytest.mark.slow
def test_the_readme_generate_command_records_a_source_that_updates(
    template: Path, tmp_path: Path
) -> None:
    command = readme_generate_command()
    checkout = tmp_path / "copier-fastapi-service"  # a checkout of its own, to release from
    git(tmp_path, "clone", "--quiet", str(template), str(checkout))
    for tag in git(template, "tag").split():
        git(checkout, "tag", "--force", tag, git(template, "rev-list", "-n1", tag).strip())
    template = checkout
    subprocess.run(["bash", "-c", command], cwd=template, env=clean_env(), check=True)
    service = template.parent / "my-service"
    assert Path(rendered_answers(service)["_src_path"]).resolve() == template.resolve()
    # `make install`, with this machine's interpreter for the service's Python.
    check(
        ["uv", "sync", "--python", find_python(rendered_answers(service)["python_version"])],
        service,
    )
    git(service, "init", "--quiet", "--initial-branch=main")
    commit_all(service, "Generate")

    # From the service: copier finds the template and its newest release.
    status = check(["uvx", "--from", "copier>=9.4", "copier", "check-update"], service)
    assert "up-to-date" in status
    # A later release of the same template.
    changelog = template / "CHANGELOG.md"
    changelog.write_text(changelog.read_text() + "\n## 99.0.0\n\nA later release.\n")
    commit_all(template, "Release 99.0.0")
    git(template, "tag", "99.0.0")
    output = check(["make", "update"], service)
    assert "to 99.0.0" in output
    assert rendered_answers(service)["_commit"] == "99.0.0"


def test_the_readme_never_records_a_relative_source() -> None:
    command = readme_generate_command()
    assert re.search(r"copier copy (--\S+ )*(\"\$PWD\"|\S+://|gh:)", command), command
