"""Add a feature to this service from the template: `make feature name=orders`.

Creates src/<package>/features/<name>/ (router, schemas, service and, with a database,
repository and models), its tests in tests/features/<name>/, and, with a database, its
migration on your branch of revisions. It follows this service's answers (.copier-answers.yml)
and the template version the service is at, and records the feature's own answers in
.copier-answers.feature-<name>.yml, so `copier update --answers-file` can update it later.
The files are yours from then on. Options: `make feature name=orders ARGS="--vcs-ref 0.3.0"`;
`-d feature_class=Order` names the model class when the name's singular is not <name> less
its final "s".
"""

from __future__ import annotations

import argparse
import ast
import keyword
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ANSWERS_FILE = ".copier-answers.yml"
VERSIONS = Path("migrations") / "versions"
# The same rule as migrations/env.py: 0001 and these branches come from the template.
INITIAL_REVISION = "0001"
TEMPLATE_BRANCHES = frozenset({"items", "auth", "api_keys"})
IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")


def read_answers() -> dict[str, Any]:
    import yaml  # from copier's environment (`uv run --with copier`)

    loaded = yaml.safe_load(Path(ANSWERS_FILE).read_text())
    return loaded if isinstance(loaded, dict) else {}


def _names(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(item) for item in value) if isinstance(value, list | tuple) else ()


def read_revisions() -> dict[str, dict[str, tuple[str, ...]]]:
    """revision -> its parents, dependencies and branch labels, read from the files' text
    (literal assignments, as Alembic writes them), without importing them."""
    revisions = {}
    for path in sorted(VERSIONS.glob("*.py")):
        fields: dict[str, object] = {}
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.AnnAssign) and node.value is not None:
                target, value = node.target, node.value
            elif isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            else:
                continue
            if isinstance(target, ast.Name):
                try:
                    fields[target.id] = ast.literal_eval(value)
                except ValueError:
                    continue
        if isinstance(fields.get("revision"), str):
            revisions[str(fields["revision"])] = {
                "down": _names(fields.get("down_revision")),
                "depends": _names(fields.get("depends_on")),
                "labels": _names(fields.get("branch_labels")),
            }
    return revisions


def migration_placement(needs: frozenset[str]) -> dict[str, str]:
    """The new revision continues the team's branch (or starts it on 0001), as `make revision`
    does (migrations/env.py), and depends on the heads of the template branches whose tables
    it refers to (`needs`) that are not already below it. Only those: Alembic fails to upgrade
    a revision that depends on two heads grown from the revision it follows."""
    revisions = read_revisions()
    parents = {parent for info in revisions.values() for parent in info["down"]}
    heads = [revision for revision in revisions if revision not in parents]

    def labels(revision: str) -> set[str]:
        """Its branch labels and those below it on its line, as Alembic reads them."""
        found: set[str] = set()
        while revision in revisions and revision != INITIAL_REVISION:
            found.update(revisions[revision]["labels"])
            down = revisions[revision]["down"]
            if len(down) != 1:
                break
            revision = down[0]
        return found

    def is_template(revision: str) -> bool:
        return revision == INITIAL_REVISION or bool(labels(revision) & TEMPLATE_BRANCHES)

    team_heads = [head for head in heads if not is_template(head)]
    if len(team_heads) > 1:
        raise SystemExit(
            "Your revisions have more than one head; join them first: "
            f'uv run alembic merge -m "merge" {" ".join(team_heads)}'
        )
    parent = team_heads[0] if team_heads else INITIAL_REVISION
    below, todo = set(), [parent]
    while todo:
        revision = todo.pop()
        if revision in below or revision not in revisions:
            continue
        below.add(revision)
        todo.extend(revisions[revision]["down"] + revisions[revision]["depends"])
    depends = [head for head in heads if labels(head) & needs and head not in below]
    return {"feature_migration_parent": parent, "feature_migration_depends_on": ",".join(depends)}


def refuse_taken(name: str, package: str) -> None:
    for folder in (Path("src") / package / "features" / name, Path("tests") / "features" / name):
        if folder.exists():
            raise SystemExit(
                f'{folder} exists already: "{name}" is a feature of this service; type another '
                f"name, for example: make feature name={name}_v2"
            )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", default="")
    parser.add_argument("--vcs-ref", help="template version (default: this service's)")
    parser.add_argument("-d", "--data", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    name = args.name.strip()
    if not name:
        raise SystemExit("Type the feature's name: make feature name=orders")
    answers = read_answers()
    package = str(answers["package_name"])
    if IDENTIFIER.match(name) and not keyword.iskeyword(name):
        refuse_taken(name, package)

    import copier

    data = {key: value for key, value in answers.items() if not key.startswith("_")}
    data.update(dict(item.split("=", 1) for item in args.data))
    data["feature"] = name
    if answers.get("database", "none") != "none":
        # With JWT the table has an owner: a foreign key to users, made on the auth branch.
        needs = frozenset({"auth"} if answers.get("auth") == "jwt" else ())
        data.update(migration_placement(needs))
    try:
        copier.run_copy(
            str(answers["_src_path"]),
            ".",
            data=data,
            vcs_ref=args.vcs_ref or answers.get("_commit"),
            answers_file=f".copier-answers.feature-{name}.yml",
            defaults=True,
            overwrite=False,
            unsafe=False,
            quiet=True,
        )
    except ValueError as error:  # a validator refused the name (copier says what to type)
        raise SystemExit(str(error)) from None
    # Long names make long lines: format the new files as `make format` would, with the ruff
    # of this service's environment (`make install`), when there is one.
    ruff = Path(".venv") / "bin" / "ruff"
    if ruff.exists():
        written = [Path("src") / package / "features" / name, Path("tests") / "features" / name]
        written += VERSIONS.glob(f"{name}_0001_*.py")
        for command in (["check", "--fix", "--quiet"], ["format", "--quiet"]):
            subprocess.run([str(ruff), *command, *map(str, written)], check=False)  # noqa: S603
    else:
        print("Run `make install`, then `make format`: long names may make long lines.")
    print(f"Added the feature {name}; run `make check`.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
