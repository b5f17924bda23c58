"""The README's reference tables are generated; this keeps them from drifting."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from sidecar.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_config_reference_is_current() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["config"]) == 0
    text = README.read_text()
    marker = "<!-- config-reference:start -->\n"
    start = text.index(marker) + len(marker)
    end = text.index("<!-- config-reference:end -->")
    assert text[start:end] == out.getvalue(), "run `recaptcha-sidecar config` and paste it"
