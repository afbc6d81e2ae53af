"""The documentation site: the questions reference matches copier.yml, `mkdocs build
--strict` passes, and every built page renders in a real browser with working links."""

from __future__ import annotations

import copy
import functools
import html
import importlib.util
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from urllib.parse import urldefrag, urlsplit

import pytest
import yaml
from playwright.sync_api import ConsoleMessage, Request, Response, sync_playwright
from support import COPIER_FILE, REPO_ROOT, questions


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reference = _load("questions_reference")
hooks = _load("docs_hooks")

SITE_NAME = yaml.safe_load((REPO_ROOT / "mkdocs.yml").read_text(encoding="utf-8"))["site_name"]


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        # Material's notice about its end of life would only bury a real error.
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )


def page_text(path: Path) -> str:
    """The visible text of a built page, tags dropped (highlighting splits code into spans)."""
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs") / "site"
    result = mkdocs_build(REPO_ROOT / "mkdocs.yml", out)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr}"
    return out


# --- the questions reference -------------------------------------------------------------


def test_questions_reference_is_up_to_date() -> None:
    written = (REPO_ROOT / "docs" / "questions.md").read_text(encoding="utf-8")
    expected = reference.render(yaml.safe_load(COPIER_FILE.read_text(encoding="utf-8")))
    assert written == expected, (
        "docs/questions.md is not what scripts/questions_reference.py writes from copier.yml. "
        f"Run `{reference.COMMAND}` and commit docs/questions.md."
    )


def test_every_question_says_what_it_adds() -> None:
    asked = set(questions())
    described = set(reference.ADDS)
    assert asked - described == set(), (
        f"Questions with no sentence in ADDS of scripts/questions_reference.py: "
        f"{sorted(asked - described)}"
    )
    assert described - asked == set(), f"ADDS describes no such question: {described - asked}"


def test_a_new_question_without_a_sentence_stops_the_script() -> None:
    config = yaml.safe_load(COPIER_FILE.read_text(encoding="utf-8"))
    config["audit_log"] = {"type": "bool", "help": "Audit log", "default": False}
    with pytest.raises(reference.MissingEntry, match="audit_log"):
        reference.render(config)
    page = reference.render(config, {**reference.ADDS, "audit_log": "An audit log."})
    assert "## `audit_log`" in page
    assert page != (REPO_ROOT / "docs" / "questions.md").read_text(encoding="utf-8")


SAMPLE = {
    "_subdirectory": "template",
    "reserved": {"type": "yaml", "when": False, "default": ["json"]},
    "name": {"type": "str", "help": "Service name", "default": "Billing API"},
    "slug": {
        "type": "str",
        "help": "Slug",
        "default": "{{ name | lower | regex_replace('[^a-z0-9]+', '-') }}",
        "validator": "{% if not slug %}Type a slug, not {{ slug }}.{% endif %}",
    },
    "store": {
        "type": "str",
        "help": "Store",
        "choices": {"A real database": "db", "Nothing": "none"},
        "default": "db",
    },
    "existing_service": {"type": "bool", "when": False, "default": "{{ 'x' in _copier_answers }}"},
    "audit": {
        "type": "bool",
        "help": "Audit{{ ' in the database' if store != 'none' else '' }}",
        "default": "{{ store != 'none' and not existing_service }}",
        "when": "{{ store != 'none' }}",
    },
}
SAMPLE_ADDS = {name: f"adds {name}" for name in ("name", "slug", "store", "audit")}


