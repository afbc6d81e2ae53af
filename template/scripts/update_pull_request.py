"""Bring the template's newest release to this service as a branch and a pull request.

Run it in the service's directory, from a clean checkout of the branch the change is for
(by hand, or from the scheduled template-update CI job, which only calls this script):

    python3 scripts/update_pull_request.py                      # build and push; print the PR
    python3 scripts/update_pull_request.py --publish github     # ... and open it with `gh`
    python3 scripts/update_pull_request.py --publish gitlab     # ... a merge request (REST)

1. Finds the newest release of the template recorded in .copier-answers.yml (`_src_path`),
   from its git tags. Nothing newer: it says so and exits 0.
2. Resets the branch `template-update/<version>` to the base branch (one branch per
   template version: a rerun refreshes it rather than adding another).
3. Runs the documented update (`make update`'s script with `--vcs-ref <version>`; a service
   from before `make update` runs `copier update --conflict inline` first, as
   docs/updating.md says), which refreshes uv.lock.
4. Runs the service's checks (`make check`'s commands) and records each result.
5. Commits everything, conflicted files as they are (with their markers), and pushes the
   branch with --force-with-lease. A branch someone else has pushed to is left alone.
6. Writes the pull request's body: versions, the template's CHANGELOG entries between them,
   the files with conflicts, the checks. With conflicts or failing checks the pull request is
   a draft. Nothing is ever merged.

Exit status: 0 when the service is up to date or the branch was pushed (even as a draft);
1 when the update could not be made or published (the job itself is broken).
Standard library and git only; copier and the checks run through `uv`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ANSWERS_FILE = ".copier-answers.yml"
BRANCH_PREFIX = "template-update/"
# Written into each commit this script makes: a branch whose tip lacks it has had a
# person's commits pushed to it, and is never overwritten.
TRAILER = "Template-Update"
COPIER = ("uv", "run", "--no-project", "--python", ">=3.11", "--with", "copier>=9.4")
# `make check`'s commands, run one by one so each gets its own result.
CHECKS = [
    ("uv sync --locked", ("uv", "sync", "--locked")),
    ("ruff check", ("uv", "run", "--no-sync", "ruff", "check", ".")),
    ("ruff format --check", ("uv", "run", "--no-sync", "ruff", "format", "--check", ".")),
    ("mypy", ("uv", "run", "--no-sync", "mypy")),
    ("pytest", ("uv", "run", "--no-sync", "pytest", "-q", "-p", "no:cacheprovider")),
]
MARKER = re.compile(r"^(<{7}|>{7}) ", re.MULTILINE)
RELEASE_TAG = re.compile(r"^v?(\d+(?:\.\d+)*)$")


class Failure(Exception):
    """The update could not be made: the job is broken, not the service out of date."""


def run(*command: str, cwd: Path | None = None, check: bool = True) -> str:
    # Commands of this script's own making: git, uv, gh.
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)  # noqa: S603
    if check and result.returncode != 0:
        output = (result.stderr or result.stdout).strip()
        raise Failure(f"`{shlex.join(command)}` failed ({result.returncode}): {output}")
    return result.stdout


def git(*args: str, check: bool = True) -> str:
    return run("git", *args, check=check)


# --- versions --------------------------------------------------------------------------------


def version_key(version: str) -> tuple[int, ...] | None:
    """A final release's numbers (pre-releases and other tags: None)."""
    match = RELEASE_TAG.match(version.strip())
    return tuple(int(part) for part in match[1].split(".")) if match else None


def read_answer(text: str, key: str) -> str:
    """One top-level scalar of the answers file (copier writes `key: value` lines)."""
    match = re.search(rf"^{re.escape(key)}:[ \t]*(.*?)[ \t]*$", text, re.MULTILINE)
    if match is None:
        return ""
    value = match[1]
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    return value


def source_url(src: str) -> str:
    """copier's `gh:`/`gl:` shortcuts as git URLs; anything else as recorded."""
    for prefix, host in (("gh:", "https://github.com/"), ("gl:", "https://gitlab.com/")):
        if src.startswith(prefix):
            return host + src.removeprefix(prefix)
    return src


def release_tags(src: str) -> list[str]:
    """The template's final-release tags, oldest first."""
    output = git("ls-remote", "--tags", "--refs", source_url(src))
    tags = {line.rsplit("refs/tags/", 1)[-1] for line in output.splitlines() if line.strip()}
    keyed = [(key, tag) for tag in tags if (key := version_key(tag)) is not None]
    return [tag for _, tag in sorted(keyed)]


