"""Fleet report: where each service generated from this template stands.

    uv run python scripts/fleet_report.py ../billing-api git@example.org:shop/payments.git
    uv run python scripts/fleet_report.py --json SERVICE ...

For each service repository (a local path or a git URL; each is cloned into a temporary
directory, so only committed work counts) it prints its template version (`_commit` of
.copier-answers.yml), its answers, whether the template has a newer release (its git tags,
or `--releases releases.yml`), and its drift: the template-owned files the team changed or
deleted. Drift is found by rendering the recorded version with the recorded answers into a
temporary directory and comparing file contents. Files a team owns by design are left out:
the features (`features/<name>/` but health, and their tests), migration revisions and
whatever else copier.yml's `_skip_if_exists` lists, `uv.lock`, the answers file. Shared
files, which teams edit and updates merge line by line (pyproject.toml, the Makefile, CI
files, the README ...), are listed apart as "shared", not as drift.

Exit status 0; 2 when a service could not be read (its row says why).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import copier
import yaml
from packaging.version import InvalidVersion, Version

ANSWERS_FILE = ".copier-answers.yml"
# Owned by the team by design: never drift. `{pkg}` is the service's package.
TEAM_OWNED = [
    ANSWERS_FILE,
    "uv.lock",
    "src/{pkg}/features/*",
    "tests/features/*",
    "migrations/versions/*",
]
TEMPLATE_FEATURES = [
    "src/{pkg}/features/__init__.py",
    "src/{pkg}/features/health/*",
    "tests/features/__init__.py",
    "tests/features/health/*",
]
# Edited by teams and merged line by line by an update (docs/layout.md, "Who owns what").
SHARED = [
    "pyproject.toml",
    "Makefile",
    "README.md",
    "AGENTS.md",
    ".env.example",
    ".gitignore",
    ".dockerignore",
    "Dockerfile",
    "compose.yaml",
    ".github/*",
    ".gitlab-ci.yml",
    "renovate.json",
    ".devcontainer/*",
    "deploy/shared/settings.env",
]
IGNORED_PARTS = {".git", ".venv", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
DESCRIBE = re.compile(r"^v?(?P<version>[^-]+)(?:-(?P<ahead>\d+)-g[0-9a-f]+)?$")


@dataclass
class Drift:
    path: str
    change: str  # "changed" or "deleted"


@dataclass
class ServiceReport:
    repository: str
    name: str = ""
    template: str = ""
    version: str = ""
    newest: str = ""
    update_available: bool | None = None
    status: str = ""
    answers: dict[str, Any] = field(default_factory=dict)
    drift: list[Drift] = field(default_factory=list)
    shared_changed: list[str] = field(default_factory=list)
    error: str = ""


def git(*args: str, cwd: Path | None = None) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def parse_version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def releases_from_tags(src: str) -> list[Version]:
    output = git("ls-remote", "--tags", "--refs", src)
    tags = (line.rsplit("refs/tags/", 1)[-1] for line in output.splitlines() if line.strip())
    versions = [v for v in map(parse_version, tags) if v is not None and not v.is_prerelease]
    return sorted(versions)


def releases_from_file(path: Path) -> list[Version]:
    data = yaml.safe_load(path.read_text())
    versions = [parse_version(str(entry["version"])) for entry in data.get("releases", [])]
    return sorted(v for v in versions if v is not None)


def update_status(recorded: str, releases: list[Version]) -> tuple[str, bool | None, str]:
    """(newest release, whether it is newer than the service's version, status text)."""
    if not releases:
        return "", None, "unknown: the template has no release tags"
    newest = releases[-1]
    match = DESCRIBE.match(recorded)
    base = parse_version(match["version"]) if match else None
    if base is None:
        return str(newest), None, f"unknown: {recorded!r} is not a release"
    ahead = bool(match and match["ahead"])
    if newest > base:
        return str(newest), True, f"update available: {base} -> {newest}"
    if ahead:
        return str(newest), False, f"ahead of the newest release ({recorded})"
    return str(newest), False, "up to date"


def ownership(path: str, package: str, skip_if_exists: list[str]) -> str:
    def matches(patterns: list[str]) -> bool:
        return any(fnmatch.fnmatch(path, p.format(pkg=package)) for p in patterns)

    if matches(TEMPLATE_FEATURES):
        return "template"
    if matches(TEAM_OWNED) or any(fnmatch.fnmatch(path, p) for p in skip_if_exists):
        return "team"
    if matches(SHARED):
        return "shared"
    return "template"


def files(root: Path) -> dict[str, Path]:
    found = {}
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if path.is_file() and not IGNORED_PARTS.intersection(relative.parts):
            found[relative.as_posix()] = path
    return found


def template_clone(src: str, scratch: Path, cache: dict[str, Path]) -> Path:
    """One full clone per template source, for copier and for copier.yml at each version."""
    if src not in cache:
        destination = scratch / f"template-{len(cache)}"
        git("clone", "--quiet", src, str(destination))
        cache[src] = destination
    return cache[src]


def inspect(
    index: int,
    repository: str,
    scratch: Path,
    template_override: str | None,
    releases_file: Path | None,
    cache: dict[str, Path],
) -> ServiceReport:
    report = ServiceReport(repository)
    checkout = scratch / f"service-{index}"
    git("clone", "--quiet", repository, str(checkout))
    answers_path = checkout / ANSWERS_FILE
    if not answers_path.exists():
        raise RuntimeError(f"no {ANSWERS_FILE}: not generated from a copier template")
    recorded = yaml.safe_load(answers_path.read_text()) or {}
    report.answers = {k: v for k, v in recorded.items() if not k.startswith("_")}
    report.name = str(report.answers.get("project_slug") or Path(repository.rstrip("/")).stem)
    report.version = str(recorded.get("_commit", ""))
    report.template = template_override or str(recorded.get("_src_path", ""))
    if not report.template or report.template == ".":
        raise RuntimeError(f"{ANSWERS_FILE} records no usable _src_path; pass --template")

    source = template_clone(report.template, scratch, cache)
    releases = releases_from_file(releases_file) if releases_file else releases_from_tags(source)
    report.newest, report.update_available, report.status = update_status(report.version, releases)

    config = yaml.safe_load(git("show", f"{report.version}:copier.yml", cwd=source)) or {}
    skip_if_exists = [str(p) for p in config.get("_skip_if_exists", [])]
    rendered = scratch / f"rendered-{index}"
    copier.run_copy(
        str(source),
        str(rendered),
        data=report.answers,
        vcs_ref=report.version,
        defaults=True,
        overwrite=True,
        quiet=True,
        unsafe=False,
    )
    package = str(report.answers.get("package_name", ""))
    ours = files(checkout)
    for name, path in sorted(files(rendered).items()):
        owner = ownership(name, package, skip_if_exists)
        if owner == "team":
            continue
        mine = ours.get(name)
        if mine is not None and mine.read_bytes() == path.read_bytes():
            continue
        if owner == "shared":
            report.shared_changed.append(name)
        else:
            report.drift.append(Drift(name, "deleted" if mine is None else "changed"))
    return report


def build_report(
    repositories: list[str], template: str | None = None, releases_file: Path | None = None
) -> list[ServiceReport]:
    reports = []
    cache: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="fleet-report-") as scratch:
        for index, repository in enumerate(repositories):
            try:
                reports.append(
                    inspect(index, repository, Path(scratch), template, releases_file, cache)
                )
            except Exception as error:  # one unreadable service must not hide the others
                reports.append(ServiceReport(repository, status="error", error=str(error)))
    return reports


