"""Local stand-in for Google's reCAPTCHA Enterprise API, for development, tests and benchmarks.

It speaks the real ``google.cloud.recaptchaenterprise.v1.RecaptchaEnterpriseService`` gRPC
protocol, answers from self-describing tokens (``mint_token``) and can be made to misbehave
through fault knobs (``EmulatorControl``). See README.md beside this file.
"""

from sidecar.emulator.control import CONTROL_SERVICE_NAME, EmulatorControl, control_handler
from sidecar.emulator.server import EmulatorBindError, run_emulator, start_emulator
from sidecar.emulator.service import (
    DEFAULT_PROJECT_NUMBER,
    RPC_ANNOTATE,
    RPC_CREATE,
    SERVICE_NAME,
    EmulatorService,
    Faults,
    token_digest,
)
from sidecar.emulator.tokens import (
    TOKEN_LIFETIME_SECONDS,
    TOKEN_PREFIX,
    TokenClaims,
    encode_claims,
    mint_token,
    parse_token,
)

__all__ = [
    "CONTROL_SERVICE_NAME",
    "DEFAULT_PROJECT_NUMBER",
    "RPC_ANNOTATE",
    "RPC_CREATE",
    "SERVICE_NAME",
    "TOKEN_LIFETIME_SECONDS",
    "TOKEN_PREFIX",
    "EmulatorBindError",
    "EmulatorControl",
    "EmulatorService",
    "Faults",
    "TokenClaims",
    "control_handler",
    "encode_claims",
    "mint_token",
    "parse_token",
    "run_emulator",
    "start_emulator",
    "token_digest",
]