def changelog_entries(text: str, old: str, new: str) -> str:
    """The sections of the template's CHANGELOG.md for the versions after `old` up to `new`."""
    low, high = version_key(old), version_key(new)
    kept: list[str] = []
    keep = False
    for line in text.splitlines():
        if line.startswith("## "):
            version = version_key(line[3:].split()[0]) if line[3:].split() else None
            keep = version is not None and (low is None or version > low)
            keep = keep and (high is None or (version is not None and version <= high))
            if keep:
                line = "#" + line  # one level below the pull request's own headings
        elif line.startswith("#") and keep:
            line = "#" + line
        if keep:
            kept.append(line)
    return "\n".join(kept).strip()


def template_changelog(src: str, version: str) -> str:
    with tempfile.TemporaryDirectory(prefix="template-changelog-") as scratch:
        clone = Path(scratch) / "template"
        git("clone", "--quiet", "--depth", "1", "--branch", version, source_url(src), str(clone))
        path = clone / "CHANGELOG.md"
        return path.read_text() if path.exists() else ""


# --- the working tree ------------------------------------------------------------------------


def conflicted_files(root: Path) -> list[str]:
    """Files with conflict markers, unmerged index entries, or copier's .rej leftovers."""
    found = set(git("diff", "--name-only", "--diff-filter=U").splitlines())
    for name in git("ls-files", "--cached", "--others", "--exclude-standard").splitlines():
        if name.endswith(".rej"):
            found.add(name)
            continue
        try:
            text = (root / name).read_text()
        except (OSError, UnicodeDecodeError):
            continue
        if MARKER.search(text):
            found.add(name)
    return sorted(found)


@dataclass
class Check:
    name: str
    passed: bool
    tail: str = ""


@dataclass
class Result:
    old: str
    new: str
    base: str
    branch: str
    src: str
    conflicts: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    update_output: str = ""
    changelog: str = ""
    pushed: str = ""  # "pushed", "unchanged", or why it was not

    @property
    def draft(self) -> bool:
        return bool(self.conflicts) or not all(check.passed for check in self.checks)

    @property
    def title(self) -> str:
        return f"Update from the template: {self.old} → {self.new}"


