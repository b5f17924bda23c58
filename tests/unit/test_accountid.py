"""Account-id protection: known vectors, round trips, key handling, the settings and the CLI."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.accountid.protection import (
    KEY_ENV,
    AccountIdDecryptError,
    AccountIdKeyError,
    DeterministicEncryptionProtector,
    HmacSha256Protector,
    PlainProtector,
    Protection,
    build_protector,
    decode_key,
)
from sidecar.cli import main
from sidecar.config import ConfigError, load_settings
from sidecar.server.module_settings import account_id_protector

# RFC 5297 appendix A.1 (deterministic authenticated encryption example).
SIV_KEY = bytes.fromhex("fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
SIV_AD = bytes.fromhex("101112131415161718191a1b1c1d1e1f2021222324252627")
SIV_PLAINTEXT = bytes.fromhex("112233445566778899aabbccddee")
SIV_OUTPUT = bytes.fromhex("85632d07c6e8f37f950acd320a2ecc9340c02b9690c4dc04daef7f6afe5c")

KEY64 = bytes(range(64))
KEY64_B64 = base64.b64encode(KEY64).decode()


@pytest.mark.parametrize(
    ("key", "data", "mac"),
    [
        # RFC 4231 test case 1
        (
            b"\x0b" * 20,
            "Hi There",
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        ),
        # RFC 4231 test case 2 (a key shorter than the block)
        (
            b"Jefe",
            "what do ya want for nothing?",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        # RFC 4231 test case 6 (a key longer than the block: hashed first)
        (
            b"\xaa" * 131,
            "Test Using Larger Than Block-Size Key - Hash Key First",
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        ),
    ],
)
def test_hmac_sha256_known_vectors(key: bytes, data: str, mac: str) -> None:
    assert HmacSha256Protector(key).protect(data) == mac


def test_aes_siv_rfc5297_vector() -> None:
    siv = DeterministicEncryptionProtector(SIV_KEY, associated_data=[SIV_AD])
    assert siv.encrypt(SIV_PLAINTEXT) == SIV_OUTPUT
    assert siv.decrypt(SIV_OUTPUT) == SIV_PLAINTEXT
    tampered = bytes([SIV_OUTPUT[0] ^ 1]) + SIV_OUTPUT[1:]
    with pytest.raises(AccountIdDecryptError):
        siv.decrypt(tampered)


def test_protected_forms() -> None:
    siv = DeterministicEncryptionProtector(KEY64)
    protected = siv.protect("user-42")
    assert protected == siv.protect("user-42")  # deterministic: one account, one id upstream
    assert protected != siv.protect("user-43")
    assert "=" not in protected and "+" not in protected and "/" not in protected
    assert len(base64.urlsafe_b64decode(protected + "==")) == 16 + len("user-42")
    assert siv.reveal(protected) == "user-42"
    mac = HmacSha256Protector(KEY64).protect("user-42")
    assert len(mac) == 64 and mac == mac.lower()
    assert PlainProtector().protect("user-42") == "user-42"
    for protector in (siv, HmacSha256Protector(KEY64), PlainProtector()):
        assert protector.protect("") == ""


@settings(max_examples=300, deadline=None)
@given(account_id=st.text(min_size=1, max_size=200), key_size=st.sampled_from([32, 48, 64]))
def test_encryption_round_trips(account_id: str, key_size: int) -> None:
    account_id = account_id.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    siv = DeterministicEncryptionProtector(os.urandom(key_size))
    assert siv.reveal(siv.protect(account_id)) == account_id


def test_reveal_refuses_what_it_did_not_encrypt() -> None:
    siv = DeterministicEncryptionProtector(KEY64)
    other = DeterministicEncryptionProtector(bytes(64))
    for value, why in [
        (other.protect("user-42"), "this key"),
        ("not base64 !!", "base64"),
        ("abcd", "too short"),
        (siv.protect("user-42")[:-4], "this key"),  # truncated by 3 bytes
    ]:
        with pytest.raises(AccountIdDecryptError, match=why):
            siv.reveal(value)


def test_keys() -> None:
    assert decode_key(KEY64_B64, "x") == KEY64
    urlsafe = base64.urlsafe_b64encode(KEY64).decode().rstrip("=")
    assert decode_key(urlsafe, "x") == KEY64
    wrapped = "\n".join(KEY64_B64[i : i + 20] for i in range(0, len(KEY64_B64), 20)) + "\n"
    assert decode_key(wrapped, "x") == KEY64
    with pytest.raises(AccountIdKeyError, match="not base64"):
        decode_key("this is not base64!", "x")
    with pytest.raises(AccountIdKeyError, match="empty"):
        decode_key("  \n", "x")
    with pytest.raises(AccountIdKeyError, match="32, 48 or 64"):
        DeterministicEncryptionProtector(bytes(16))


def test_build_protector(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(KEY64_B64 + "\n")
    assert isinstance(build_protector("plain"), PlainProtector)
    siv = build_protector("deterministic-encryption", key_file)
    assert isinstance(siv, DeterministicEncryptionProtector)
    assert siv.reveal(siv.protect("a")) == "a"
    # the file wins over the environment's value
    mac = build_protector(Protection.HMAC_SHA256, key_file, base64.b64encode(b"y" * 32).decode())
    assert mac.protect("a") == HmacSha256Protector(KEY64).protect("a")
    from_env = build_protector("hmac-sha256", None, base64.b64encode(b"y" * 32).decode())
    assert from_env.protect("a") == HmacSha256Protector(b"y" * 32).protect("a")
    with pytest.raises(AccountIdKeyError, match=KEY_ENV):
        build_protector("hmac-sha256")
    with pytest.raises(AccountIdKeyError, match="at least 16"):
        build_protector("hmac-sha256", None, base64.b64encode(b"short").decode())
    with pytest.raises(AccountIdKeyError, match="No such file"):
        build_protector("deterministic-encryption", tmp_path / "absent")
    secret = base64.b64encode(b"k" * 20).decode()
    with pytest.raises(AccountIdKeyError) as caught:
        build_protector("deterministic-encryption", None, secret)
    assert secret not in str(caught.value)  # errors never show the key


# ---- settings --------------------------------------------------------------------------------


def test_settings_take_the_key_from_a_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(KEY64_B64)
    settings = load_settings(
        emulator=True,
        account_id_protection="deterministic-encryption",
        account_id_key_file=key_file,
    )
    assert account_id_protector(settings).protect("a") == DeterministicEncryptionProtector(
        KEY64
    ).protect("a")
    monkeypatch.setenv(KEY_ENV, KEY64_B64)
    monkeypatch.setenv("RECAPTCHA_SIDECAR_ACCOUNT_ID_PROTECTION", "hmac-sha256")
    settings = load_settings(emulator=True)
    assert account_id_protector(settings).protect("a") == HmacSha256Protector(KEY64).protect("a")
    assert KEY64_B64 not in repr(settings)


@pytest.mark.parametrize(
    ("config", "env", "fragment"),
    [
        (
            "account_id_protection: hmac-sha256\naccount_id_key: c2VjcmV0c2VjcmV0c2VjcmV0\n",
            {},
            "account_id_key: not read from the config file",
        ),
        ("account_id_protection: hmac-sha256\n", {}, KEY_ENV),
        (
            "account_id_protection: deterministic-encryption\naccount_id_key_file: /nonexistent\n",
            {},
            "account_id_key_file /nonexistent",
        ),
        (
            "account_id_protection: deterministic-encryption\n",
            {KEY_ENV: base64.b64encode(b"x" * 20).decode()},
            "32, 48 or 64",
        ),
        ("account_id_protection: rot13\n", {}, "account_id_protection"),
    ],
)
def test_bad_account_id_settings_stop_the_start(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    config: str,
    env: dict[str, str],
    fragment: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "c.yaml"
    path.write_text("emulator: true\n" + config)
    with pytest.raises(ConfigError, match="account_id") as caught:
        load_settings(path)
    assert fragment in str(caught.value)


# ---- the CLI ---------------------------------------------------------------------------------


def run_cli(
    args: list[str], stdin: str = "", monkeypatch: pytest.MonkeyPatch | None = None
) -> tuple[int, str, str]:
    import contextlib
    import sys

    out, err = io.StringIO(), io.StringIO()
    old_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(args)
    finally:
        sys.stdin = old_stdin
    return code, out.getvalue(), err.getvalue()


def test_cli_protect_then_decrypt(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(KEY64_B64)
    config = tmp_path / "c.yaml"
    config.write_text(
        f"account_id_protection: deterministic-encryption\naccount_id_key_file: {key_file}\n"
    )
    code, out, _ = run_cli(["account-id", "protect", "--config", str(config), "alice", "bob"])
    assert code == 0
    protected = out.split()
    assert len(protected) == 2 and protected[0] != "alice"
    code, out, _ = run_cli(["account-id", "decrypt", "--config", str(config), *protected])
    assert (code, out) == (0, "alice\nbob\n")
    # one per stdin line, and a bad value is reported by position without stopping the rest
    code, out, err = run_cli(
        ["account-id", "decrypt", "--key-file", str(key_file)],
        stdin=f"{protected[1]}\nnot-a-ciphertext\n{protected[0]}\n",
    )
    assert (code, out) == (1, "bob\nalice\n")
    assert "value 2" in err and "not-a-ciphertext" not in err


def test_cli_refuses_what_cannot_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    code, _, err = run_cli(["account-id", "decrypt", "x"])
    assert code == 2 and KEY_ENV in err
    monkeypatch.setenv(KEY_ENV, KEY64_B64)
    code, _, err = run_cli(["account-id", "decrypt", "--mode", "hmac-sha256", "x"])
    assert code == 2 and "only deterministic-encryption" in err
    code, out, _ = run_cli(["account-id", "protect", "--mode", "hmac-sha256", "alice"])
    assert (code, out) == (0, HmacSha256Protector(KEY64).protect("alice") + "\n")
    code, _, err = run_cli(["account-id", "protect", "alice"])
    assert code == 2 and "--mode" in err
    bad = tmp_path / "c.yaml"
    bad.write_text("account_id_key: abc\n")
    code, _, err = run_cli(["account-id", "protect", "--config", str(bad), "alice"])
    assert code == 2 and "not read from the config file" in err