def table(reports: list[ServiceReport]) -> str:
    rows = [("SERVICE", "VERSION", "NEWEST", "STATUS", "DRIFT")]
    for report in reports:
        drift = str(len(report.drift)) if not report.error else "-"
        status = report.status if not report.error else f"error: {report.error}"
        rows.append(
            (
                report.name or report.repository,
                report.version or "-",
                report.newest or "-",
                status,
                drift,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    for report in reports:
        if report.error:
            continue
        lines += ["", f"{report.name} ({report.repository})", f"  template: {report.template}"]
        answers = ", ".join(f"{key}={value}" for key, value in report.answers.items())
        lines.append(f"  answers:  {answers}")
        if report.drift:
            lines.append("  drift (template-owned files changed by the team):")
            lines += [f"    {d.path} ({d.change})" for d in report.drift]
        else:
            lines.append("  drift: none")
        if report.shared_changed:
            lines.append(f"  shared files edited: {', '.join(report.shared_changed)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repositories", nargs="+", metavar="SERVICE", help="path or git URL")
    parser.add_argument("--json", action="store_true", help="JSON instead of a table")
    parser.add_argument(
        "--template", help="the template's path or URL (default: each service's _src_path)"
    )
    parser.add_argument(
        "--releases", type=Path, help="a releases.yml to read versions from, instead of tags"
    )
    args = parser.parse_args(argv)
    reports = build_report(args.repositories, args.template, args.releases)
    if args.json:
        print(json.dumps([asdict(report) for report in reports], indent=2, default=str))
    else:
        print(table(reports))
    return 2 if any(report.error for report in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
