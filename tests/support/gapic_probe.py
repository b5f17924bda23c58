"""One CreateAssessment through Google's own Python client, as an app would make it, printed
as one JSON line. Run as a child process (`python -m tests.support.gapic_probe ...`) because
gRPC and google-auth read their environment (default roots, metadata server) once per process.

Credentials: ``--api-key`` (the client option Google documents), else Application Default
Credentials. Trust: gRPC's default roots (``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`` in the
environment), or ``--channel-ca FILE`` for a channel built with that CA.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import grpc
from google.api_core import exceptions, grpc_helpers
from google.cloud import recaptchaenterprise_v1
from google.cloud.recaptchaenterprise_v1.services.recaptcha_enterprise_service.transports import (
    RecaptchaEnterpriseServiceGrpcTransport,
)

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]


def client(args: argparse.Namespace) -> recaptchaenterprise_v1.RecaptchaEnterpriseServiceClient:
    options: dict[str, Any] = {"api_endpoint": args.endpoint}
    if args.api_key:
        options["api_key"] = args.api_key
    if not args.channel_ca:
        return recaptchaenterprise_v1.RecaptchaEnterpriseServiceClient(client_options=options)
    if args.api_key:
        from google.auth import api_key

        credentials: Any = api_key.Credentials(args.api_key)
    else:
        import google.auth

        credentials, _ = google.auth.default(scopes=SCOPES)
    with open(args.channel_ca, "rb") as handle:
        ssl = grpc.ssl_channel_credentials(handle.read())
    channel = grpc_helpers.create_channel(
        args.endpoint, credentials=credentials, ssl_credentials=ssl
    )
    transport = RecaptchaEnterpriseServiceGrpcTransport(channel=channel)
    return recaptchaenterprise_v1.RecaptchaEnterpriseServiceClient(transport=transport)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--project", required=True)
    parser.add_argument("--site-key", default="")
    parser.add_argument("--token", default="")
    parser.add_argument("--api-key")
    parser.add_argument("--channel-ca")
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    event = recaptchaenterprise_v1.Event(token=args.token, site_key=args.site_key)
    try:
        answer = client(args).create_assessment(
            parent=f"projects/{args.project}",
            assessment=recaptchaenterprise_v1.Assessment(event=event),
            timeout=args.timeout,
        )
    except exceptions.GoogleAPICallError as error:
        code = error.grpc_status_code
        result = {
            "error": {
                "type": type(error).__name__,
                "code": code.name if code is not None else None,
                "reason": error.reason,
                "domain": error.domain,
                "message": error.message,
            }
        }
    except Exception as error:  # credentials that cannot be had fail before any call
        result = {"exception": {"type": type(error).__name__, "message": str(error)}}
    else:
        properties = answer.token_properties
        result = {
            "valid": properties.valid,
            "invalid_reason": properties.invalid_reason.name,
            "hostname": properties.hostname,
            "name": answer.name,
        }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