def run_update(root: Path, version: str) -> str:
    """The documented update; its exit status only says whether conflicts are left."""
    script = root / "scripts" / "update_template.py"
    output = ""
    if not script.exists():
        # Before `make update` existed: copier once, then the script it brings finishes.
        result = subprocess.run(  # noqa: S603
            [
                *COPIER,
                "copier",
                "update",
                "--defaults",
                "--conflict",
                "inline",
                "--vcs-ref",
                version,
                "--quiet",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        output += result.stdout + result.stderr
        if not git("status", "--porcelain", "--", ANSWERS_FILE).strip():
            raise Failure(f"`copier update --vcs-ref {version}` changed nothing:\n{output}")
        if not script.exists():
            return output
    result = subprocess.run(  # noqa: S603
        [*COPIER, "python", str(script.relative_to(root)), "--vcs-ref", version],
        capture_output=True,
        text=True,
        check=False,
    )
    output += result.stdout + result.stderr
    if not git("status", "--porcelain", "--", ANSWERS_FILE).strip():
        raise Failure(f"The update to {version} did not run:\n{output.strip()}")
    return output


def run_checks(root: Path) -> list[Check]:
    checks = []
    for name, command in CHECKS:
        result = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)  # noqa: S603
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        checks.append(Check(name, result.returncode == 0, tail))
        if name == "uv sync --locked" and result.returncode != 0:
            checks.extend(
                Check(n, False, "not run: `uv sync --locked` failed") for n, _ in CHECKS[1:]
            )
            break
    return checks


# --- the branch ------------------------------------------------------------------------------


def remote_tip(remote: str, branch: str) -> str:
    output = git("ls-remote", "--heads", remote, f"refs/heads/{branch}")
    return output.split()[0] if output.strip() else ""


def identity() -> list[str]:
    """A committer for machines without one (CI runners)."""
    if os.environ.get("GIT_COMMITTER_EMAIL") or git("config", "user.email", check=False).strip():
        return []
    return ["-c", "user.name=Template update", "-c", "user.email=template-update@localhost"]


def commit_message(result: Result) -> str:
    lines = [result.title, ""]
    if result.conflicts:
        lines.append("Conflicts left as they are, with their markers, in:")
        lines += [f"  {name}" for name in result.conflicts]
    else:
        lines.append("No conflicts.")
    lines.append("")
    lines += [f"{'passed' if c.passed else 'FAILED'}: {c.name}" for c in result.checks]
    lines += ["", f"{TRAILER}: {result.new}"]
    return "\n".join(lines) + "\n"


def push(result: Result, remote: str, *, push_branch: bool) -> None:
    """Push the branch, replacing only a tip this script made (--force-with-lease)."""
    branch = result.branch
    tip = remote_tip(remote, branch)
    if tip:
        git("fetch", "--quiet", remote, f"+refs/heads/{branch}:refs/template-update/previous")
        message = git("log", "-1", "--format=%B", tip)
        if f"\n{TRAILER}: " not in "\n" + message:
            raise Failure(
                f"{remote}/{branch} has commits that this script did not make; it is left as it "
                "is. Delete the branch (or merge its pull request) to get a fresh one."
            )
        same_tree = git("rev-parse", tip + "^{tree}") == git("rev-parse", "HEAD^{tree}")
        same_base = git("rev-parse", f"{tip}^") == git("rev-parse", "HEAD^")
        if same_tree and same_base and message == git("log", "-1", "--format=%B", "HEAD"):
            git("reset", "--quiet", "--hard", tip)
            result.pushed = "unchanged"
            return
    if not push_branch:
        result.pushed = "not pushed (--no-push)"
        return
    git(
        "push",
        "--quiet",
        f"--force-with-lease=refs/heads/{branch}:{tip}",
        remote,
        f"HEAD:refs/heads/{branch}",
    )
    result.pushed = "refreshed" if tip else "pushed"


# --- the pull request ------------------------------------------------------------------------


def body(result: Result) -> str:
    lines = [f"Updates this service from template **{result.old}** to **{result.new}**", ""]
    lines.append(f"Template: `{result.src}`. Made by `scripts/update_pull_request.py`, which ")
    lines[-1] += "never merges: review, then merge yourself."
    lines.append("")
    if result.draft:
        reasons = []
        if result.conflicts:
            reasons.append(f"{len(result.conflicts)} file(s) with conflicts")
        if not all(c.passed for c in result.checks):
            reasons.append("failing checks")
        lines += [f"**Draft:** {' and '.join(reasons)}.", ""]
    lines += ["## Conflicts", ""]
    if result.conflicts:
        lines.append("Committed with their conflict markers; resolve each on this branch:")
        lines.append("")
        lines += [f"- `{name}`" for name in result.conflicts]
    else:
        lines.append("No conflicts.")
    lines += ["", "## Checks", "", "| Check | Result |", "| --- | --- |"]
    lines += [f"| `{c.name}` | {'passed' if c.passed else '**failed**'} |" for c in result.checks]
    failed = [c for c in result.checks if not c.passed]
    for check in failed:
        lines += ["", f"<details><summary>{check.name}</summary>", "", "```"]
        lines += [check.tail, "```", "", "</details>"]
    lines += ["", f"## Template changes ({result.old} → {result.new})", ""]
    lines.append(result.changelog or "The template's CHANGELOG.md has no entries for these.")
    lines += ["", "## After merging", "", "Run `make migrate` on each database."]
    return "\n".join(lines) + "\n"


def publish_github(result: Result, body_file: Path, dry_run: bool) -> None:
    """Create or update the pull request with the GitHub CLI (GH_TOKEN in the environment)."""
    draft_flag = ["--draft"] if result.draft else []
    create = [
        "gh",
        "pr",
        "create",
        "--base",
        result.base,
        "--head",
        result.branch,
        "--title",
        result.title,
        "--body-file",
        str(body_file),
        *draft_flag,
    ]
    if dry_run:
        print("Would run (or `gh pr edit` the open one):", shlex.join(create))
        return
    listed = run("gh", "pr", "list", "--head", result.branch, "--state", "open", "--json", "number")
    numbers = [str(entry["number"]) for entry in json.loads(listed or "[]")]
    if not numbers:
        print(run(*create).strip())
        return
    number = numbers[0]
    run("gh", "pr", "edit", number, "--title", result.title, "--body-file", str(body_file))
    run("gh", "pr", "ready", number, *(["--undo"] if result.draft else []), check=False)
    print(f"Updated pull request #{number}.")


def gitlab_request(method: str, url: str, token: str, data: dict[str, str] | None = None) -> object:
    encoded = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=encoded, method=method)  # noqa: S310
    request.add_header("PRIVATE-TOKEN", token)
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return json.loads(response.read().decode() or "null")


def publish_gitlab(result: Result, body_file: Path, dry_run: bool) -> None:
    """Create or update the merge request over GitLab's REST API (CI_API_V4_URL, CI_PROJECT_ID,
    and a project access token in TEMPLATE_UPDATE_TOKEN)."""
    api = os.environ.get("CI_API_V4_URL", "https://gitlab.com/api/v4")
    project = urllib.parse.quote(os.environ.get("CI_PROJECT_ID", "<project id>"), safe="")
    title = ("Draft: " if result.draft else "") + result.title
    fields = {"title": title, "description": body_file.read_text()}
    create = {
        **fields,
        "source_branch": result.branch,
        "target_branch": result.base,
        "remove_source_branch": "true",
    }
    base_url = f"{api}/projects/{project}/merge_requests"
    if dry_run:
        print(f"Would POST (or PUT to the open one) {base_url}:")
        print(json.dumps({**create, "description": f"<{body_file}>"}, indent=2))
        return
    token = os.environ.get("TEMPLATE_UPDATE_TOKEN", "")
    if not token:
        raise Failure("Set TEMPLATE_UPDATE_TOKEN to a project access token (scope api).")
    query = urllib.parse.urlencode({"source_branch": result.branch, "state": "opened"})
    found = gitlab_request("GET", f"{base_url}?{query}", token)
    if isinstance(found, list) and found:
        iid = found[0]["iid"]
        gitlab_request("PUT", f"{base_url}/{iid}", token, fields)
        print(f"Updated merge request !{iid}.")
    else:
        made = gitlab_request("POST", base_url, token, create)
        print(f"Opened merge request {made.get('web_url') if isinstance(made, dict) else ''}.")


