"""siteverify_secrets_file: parsing, reload, and what never leaks."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from sidecar.server.siteverify_secrets import SecretsFileError, SiteverifySecrets, parse_secrets


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))


def test_pairs_comments_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "secrets"
    path.write_text("# legacy secrets\n\nsecret-one  key-one\n\tsecret-two key_two  \n")
    secrets = SiteverifySecrets(path)
    assert len(secrets) == 2
    assert secrets.site_key_for("secret-one") == "key-one"
    assert secrets.site_key_for("secret-two") == "key_two"
    assert secrets.site_key_for("secret-on") is None
    assert secrets.site_key_for("") is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("only-a-secret\n", "line 1: expected `SECRET SITE_KEY`"),
        ("# c\ns k extra\n", "line 2: expected"),
        ("zq-secret key/with/slash\n", "line 1: the site key must be"),
        ("zq-secret k1\nzq-secret k2\n", "line 2: this secret is already mapped"),
        ("# nothing\n", "no `SECRET SITE_KEY` pair"),
        ("x" * 2000 + " k\n", "secret over 1024 bytes"),
    ],
)
def test_bad_files_name_the_line_never_the_secret(text: str, problem: str) -> None:
    with pytest.raises(SecretsFileError, match=problem) as caught:
        parse_secrets(text, "secrets.txt")
    first = text.split()[0]
    if not first.startswith("#"):
        assert first not in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SecretsFileError, match="cannot read"):
        SiteverifySecrets(tmp_path / "absent")


def test_reloaded_on_change_and_a_broken_update_keeps_the_last_good(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "secrets"
    path.write_text("old-secret k1\n")
    secrets = SiteverifySecrets(path)
    _write(path, "new-secret k2\n")
    assert secrets.site_key_for("new-secret") == "k2"
    assert secrets.site_key_for("old-secret") is None
    caplog.set_level(logging.WARNING)
    _write(path, "half-written-secret\n")
    assert secrets.site_key_for("new-secret") == "k2"
    assert "keeping the previous one" in caplog.text
    assert "half-written-secret" not in caplog.text
