"""Pull the template's changes into this service: `make update`.

1. Refuses while files hold conflict markers or work is uncommitted.
2. Runs `copier update`: your answers are kept, and a question the template added since
   your version keeps this service's behaviour.
3. Merges the dependency lists of pyproject.toml as lists, not as lines of text, where
   copier's text merge could not: the template's entries come from its new version, the
   ones you added (`uv add`) or changed stay; only an entry both sides changed conflicts.
4. Refreshes uv.lock (`uv lock`), so `uv sync --locked` and the image build agree.
5. Lists every file with a conflict and exits 1 while any remain.

Run while an update is not yet committed (the answers file changed), it skips 1 and 2: it
finishes an update that `copier update` started, and checks again after you resolve.
Options: `make update ARGS="--vcs-ref 0.3.0 -d redis=true"`.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ANSWERS_FILE = ".copier-answers.yml"
# copier's labels for the two sides of a conflict (`--conflict inline`).
OURS_LABEL, THEIRS_LABEL = "before updating", "after updating"
MARKER = re.compile(r"^(<{7}|>{7}) ")
# The template's code fits ruff's line length for package names up to this long; copier
# asks new services for one, releases before 0.3.0 took any.
LONGEST_PACKAGE_NAME = 40
NOT_A_TEMPLATE = (
    "{answers} records `_src_path: {src}`, which is not the template seen from here.\n"
    "Set `_src_path` in {answers} to the template's git URL or absolute path, commit, and\n"
    "run `make update` again."
)


def run(*command: str) -> subprocess.CompletedProcess[str]:
    # git and uv from PATH, with arguments of this script's own making.
    return subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603


def git(*args: str, check: bool = True) -> str:
    result = run("git", *args)
    if check and result.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def conflicted_files(root: Path) -> list[str]:
    """Files with conflict markers, unmerged index entries, or copier's .rej leftovers."""
    found = set(git("diff", "--name-only", "--relative", "--diff-filter=U").splitlines())
    listed = git("ls-files", "--cached", "--others", "--exclude-standard").splitlines()
    for name in listed:
        path = root / name
        if name.endswith(".rej"):
            found.add(name)
            continue
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError):
            continue
        if any(MARKER.match(line) for line in text.splitlines()):
            found.add(name)
    found.update(str(p.relative_to(root)) for p in root.rglob("*.rej") if ".git" not in p.parts)
    return sorted(found)


def read_answers_text(text: str) -> dict[str, Any]:
    import yaml  # from copier's environment (`uv run --with copier`)

    loaded = yaml.safe_load(text)
    return loaded if isinstance(loaded, dict) else {}


def read_answers(root: Path) -> dict[str, Any]:
    return read_answers_text((root / ANSWERS_FILE).read_text())


def check_source(root: Path, src: str) -> None:
    """A local `_src_path` must name the template; `.` recorded at copy time does not."""
    if re.match(r"^[\w+.-]+://|^(gh|gl):|^git@", src):
        return
    path = Path(src)
    resolved = (root / path).resolve() if not path.is_absolute() else path
    if resolved == root.resolve() or not any(
        (resolved / name).is_file() for name in ("copier.yml", "copier.yaml")
    ):
        raise SystemExit(NOT_A_TEMPLATE.format(answers=ANSWERS_FILE, src=src))


# --- dependency lists ----------------------------------------------------------------------

ARRAY_OPEN = re.compile(r'^(?P<key>[A-Za-z0-9_-]+|"[^"]+")\s*=\s*\[\s*(#.*)?$')
TABLE = re.compile(r"^\[(?P<name>[^\[\]]+)\]\s*(#.*)?$")
ENTRY = re.compile(r'^\s*"(?P<requirement>[^"]+)"\s*,?\s*(#.*)?$')
# Arrays of requirements: the table they are in, and their key (None: every key).
DEPENDENCY_ARRAYS = {
    "project": "dependencies",
    "dependency-groups": None,
    "project.optional-dependencies": None,
}


