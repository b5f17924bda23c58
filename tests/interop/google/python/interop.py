"""Google's own Python client (google-cloud-recaptcha-enterprise) against the sidecar's
Google-compatible gRPC face, changed only in its construction: a channel to the sidecar, no
credentials. (The library has no REST transport.)

Run in a process of its own, as an app would: environment SIDECAR (host:port), PARENT, TOKEN,
SITE_KEY. Prints one JSON object; tests/interop/test_google_clients.py judges it.
"""

from __future__ import annotations

import json
import os

import grpc
from google.api_core import exceptions
from google.cloud import recaptchaenterprise_v1 as recaptcha
from google.cloud.recaptchaenterprise_v1.services.recaptcha_enterprise_service.transports import (
    RecaptchaEnterpriseServiceGrpcTransport,
)

DECISION = "x-recaptcha-"


def create(client: recaptcha.RecaptchaEnterpriseServiceClient) -> dict[str, object]:
    request = recaptcha.CreateAssessmentRequest(
        parent=os.environ["PARENT"],
        assessment=recaptcha.Assessment(
            event=recaptcha.Event(
                token=os.environ["TOKEN"],
                site_key=os.environ["SITE_KEY"],
                expected_action="login",
                user_agent="interop-python",
                user_ip_address="203.0.113.7",
            )
        ),
    )
    # The client's methods return only the message; its transport's stub gives the call too,
    # and with it the response metadata the sidecar's decision travels in.
    response, call = client.transport.create_assessment.with_call(request, timeout=30)
    headers = {k: v for k, v in call.initial_metadata() if k.startswith(DECISION)}
    return {
        "valid": response.token_properties.valid,
        "invalid_reason": response.token_properties.invalid_reason.name,
        "score": response.risk_analysis.score,
        "action": response.token_properties.action,
        "name": response.name,
        "headers": headers,
    }


def main() -> None:
    # The one change an app makes: where the client connects, and that it brings no credentials.
    channel = grpc.insecure_channel(os.environ["SIDECAR"])
    client = recaptcha.RecaptchaEnterpriseServiceClient(
        transport=RecaptchaEnterpriseServiceGrpcTransport(channel=channel)
    )
    first = create(client)
    again = create(client)
    annotate = "OK"
    try:
        client.annotate_assessment(
            request=recaptcha.AnnotateAssessmentRequest(
                name=str(first["name"]),
                annotation=recaptcha.AnnotateAssessmentRequest.Annotation.LEGITIMATE,
                reasons=[recaptcha.AnnotateAssessmentRequest.Reason.PASSED_TWO_FACTOR],
            ),
            timeout=30,
        )
    except exceptions.GoogleAPICallError as error:
        annotate = f"{error.grpc_status_code}: {error.message}"
    list_keys = "OK"
    try:
        list(client.list_keys(parent=os.environ["PARENT"], timeout=30))
    except exceptions.GoogleAPICallError as error:
        code = error.grpc_status_code.name if error.grpc_status_code else error.code
        list_keys = f"{code}: {error.message}"
    print(
        json.dumps({"first": first, "again": again, "annotate": annotate, "list_keys": list_keys})
    )


if __name__ == "__main__":
    main()
