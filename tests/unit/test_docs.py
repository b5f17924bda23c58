"""The reference docs: generated tables stay current, links resolve, every page is listed."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from sidecar.cli import main

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
CONFIG_DOCS = DOCS / "configuration.md"

# Markdown links and images: [text](target) and ![alt](target); autolinks and URLs are skipped.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", flags=re.DOTALL | re.MULTILINE)


SKIPPED = {".git", ".venv", ".tools", "node_modules", "target", "dist", ".pytest_cache"}


def _documents() -> list[Path]:
    """Every Markdown file of the project (not of what the toolchains install)."""
    return sorted(p for p in ROOT.rglob("*.md") if not SKIPPED & set(p.relative_to(ROOT).parts))


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    text = FENCE.sub("", path.read_text())
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def test_config_reference_is_current() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["config"]) == 0
    text = CONFIG_DOCS.read_text()
    marker = "<!-- config-reference:start -->\n"
    start = text.index(marker) + len(marker)
    end = text.index("<!-- config-reference:end -->")
    assert text[start:end] == out.getvalue(), (
        "run `recaptcha-sidecar config` and paste it into docs/configuration.md"
    )


@pytest.mark.parametrize("document", _documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(document: Path) -> None:
    """A moved section or file must not leave a dead link (or a dead anchor) behind."""
    broken = []
    for target in LINK.findall(FENCE.sub("", document.read_text())):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        resolved = (document.parent / path).resolve() if path else document
        dead_anchor = bool(anchor) and resolved.suffix == ".md" and resolved.exists()
        if not resolved.exists() or (dead_anchor and anchor not in _anchors(resolved)):
            broken.append(target)
    assert not broken, f"{document.relative_to(ROOT)}: dead links {broken}"


def test_every_docs_page_is_listed_in_the_index_and_the_readme() -> None:
    pages = {p.name for p in DOCS.glob("*.md")} - {"README.md"}
    assert len(pages) >= 10
    index = (DOCS / "README.md").read_text()
    readme = README.read_text()
    assert not [p for p in pages if f"]({p})" not in index], "list the page in docs/README.md"
    assert not [p for p in pages if f"](docs/{p})" not in readme], "list the page in README.md"


def test_readme_fits_the_first_screens_promise() -> None:
    """The README is the way in: what it is, two commands, first calls, a table, links."""
    lines = README.read_text().splitlines()
    assert len(lines) <= 200, "move reference material into docs/"
