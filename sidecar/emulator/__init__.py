"""Local stand-in for Google's reCAPTCHA Enterprise API, for development, tests and benchmarks.

It speaks the real ``google.cloud.recaptchaenterprise.v1.RecaptchaEnterpriseService`` gRPC
protocol, answers from self-describing tokens (``mint_token``), checks what Google checks when
asked to (TLS, API keys, access tokens from a fake GCE metadata server, the project, site
keys), fails with Google's error shapes, and can be made to misbehave through fault knobs
(``EmulatorControl``). See README.md beside this file.
"""

from sidecar.emulator.answers import EXPRESS_CLAIMS_HEADER, express_claims_header
from sidecar.emulator.control import CONTROL_SERVICE_NAME, EmulatorControl, control_handler
from sidecar.emulator.errors import GoogleError
from sidecar.emulator.faults import Faults
from sidecar.emulator.keys import Platform, SiteKey
from sidecar.emulator.metadata import MetadataFaults
from sidecar.emulator.project import DEFAULT_PROJECT_NUMBER, Project
from sidecar.emulator.server import (
    Emulator,
    EmulatorBindError,
    launch_emulator,
    run_emulator,
    start_emulator,
)
from sidecar.emulator.service import (
    RPC_ANNOTATE,
    RPC_CREATE,
    RPC_METADATA,
    RPC_SEARCH,
    SERVICE_NAME,
    EmulatorService,
    token_digest,
)
from sidecar.emulator.tls import ServerTls
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
    "EXPRESS_CLAIMS_HEADER",
    "RPC_ANNOTATE",
    "RPC_CREATE",
    "RPC_METADATA",
    "RPC_SEARCH",
    "SERVICE_NAME",
    "TOKEN_LIFETIME_SECONDS",
    "TOKEN_PREFIX",
    "Emulator",
    "EmulatorBindError",
    "EmulatorControl",
    "EmulatorService",
    "Faults",
    "GoogleError",
    "MetadataFaults",
    "Platform",
    "Project",
    "ServerTls",
    "SiteKey",
    "TokenClaims",
    "control_handler",
    "encode_claims",
    "express_claims_header",
    "launch_emulator",
    "mint_token",
    "parse_token",
    "run_emulator",
    "start_emulator",
    "token_digest",
]
