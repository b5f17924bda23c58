"""Account ids are protected on the wire, in Assess and Annotate alike: what the emulator (the
stand-in for Google) recorded is the protected form, and it is the same form every time."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
from pathlib import Path

import grpc
import pytest
from recaptcha.sidecar.v1 import sidecar_pb2 as pb

from sidecar.accountid.protection import KEY_ENV, DeterministicEncryptionProtector
from sidecar.emulator import mint_token
from tests.conftest import EmulatorHandle, SidecarFactory, SidecarHandle

KEY = os.urandom(64)
ACCOUNT = "alice@example.com"
USER_IDS = [pb.UserId(email="alice@example.com"), pb.UserId(phone_number="+15550100")]


async def assess_and_annotate(handle: SidecarHandle, emulator: EmulatorHandle) -> tuple[str, str]:
    """The account id upstream saw in CreateAssessment, then in AnnotateAssessment."""
    answer = await handle.stub.Assess(
        pb.AssessRequest(
            token=mint_token(action="login"),
            expected_action="login",
            account_id=ACCOUNT,
            user_ids=USER_IDS,
        ),
        timeout=5,
    )
    assert answer.allowed
    await handle.stub.Annotate(
        pb.AnnotateRequest(
            assessment_name=answer.assessment_name,
            annotation=pb.ANNOTATION_LEGITIMATE,
            reasons=[pb.ANNOTATION_REASON_CORRECT_PASSWORD],
            account_id=ACCOUNT,
            wait_for_upstream=True,
        ),
        timeout=5,
    )
    stats = await emulator.control.stats()
    event = stats["recent_creates"][-1]["event"]
    # user_ids go as given: Google reads them as real e-mail addresses and E.164 numbers
    assert event["user_info"]["user_ids"] == [
        {"email": "alice@example.com"},
        {"phone_number": "+15550100"},
    ]
    annotation = stats["annotations"][-1]
    assert annotation["name"] == answer.assessment_name
    return event["user_info"]["account_id"], annotation["account_id"]


async def test_plain_sends_ids_as_given(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle
) -> None:
    handle = await make_sidecar(account_id_protection="plain")
    assert await assess_and_annotate(handle, emulator) == (ACCOUNT, ACCOUNT)


async def test_hmac_sha256_from_the_environment(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, base64.b64encode(KEY).decode())
    handle = await make_sidecar(account_id_protection="hmac-sha256")
    expected = hmac.new(KEY, ACCOUNT.encode(), hashlib.sha256).hexdigest()
    assert await assess_and_annotate(handle, emulator) == (expected, expected)
    # the same account maps to the same id on every call, so account defender can follow it
    assert await assess_and_annotate(handle, emulator) == (expected, expected)


async def test_deterministic_encryption_from_a_key_file(
    make_sidecar: SidecarFactory,
    emulator: EmulatorHandle,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    key_file = tmp_path / "key"
    key_file.write_text(base64.b64encode(KEY).decode() + "\n")
    config = tmp_path / "c.yaml"
    config.write_text(
        f"account_id_protection: deterministic-encryption\naccount_id_key_file: {key_file}\n"
    )
    handle = await make_sidecar(config)
    assessed, annotated = await assess_and_annotate(handle, emulator)
    assert assessed == annotated != ACCOUNT
    assert ACCOUNT not in assessed
    # ids that come back from Google decrypt to the app's id, with the key alone
    assert DeterministicEncryptionProtector(KEY).reveal(assessed) == ACCOUNT
    assert await assess_and_annotate(handle, emulator) == (assessed, annotated)
    assert ACCOUNT not in caplog.text


async def test_a_second_sidecar_with_the_same_key_agrees(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Configured once for all apps: two pods (two sidecars) protect an id identically."""
    monkeypatch.setenv(KEY_ENV, base64.b64encode(KEY).decode())
    first = await make_sidecar(account_id_protection="deterministic-encryption")
    second = await make_sidecar(account_id_protection="deterministic-encryption")
    assert await assess_and_annotate(first, emulator) == await assess_and_annotate(second, emulator)


async def test_requests_without_an_account_carry_none(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, base64.b64encode(KEY).decode())
    handle = await make_sidecar(account_id_protection="hmac-sha256")
    await handle.stub.Assess(pb.AssessRequest(token=mint_token()), timeout=5)
    event = (await emulator.control.stats())["recent_creates"][-1]["event"]
    assert "user_info" not in event or not event["user_info"].get("account_id")


def _outbox_bytes(folder: Path) -> bytes:
    """The database and its WAL, as written to disk."""
    return b"".join(p.read_bytes() for p in sorted(folder.glob("outbox.sqlite3*")))


async def test_outbox_never_stores_a_clear_account_id(
    make_sidecar: SidecarFactory,
    emulator: EmulatorHandle,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(KEY_ENV, base64.b64encode(KEY).decode())
    outbox = tmp_path / "outbox.sqlite3"
    await emulator.control.set_faults("annotate", error_rate=1.0)  # keep it queued
    handle = await make_sidecar(account_id_protection="hmac-sha256", outbox=outbox)
    answer = await handle.stub.Assess(pb.AssessRequest(token=mint_token()), timeout=5)
    queued = await handle.stub.Annotate(
        pb.AnnotateRequest(assessment_name=answer.assessment_name, account_id=ACCOUNT),
        timeout=5,
    )
    assert queued.delivery == pb.ANNOTATION_DELIVERY_QUEUED
    stored = _outbox_bytes(tmp_path)
    expected = hmac.new(KEY, ACCOUNT.encode(), hashlib.sha256).hexdigest()
    assert ACCOUNT.encode() not in stored
    assert expected.encode() in stored  # the row is there, in its protected form


@pytest.mark.parametrize("outbox", [False, True])
async def test_a_long_account_id_is_judged_by_its_own_length_not_its_ciphertext(
    make_sidecar: SidecarFactory,
    emulator: EmulatorHandle,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    outbox: bool,
) -> None:
    """A 7,000-byte id is legal (the limit is 8,192); its AES-SIV ciphertext in base64 is
    ~9,360 characters. Validated once, before protection, it is accepted and delivered in its
    protected form, directly and through the outbox alike."""
    monkeypatch.setenv(KEY_ENV, base64.b64encode(KEY).decode())
    options: dict[str, object] = {"account_id_protection": "deterministic-encryption"}
    if outbox:
        options["outbox"] = tmp_path / "outbox.sqlite3"
    handle = await make_sidecar(**options)
    account = "a" * 7_000
    answer = await handle.stub.Assess(
        pb.AssessRequest(token=mint_token(action="login"), expected_action="login"), timeout=5
    )
    delivered = await handle.stub.Annotate(
        pb.AnnotateRequest(
            assessment_name=answer.assessment_name,
            annotation=pb.ANNOTATION_LEGITIMATE,
            account_id=account,
            wait_for_upstream=True,
        ),
        timeout=5,
    )
    assert delivered.delivery == pb.ANNOTATION_DELIVERY_DELIVERED
    sent = (await emulator.control.stats())["annotations"][-1]["account_id"]
    assert len(sent) > 8_192
    assert DeterministicEncryptionProtector(KEY).reveal(sent) == account
    too_long = pb.AnnotateRequest(assessment_name=answer.assessment_name, account_id="a" * 8_193)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await handle.stub.Annotate(too_long, timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "account_id" in (caught.value.details() or "")
