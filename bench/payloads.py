"""What the load generator sends: a protoset for ghz and data files of fresh tokens.

Tokens are minted in the emulator's documented format (`emu1.` + base64url JSON, see
sidecar/emulator/README.md) right before each measurement: they expire 120 s after `iat`, and
each is unique, so the cache-miss path really misses and upstream really assesses. ghz cycles
through the messages of its data file, so a file holds at least as many messages as the
measurement may send (the runner checks the count afterwards). The file holds serialized
messages, each prefixed with its varint length (ghz `--binary-file`): ghz then decodes them
once at start instead of converting JSON per request, which keeps the load generator's own CPU
(it shares the machine with the servers) lower.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path

from google.cloud.recaptchaenterprise_v1.types import CreateAssessmentRequest
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.internal.encoder import _VarintBytes
from recaptcha.sidecar.v1 import sidecar_pb2

import sidecar.emulator.service as emulator_service  # registers the Google service descriptor

GOOGLE_SERVICE = emulator_service.SERVICE_NAME
ASSESS = "recaptcha.sidecar.v1.VerificationService.Assess"
ANNOTATE = "recaptcha.sidecar.v1.VerificationService.Annotate"
CREATE = GOOGLE_SERVICE + ".CreateAssessment"
PARENT = "projects/bench"
ACTION = "login"
_CreateAssessmentRequest = CreateAssessmentRequest.pb()


def write_protoset(path: Path) -> Path:
    """Every service the benchmark calls, with its imports, as one FileDescriptorSet."""
    pool = descriptor_pool.Default()
    ordered: list[str] = []

    def visit(name: str) -> None:
        if name in ordered:
            return
        for dependency in pool.FindFileByName(name).dependencies:
            visit(dependency.name)
        ordered.append(name)

    visit(sidecar_pb2.DESCRIPTOR.name)
    visit(pool.FindServiceByName(GOOGLE_SERVICE).file.name)
    files = descriptor_pb2.FileDescriptorSet()
    for name in ordered:
        pool.FindFileByName(name).CopyToProto(files.file.add())
    path.write_bytes(files.SerializeToString())
    return path


def mint(count: int, *, action: str = ACTION) -> list[str]:
    """`count` distinct valid emulator tokens issued now (a random nonce makes each unique)."""
    issued = int(time.time())
    head = f'{{"score":0.9,"action":"{action}","hostname":"localhost","iat":{issued},"nonce":"'
    nonces = os.urandom(8 * count).hex()
    encode = base64.urlsafe_b64encode
    return [
        "emu1."
        + encode((head + nonces[16 * i : 16 * i + 16] + '"}').encode()).rstrip(b"=").decode()
        for i in range(count)
    ]


def assess_requests(tokens: Iterable[str]) -> list[bytes]:
    """AssessRequest for the sidecar: what an app sends."""
    message = sidecar_pb2.AssessRequest(expected_action=ACTION)
    out = []
    for token in tokens:
        message.token = token
        out.append(message.SerializeToString())
    return out


SHIELD_IP = "203.0.113.9"


def shield_requests(count: int) -> list[bytes]:
    """What a flood of junk looks like, in thirds: blank tokens (MISSING), tokens the shape
    filter refuses (INVALID token_shape:*), and distinct Google-shaped junk from one IP over
    its `per: ip` limit (UNCHECKED rate_limited:ip): none of them costs an upstream call
    (but the first limited one)."""
    out = []
    blank = sidecar_pb2.AssessRequest(expected_action=ACTION).SerializeToString()
    short = sidecar_pb2.AssessRequest(token="x", expected_action=ACTION).SerializeToString()
    limited = sidecar_pb2.AssessRequest(expected_action=ACTION, user_ip_address=SHIELD_IP)
    nonces = os.urandom(24 * count).hex()
    for i in range(count):
        kind = i % 3
        if kind == 0:
            out.append(blank)
        elif kind == 1:
            out.append(short)
        else:
            limited.token = "03A" + nonces[48 * i : 48 * i + 48]
            out.append(limited.SerializeToString())
    return out


def create_requests(tokens: Iterable[str]) -> list[bytes]:
    """CreateAssessmentRequest for the direct and pass-through baselines: the request the
    sidecar itself sends upstream for an AssessRequest, so every path carries the same event."""
    message = _CreateAssessmentRequest(parent=PARENT)
    message.assessment.event.expected_action = ACTION
    out = []
    for token in tokens:
        message.assessment.event.token = token
        out.append(message.SerializeToString())
    return out


def rest_bodies(tokens: Iterable[str]) -> list[str]:
    """The REST face's CreateAssessment bodies (an `Assessment` in Google's JSON, one per
    line): the same event as `create_requests`."""
    return [
        json.dumps({"event": {"token": token, "expectedAction": ACTION}}, separators=(",", ":"))
        for token in tokens
    ]


def annotate_requests(names: Iterable[str]) -> list[bytes]:
    """AnnotateRequest: a LEGITIMATE outcome for assessments the emulator made."""
    message = sidecar_pb2.AnnotateRequest(
        annotation=sidecar_pb2.ANNOTATION_LEGITIMATE,
        reasons=[sidecar_pb2.ANNOTATION_REASON_CORRECT_PASSWORD],
    )
    out = []
    for name in names:
        message.assessment_name = name
        out.append(message.SerializeToString())
    return out


def write_delimited(path: Path, messages: list[bytes]) -> Path:
    """ghz's binary data file: each message prefixed with its varint length."""
    with path.open("wb") as file:
        for blob in messages:
            file.write(_VarintBytes(len(blob)))
            file.write(blob)
    return path
