"""The benchmark's results in docs/benchmark.md are what `make bench` writes, not hand edits."""

from __future__ import annotations

import json
import os
from pathlib import Path

from bench import report, run
from bench.scenarios import SCENARIOS


def _block_for_latest() -> str:
    result = json.loads((run.RESULTS / "latest.json").read_text())
    what = {s.name: s.what for s in SCENARIOS}
    rows = [(s["name"], what[s["name"]]) for s in result["scenarios"]]
    plot = os.path.relpath(run.RESULTS / "latest.png", run.DOCS_PAGE.parent)
    return report.docs_block(result, rows, plot)


def test_docs_page_holds_the_latest_results() -> None:
    text = run.DOCS_PAGE.read_text()
    start = text.index(report.DOCS_START)
    end = text.index(report.DOCS_END) + len(report.DOCS_END)
    assert text[start:end] == _block_for_latest(), "rerun `make bench` (it rewrites the block)"


def test_update_docs_replaces_only_the_marked_block(tmp_path: Path) -> None:
    page = tmp_path / "benchmark.md"
    page.write_text(f"before\n{report.DOCS_START}\nold\n{report.DOCS_END}\nafter\n")
    assert report.update_docs(page, f"{report.DOCS_START}\nnew\n{report.DOCS_END}")
    assert page.read_text() == f"before\n{report.DOCS_START}\nnew\n{report.DOCS_END}\nafter\n"
    bare = tmp_path / "bare.md"
    bare.write_text("no markers\n")
    assert not report.update_docs(bare, "x")
    assert bare.read_text() == "no markers\n"