def test_the_reference_shows_what_copier_yml_says() -> None:
    page = reference.render(copy.deepcopy(SAMPLE), SAMPLE_ADDS)
    headings = re.findall(r"^## `(\w+)`$", page, flags=re.M)
    assert headings == ["name", "slug", "store", "audit"]  # no settings, no computed values
    assert "reserved" not in page and "_subdirectory" not in page
    # A computed default: the expression, where it comes from, and its value.
    assert "Computed from `name`: `{{ name | lower" in page
    assert "With the other defaults: `billing-api`." in page
    # A default that depends on `existing_service`: new and updated services differ, and the
    # page explains it once.
    assert "`true` for a new service, `false` for a service updated" in page
    assert "| [`audit`](#audit) | yes or no | new: `true`; updated: `false` |" in page
    assert page.count("`existing_service` is true when copier reads") == 1
    assert "    - `db`: A real database" in page
    assert "- **Asked:** only when `store != 'none'`" in page
    assert "Audit in the database." in page
    assert "It changes with `store`." in page
    assert "- **Refused, with the message:** Type a slug, not &lt;slug&gt;." in page
    assert "- **Adds:** adds store" in page

    plain = {name: spec for name, spec in SAMPLE.items() if name != "audit"}
    assert "existing_service" not in reference.render(plain, SAMPLE_ADDS)


# --- the hooks ------------------------------------------------------------------------------


def test_a_section_ends_at_the_next_heading_of_its_level() -> None:
    text = (
        "# Title\n\n## Two commands\n\nRun:\n\n```bash\n# not a heading\nuv run x\n```\n\n"
        "### Detail\n\nmore\n\n## Documentation\n\nother\n"
    )
    part = hooks.section(text, "two-commands", "README.md")
    assert part.startswith("## Two commands\n")
    assert "# not a heading" in part and "### Detail" in part
    assert "Documentation" not in part
    with pytest.raises(hooks.PluginError, match="#missing"):
        hooks.section(text, "missing", "README.md")


# --- the build ------------------------------------------------------------------------------


def test_the_site_builds_with_every_page(site: Path) -> None:
    sources = sorted(
        path.relative_to(REPO_ROOT / "docs").with_suffix("").as_posix()
        for path in (REPO_ROOT / "docs").rglob("*.md")
    )
    assert len(sources) > 10
    for source in sources:
        index = source == "index" or source.endswith("/index")
        built = site / (f"{source}.html" if index else f"{source}/index.html")
        assert built.is_file(), f"docs/{source}.md was not built"


def test_the_home_page_has_the_readme_commands(site: Path) -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    two_commands = hooks.section(readme, "two-commands", "README.md")
    commands = re.findall(r"```bash\n(.*?)```", two_commands, flags=re.S)
    assert commands, "README.md's Two commands section has no bash block"
    home = page_text(site / "index.html")
    for command in commands:
        assert command.strip() in home


