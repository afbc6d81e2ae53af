"""MkDocs hooks for the template's documentation site (mkdocs.yml lists this file).

Includes. A line that is nothing but a link titled "include", such as

    [CHANGELOG.md](../CHANGELOG.md "include")
    [README: Two commands](../README.md#two-commands "include")

is replaced by that file, or by the section under the heading the fragment names. On
GitHub the line stays a plain link to the same place, so the page still leads somewhere.

Links out of docs/. A relative link from a page (or from included text) to a file of the
repository outside docs/, such as `../README.md` or `.ci/run` inside README.md, becomes a
link to that file in the repository at `extra.repository` of mkdocs.yml. Links to pages
of the site stay pages of the site. A link to a file that does not exist stops the build.

Decisions. Every docs/decisions/*.md page is added to the nav section "Decisions" in file
name order, and the line `<!-- decisions -->` in decisions/index.md becomes a list of
them, each by its title. A new decision record needs no edit anywhere else.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

INCLUDE = re.compile(r'^\[[^\]]*\]\((?P<target>[^)\s]+)\s+"include"\)\s*$')
LINK = re.compile(r'(?P<head>!?\[[^\]]*\]\()(?P<target>[^)\s]+)(?P<tail>(?:\s+"[^"]*")?\))')
HEADING = re.compile(r"^(?P<hashes>#{1,6})\s+(?P<text>.+?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
DECISIONS_SECTION = "Decisions"
DECISIONS_MARKER = "<!-- decisions -->"


def slug(heading: str) -> str:
    """The anchor GitHub and MkDocs give a heading: lower case, punctuation dropped,
    spaces turned into dashes."""
    text = re.sub(r"[^\w\s-]", "", heading).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def outside_fences(lines: list[str]) -> list[bool]:
    """For each line, whether it is ordinary text (not inside a fenced code block)."""
    flags = []
    fenced = False
    for line in lines:
        if FENCE.match(line):
            flags.append(False)
            fenced = not fenced
        else:
            flags.append(not fenced)
    return flags


def section(text: str, fragment: str, source: str) -> str:
    """The heading whose anchor is `fragment` and everything under it, up to the next
    heading of the same or a higher level."""
    lines = text.splitlines()
    plain = outside_fences(lines)
    start = level = None
    for number, line in enumerate(lines):
        match = HEADING.match(line) if plain[number] else None
        if not match:
            continue
        if start is None and slug(match["text"]) == fragment:
            start, level = number, len(match["hashes"])
        elif start is not None and len(match["hashes"]) <= level:
            return "\n".join(lines[start:number]).rstrip() + "\n"
    if start is None:
        raise PluginError(f"{source} has no heading with the anchor #{fragment}")
    return "\n".join(lines[start:]).rstrip() + "\n"


def is_relative(target: str) -> bool:
    return not (
        target.startswith(("#", "/", "mailto:")) or re.match(r"^[a-z][a-z0-9+.-]*:", target)
    )


class Site:
    """Where the repository, docs/ and the repository's web address are."""

    def __init__(self, config: Any) -> None:
        self.docs = Path(config["docs_dir"]).resolve()
        self.root = Path(config["config_file_path"]).resolve().parent
        self.repository = (config["extra"] or {}).get("repository")

    def rewrite_links(self, text: str, text_dir: Path, page_dir: Path, source: str) -> str:
        """Make the relative links of `text`, written from `text_dir`, work on a page whose
        source is in `page_dir`."""
        lines = text.splitlines(keepends=True)
        plain = outside_fences([line.rstrip("\n") for line in lines])

        def fix(match: re.Match[str]) -> str:
            target = match["target"]
            if not is_relative(target):
                return match[0]
            path, _, fragment = target.partition("#")
            file = Path(posixpath.normpath((text_dir / path).as_posix()))
            if not file.exists():
                raise PluginError(f"{source} links to {target}, and {file} does not exist")
            anchor = f"#{fragment}" if fragment else ""
            if file.is_dir() and (file / "index.md").is_file():
                file = file / "index.md"
            if file.is_relative_to(self.docs):
                new = Path(posixpath.relpath(file, page_dir)).as_posix() + anchor
            else:
                if not self.repository:
                    raise PluginError(
                        f"{source} links to {target}, outside docs/; set extra.repository "
                        "in mkdocs.yml to link to files of the repository"
                    )
                kind = "tree" if file.is_dir() else "blob"
                relative = file.relative_to(self.root).as_posix()
                new = f"{self.repository}/{kind}/main/{relative}{anchor}"
            return f"{match['head']}{new}{match['tail']}"

        return "".join(
            LINK.sub(fix, line) if plain[number] else line for number, line in enumerate(lines)
        )

    def expand_includes(self, markdown: str, page_dir: Path, source: str) -> str:
        lines = markdown.splitlines()
        plain = outside_fences(lines)
        out = []
        for number, line in enumerate(lines):
            match = INCLUDE.match(line) if plain[number] else None
            if not match:
                out.append(line)
                continue
            path, _, fragment = match["target"].partition("#")
            file = Path(posixpath.normpath((page_dir / path).as_posix()))
            if not file.is_file():
                raise PluginError(f"{source} includes {match['target']}, which does not exist")
            text = file.read_text(encoding="utf-8")
            if fragment:
                text = section(text, fragment, str(file.relative_to(self.root)))
            out.append(self.rewrite_links(text, file.parent, page_dir, source).rstrip("\n"))
        return "\n".join(out) + "\n"

    def decisions(self) -> list[tuple[str, str]]:
        """(path under docs/, title) of every decision record, in file name order."""
        records = []
        for file in sorted((self.docs / "decisions").glob("[0-9]*.md")):
            title = next(
                (
                    match["text"]
                    for line in file.read_text(encoding="utf-8").splitlines()
                    if (match := HEADING.match(line)) and len(match["hashes"]) == 1
                ),
                None,
            )
            if title is None:
                raise PluginError(f"{file.relative_to(self.root)} has no title (# heading)")
            records.append((file.relative_to(self.docs).as_posix(), title))
        return records


def on_config(config: Any) -> Any:
    site = Site(config)
    sections = [
        entry
        for entry in config["nav"] or []
        if isinstance(entry, dict) and DECISIONS_SECTION in entry
    ]
    if len(sections) != 1:
        raise PluginError(f'mkdocs.yml: the nav needs one section "{DECISIONS_SECTION}"')
    entries = sections[0][DECISIONS_SECTION]
    listed = {entry if isinstance(entry, str) else next(iter(entry.values())) for entry in entries}
    entries.extend(path for path, _ in site.decisions() if path not in listed)
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    site = Site(config)
    source = f"docs/{page.file.src_uri}"
    page_dir = Path(page.file.abs_src_path).resolve().parent
    markdown = site.expand_includes(markdown, page_dir, source)
    markdown = site.rewrite_links(markdown, page_dir, page_dir, source)
    if page.file.src_uri == "decisions/index.md":
        if DECISIONS_MARKER not in markdown:
            raise PluginError(f"{source} needs the line {DECISIONS_MARKER}")
        listing = "\n".join(f"- [{title}]({Path(path).name})" for path, title in site.decisions())
        markdown = markdown.replace(DECISIONS_MARKER, listing)
    return markdown


def on_serve(server: Any, config: Any, builder: Any) -> Any:
    """`mkdocs serve` rebuilds when the included files change, not only docs/."""
    root = Path(config["config_file_path"]).resolve().parent
    for name in ("README.md", "CHANGELOG.md"):
        server.watch(str(root / name))
    return server