# --- main ------------------------------------------------------------------------------------


def current_branch(given: str | None) -> str:
    if given:
        return given
    name = git("symbolic-ref", "--short", "-q", "HEAD", check=False).strip()
    name = name or os.environ.get("CI_DEFAULT_BRANCH", "") or os.environ.get("GITHUB_REF_NAME", "")
    if not name:
        raise Failure("HEAD is detached; pass --base with the branch the update is for.")
    return name


def prepare(root: Path, args: argparse.Namespace) -> Result | None:
    answers = (root / ANSWERS_FILE).read_text()
    src, old = read_answer(answers, "_src_path"), read_answer(answers, "_commit")
    if not src or src == ".":
        raise Failure(
            f"{ANSWERS_FILE} records no usable `_src_path` ({src!r}); set it to the "
            "template's git URL or absolute path and commit."
        )
    if args.version:
        new = args.version
    else:
        tags = release_tags(src)
        if not tags:
            raise Failure(f"The template at {src} has no release tags.")
        new = tags[-1]
    old_key, new_key = version_key(old.split("-")[0]), version_key(new)
    if old_key is not None and new_key is not None and new_key <= old_key:
        print(f"Up to date: the service is at template {old}; the newest release is {new}.")
        return None
    if git("status", "--porcelain", "--untracked-files=no").strip():
        raise Failure("The working tree has changes; run this from a clean checkout.")
    base = current_branch(args.base)
    return Result(old=old, new=new, base=base, branch=f"{BRANCH_PREFIX}{new}", src=src)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", help="template release to update to (default: the newest)")
    parser.add_argument("--base", help="branch the update is for (default: the checked-out one)")
    parser.add_argument("--remote", default="origin", help="git remote to push to (origin)")
    parser.add_argument(
        "--publish",
        choices=["github", "gitlab", "none"],
        default="none",
        help="open or update the pull request there; none: only print it",
    )
    parser.add_argument("--no-push", action="store_true", help="commit, but do not push")
    parser.add_argument("--body-file", type=Path, help="where to write the pull request's body")
    args = parser.parse_args(argv)
    root = Path.cwd()
    if not (root / ANSWERS_FILE).is_file():
        print(f"Run this in the service's directory (where {ANSWERS_FILE} is).", file=sys.stderr)
        return 1
    try:
        result = prepare(root, args)
        if result is None:
            return 0
        git("checkout", "--quiet", "-B", result.branch, "HEAD")
        print(f"Updating {result.base} from template {result.old} to {result.new} ...")
        result.update_output = run_update(root, result.new)
        if (root / "pyproject.toml").exists() and not MARKER.search(
            (root / "pyproject.toml").read_text()
        ):
            run("uv", "lock", "--quiet", check=False)  # the update's own refresh, made sure of
        result.conflicts = conflicted_files(root)
        result.checks = run_checks(root)
        result.changelog = changelog_entries(
            template_changelog(result.src, result.new), result.old, result.new
        )
        git("add", "--all")
        git(*identity(), "commit", "--quiet", "--no-verify", "--message", commit_message(result))
        push(result, args.remote, push_branch=not args.no_push)
        body_file = args.body_file or Path(git("rev-parse", "--absolute-git-dir").strip()) / (
            "template-update-body.md"
        )
        body_file.write_text(body(result))
        status = "draft" if result.draft else "ready for review"
        print(f"Branch {result.branch}: {result.pushed}; the pull request is {status}.")
        print(f"Conflicts: {', '.join(result.conflicts) or 'none'}.")
        for check in result.checks:
            print(f"  {'passed' if check.passed else 'FAILED'}: {check.name}")
        print(f"Body: {body_file}")
        if args.publish == "github":
            publish_github(result, body_file, dry_run=False)
        elif args.publish == "gitlab":
            publish_gitlab(result, body_file, dry_run=False)
        else:
            publish_github(result, body_file, dry_run=True)
            publish_gitlab(result, body_file, dry_run=True)
    except Failure as error:
        print(f"The template update failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