def requirement_name(requirement: str) -> str:
    name = re.split(r"[\s\[<>=!~;@(]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Array:
    table: str
    key: str
    start: int  # index of the `key = [` line
    end: int  # index of the closing `]` line

    @property
    def id(self) -> tuple[str, str]:
        return self.table, self.key


def dependency_arrays(lines: list[str]) -> Iterator[Array]:
    """The requirement arrays written one entry per line. A conflict block that holds the
    closing bracket makes the array unreadable, and it is skipped."""
    table, index = "", 0
    while index < len(lines):
        line = lines[index]
        if match := TABLE.match(line):
            table = match["name"].strip()
        elif (match := ARRAY_OPEN.match(line)) and table in DEPENDENCY_ARRAYS:
            key = match["key"].strip('"')
            wanted = DEPENDENCY_ARRAYS[table]
            end, in_block, readable = index + 1, False, True
            while end < len(lines):
                current = lines[end]
                if current.startswith("<<<<<<< "):
                    in_block = True
                elif current.startswith(">>>>>>> "):
                    in_block = False
                elif current.strip() == "]":
                    if not in_block:
                        break
                    readable = False  # one side of a conflict ends the array: leave it
                end += 1
            if end < len(lines) and readable and wanted in (None, key):
                yield Array(table, key, index, end)
            index = end
        index += 1


def entries(lines: list[str], array: Array) -> dict[str, str]:
    """Requirement name -> its line, in file order."""
    found = {}
    for line in lines[array.start + 1 : array.end]:
        if match := ENTRY.match(line):
            found[requirement_name(match["requirement"])] = line.rstrip()
    return found


def merge_array(base: dict[str, str], ours: dict[str, str], theirs_body: list[str]) -> list[str]:
    """Three-way merge of one array by requirement name. `theirs_body` is the template's body,
    comments included; an entry both sides changed is left between conflict markers."""
    merged: list[str] = []
    theirs_names = set()
    for line in theirs_body:
        match = ENTRY.match(line)
        if match is None:
            merged.append(line.rstrip())
            continue
        name = requirement_name(match["requirement"])
        theirs_names.add(name)
        theirs_line, base_line, our_line = line.rstrip(), base.get(name), ours.get(name)
        if base_line is None:  # the template added it; if you had too, yours stays
            merged.append(our_line if our_line is not None else theirs_line)
        elif our_line == base_line:  # only the template may have changed it
            merged.append(theirs_line)
        elif theirs_line == base_line:  # only you changed it (or removed it)
            if our_line is not None:
                merged.append(our_line)
        else:
            merged.extend(conflict_block([our_line] if our_line else [], [theirs_line]))
    for name, line in ours.items():
        if name in base or name in theirs_names:
            continue  # a template entry (handled above) or one the template dropped
        merged.append(line)
    # The template dropped an entry you changed: keep yours and say so.
    for name, line in ours.items():
        if name in base and name not in theirs_names and line != base[name]:
            merged.extend(conflict_block([line], []))
    return merged


def conflict_block(ours: list[str], theirs: list[str]) -> list[str]:
    return [f"<<<<<<< {OURS_LABEL}", *ours, "=======", *theirs, f">>>>>>> {THEIRS_LABEL}"]


def merge_dependencies(merged_text: str, base_text: str, ours_text: str, theirs_text: str) -> str:
    """pyproject.toml after copier's text merge -> the same with every requirement array
    replaced by the merge by name. Arrays it cannot read are left as copier wrote them."""
    lines = merged_text.splitlines()
    base_lines, our_lines, their_lines = (
        t.splitlines() for t in (base_text, ours_text, theirs_text)
    )
    base_arrays = {a.id: a for a in dependency_arrays(base_lines)}
    our_arrays = {a.id: a for a in dependency_arrays(our_lines)}
    their_arrays = {a.id: a for a in dependency_arrays(their_lines)}
    # From the bottom, so earlier line numbers stay valid.
    for array in sorted(dependency_arrays(lines), key=lambda a: a.start, reverse=True):
        theirs = their_arrays.get(array.id)
        if theirs is None:
            continue
        base = entries(base_lines, base_arrays[array.id]) if array.id in base_arrays else {}
        ours = entries(our_lines, our_arrays[array.id]) if array.id in our_arrays else {}
        lines[array.start + 1 : array.end] = merge_array(
            base, ours, their_lines[theirs.start + 1 : theirs.end]
        )
    return "\n".join(lines) + "\n"


# --- the update ----------------------------------------------------------------------------


def render(src: str, commit: str, answers: dict[str, Any], destination: Path) -> str:
    """pyproject.toml as the template at `commit` renders it with `answers`."""
    import copier

    data = {key: value for key, value in answers.items() if not key.startswith("_")}
    copier.run_copy(
        src,
        str(destination),
        data=data,
        vcs_ref=commit,
        defaults=True,
        overwrite=True,
        quiet=True,
        unsafe=False,
    )
    path = destination / "pyproject.toml"
    return path.read_text() if path.exists() else ""


def needs_dependency_merge(text: str) -> bool:
    """Conflict markers, or a requirement listed twice in one array (both sides added it)."""
    lines = text.splitlines()
    if any(MARKER.match(line) for line in lines):
        return True
    for array in dependency_arrays(lines):
        names = [
            requirement_name(match["requirement"])
            for line in lines[array.start + 1 : array.end]
            if (match := ENTRY.match(line))
        ]
        if len(names) != len(set(names)):
            return True
    return False


def finish(root: Path) -> int:
    """After `copier update`: merge the dependency lists where its text merge failed them,
    refresh uv.lock, and list what is left to resolve."""
    before = read_answers_text(git("show", f"HEAD:{ANSWERS_FILE}"))
    after = read_answers(root)
    src, old_commit = str(before.get("_src_path", "")), str(before.get("_commit", ""))
    new_commit = str(after.get("_commit", ""))
    problems = []
    pyproject = root / "pyproject.toml"
    if pyproject.exists() and needs_dependency_merge(pyproject.read_text()):
        try:
            with tempfile.TemporaryDirectory(prefix="update-template-") as scratch:
                base = render(src, old_commit, before, Path(scratch) / "old")
                theirs = render(src, new_commit, after, Path(scratch) / "new")
        except Exception as error:  # the update itself is done: report, do not hide it
            problems.append(f"pyproject.toml's dependency lists could not be merged: {error}")
        else:
            ours = git("show", "HEAD:pyproject.toml")
            merged = merge_dependencies(pyproject.read_text(), base, ours, theirs)
            pyproject.write_text(merged)
            if not any(MARKER.match(line) for line in merged.splitlines()):
                try:
                    tomllib.loads(merged)
                except tomllib.TOMLDecodeError as error:
                    problems.append(f"pyproject.toml is not valid TOML after the merge: {error}")
                if git("ls-files", "--unmerged", "pyproject.toml").strip():
                    git("add", "pyproject.toml")  # resolved: drop the unmerged index entries

    lock = run("uv", "lock")
    if lock.returncode != 0:
        tail = "\n    ".join(lock.stderr.strip().splitlines()[-5:])
        problems.append(
            f"`uv lock` failed; fix pyproject.toml, then run `make update` again:\n    {tail}"
        )

    print(f"Updated from template {old_commit} to {new_commit}.")
    if git("status", "--porcelain", "--", "migrations").strip():
        print("The migrations changed: run `make migrate` on each database.")
    package = str(read_answers(root).get("package_name", ""))
    if len(package) > LONGEST_PACKAGE_NAME:
        print(
            f"The package name has {len(package)} characters, and lines the template wrote for"
            f" {LONGEST_PACKAGE_NAME} may be too long: run `uv run ruff format .`, then"
            " `uv run ruff check --fix .`."
        )
    for problem in problems:
        print(problem, file=sys.stderr)
    conflicts = conflicted_files(root)
    if conflicts:
        print(
            f"{len(conflicts)} file(s) with conflicts; resolve each, then commit:", file=sys.stderr
        )
        for name in conflicts:
            print(f"  {name}", file=sys.stderr)
    if conflicts or problems:
        print("Run `make update` again to check, once they are resolved.", file=sys.stderr)
        return 1
    print("No conflicts. Review `git diff`, run `make check` and `make migrate`, then commit.")
    return 0


def update(root: Path, vcs_ref: str | None, data: dict[str, str]) -> int:
    import copier

    if update_in_progress():
        return finish(root)  # copier update already ran: finish it
    if leftovers := conflicted_files(root):
        print("These files have conflict markers; resolve them and commit first:", file=sys.stderr)
        for name in leftovers:
            print(f"  {name}", file=sys.stderr)
        return 1
    if git("status", "--porcelain").strip():
        raise SystemExit(
            "Commit or stash your changes first: `make update` starts from a clean tree."
        )
    answers = read_answers(root)
    check_source(root, str(answers.get("_src_path", "")))
    copier.run_update(
        str(root),
        data=data,
        vcs_ref=vcs_ref,
        defaults=True,
        overwrite=True,
        conflict="inline",
        quiet=True,
        unsafe=False,
    )
    return finish(root)


def update_in_progress() -> bool:
    """An update has run and is not committed yet: the answers file differs from HEAD's."""
    return bool(git("status", "--porcelain", "--", ANSWERS_FILE).strip())


def parse_data(pairs: list[str]) -> dict[str, str]:
    data = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"-d takes key=value, for example -d redis=true (got {pair!r})")
        data[key] = value
    return data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vcs-ref", help="template version to update to (default: the newest)")
    parser.add_argument(
        "-d", "--data", action="append", default=[], metavar="KEY=VALUE", help="change an answer"
    )
    args = parser.parse_args()
    root = Path.cwd()
    if not (root / ANSWERS_FILE).is_file():
        raise SystemExit(f"Run this in the service's directory (where {ANSWERS_FILE} is).")
    return update(root, args.vcs_ref, parse_data(args.data))


if __name__ == "__main__":
    sys.exit(main())