def test_the_changelog_page_is_the_changelog(site: Path) -> None:
    changelog = (REPO_ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    built = site / "changelog" / "index.html"
    text = page_text(built)
    headings = re.findall(r"^#+ (.+)$", changelog, flags=re.M)
    assert len(headings) > 3
    for heading in headings:
        assert heading in text
    assert 'title="include"' not in built.read_text(encoding="utf-8")


def test_the_decisions_index_lists_every_record(site: Path) -> None:
    index = (site / "decisions" / "index.html").read_text(encoding="utf-8")
    home = (site / "index.html").read_text(encoding="utf-8")
    records = sorted((REPO_ROOT / "docs" / "decisions").glob("[0-9]*.md"))
    assert records
    for record in records:
        assert f'href="{record.stem}/"' in index, f"decisions index misses {record.name}"
        assert f'href="decisions/{record.stem}/"' in home, f"nav misses {record.name}"


def _copy_of_the_sources(dest: Path) -> Path:
    skip = shutil.ignore_patterns(".git", ".venv", "site", "template", "__pycache__", "*cache*")
    shutil.copytree(REPO_ROOT, dest, ignore=skip)
    return dest


@pytest.mark.parametrize(
    ("file", "old", "new", "error"),
    [
        ("docs/releasing.md", "(layout.md)", "(layouts.md)", "layouts.md"),
        ("docs/releasing.md", "(layout.md)", "(layout.md#nowhere)", "nowhere"),
        ("docs/releasing.md", "(layout.md)", "(../no-such-file.md)", "no-such-file.md"),
        ("README.md", "## Two commands", "## Two steps", "two-commands"),
    ],
    ids=["missing page", "missing anchor", "missing repository file", "renamed README heading"],
)
def test_a_broken_link_fails_the_build(
    tmp_path: Path, file: str, old: str, new: str, error: str
) -> None:
    repo = _copy_of_the_sources(tmp_path / "repo")
    target = repo / file
    assert old in target.read_text(encoding="utf-8")
    target.write_text(target.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
    result = mkdocs_build(repo / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0
    assert error in result.stderr


# --- in a browser ---------------------------------------------------------------------------

BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium() -> str:
    names = (os.environ.get("CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome")
    for name in names:
        found = name and shutil.which(name)
        if found:
            return found
    pytest.fail("no Chromium on PATH: install it with `apt-get install -y chromium` (.ci/run does)")


@pytest.fixture
def served(site: Path) -> Iterator[str]:
    """The built site over HTTP on a free loopback port."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=site))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def page_urls(site: Path, base: str) -> list[str]:
    urls = []
    for path in sorted(site.rglob("*.html")):
        relative = path.relative_to(site).as_posix()
        urls.append(f"{base}/{relative.removesuffix('index.html')}")
    return urls


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


# 17 to 30 s on a shared 2-core machine: each page waits for the network to go quiet.
@pytest.mark.slow
def test_every_page_renders_and_its_links_resolve(site: Path, served: str, tmp_path: Path) -> None:
    executable = chromium()

    statuses: dict[str, int] = {}
    bodies: dict[str, str] = {}

    def fetch(url: str) -> int:
        if url not in statuses:
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    statuses[url] = response.status
                    bodies[url] = response.read().decode("utf-8", "replace")
            except urllib.error.HTTPError as error:
                statuses[url] = error.code
        return statuses[url]

    pages = page_urls(site, served)
    assert len(pages) > 10
    problems: list[str] = []
    checked_links = 0
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=BROWSER_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        events: list[str] = []

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                events.append(f"console error: {message.text}")

        def on_request(request: Request) -> None:
            if not request.url.startswith(served):
                events.append(f"request to another host: {request.url}")

        def on_response(response: Response) -> None:
            if response.status >= 400:
                events.append(f"{response.status}: {response.url}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: events.append(f"script error: {error}"))
        page.on("requestfailed", lambda r: events.append(f"failed: {r.url} {r.failure}"))
        page.on("request", on_request)
        page.on("response", on_response)
        for url in pages:
            events.clear()
            response = page.goto(url, wait_until="networkidle")
            here = urlsplit(url).path
            if response is None or response.status != 200:
                problems.append(f"{here}: answered {response and response.status}")
                continue
            if SITE_NAME not in page.title():
                problems.append(f"{here}: title {page.title()!r}")
            if page.locator("header.md-header").count() != 1:
                problems.append(f"{here}: no Material header")
            if page.locator("article.md-content__inner h1").count() < 1:
                problems.append(f"{here}: no page heading")
            problems += [f"{here}: {event}" for event in events]
            links = page.eval_on_selector_all(
                "a[href], link[href], script[src], img[src]",
                "elements => elements.map(e => e.href || e.src)",
            )
            for link in links:
                if not link.startswith(served):
                    continue
                checked_links += 1
                target, fragment = urldefrag(link)
                status = fetch(target)
                if status != 200:
                    problems.append(f"{here}: link {link} answers {status}")
                elif fragment and f'id="{fragment}"' not in bodies[target]:
                    problems.append(f"{here}: link {link} has no element #{fragment}")

        page.goto(f"{served}/questions/", wait_until="networkidle")
        assert page.locator("article table").first.is_visible()
        shot = page.screenshot(path=str(tmp_path / "questions.png"))
        assert png_size(shot) == (1280, 900)
        browser.close()

    assert problems == [], "\n".join(problems)
    assert checked_links > len(pages) * 10
