"""Assess one reCAPTCHA token through the sidecar and print the decision.

python clients/python/examples/assess.py unix:///tmp/recaptcha-sidecar.sock "$TOKEN" login
"""

from __future__ import annotations

import sys

import grpc
from recaptcha.sidecar.v1 import sidecar_pb2, sidecar_pb2_grpc


def main(argv: list[str]) -> int:
    target = argv[1] if len(argv) > 1 else "unix:///tmp/recaptcha-sidecar.sock"
    token = argv[2] if len(argv) > 2 else ""
    action = argv[3] if len(argv) > 3 else "login"

    # One channel per process, shared by every request (grpc.aio.insecure_channel in asyncio
    # apps). The sidecar is on loopback or a Unix socket in the same pod, so no TLS.
    with grpc.insecure_channel(target) as channel:
        sidecar = sidecar_pb2_grpc.VerificationServiceStub(channel)
        try:
            # Always set a deadline (timeout, in seconds): a missing answer should cost the
            # request no more than this. Denials come back as data (allowed=False).
            response = sidecar.Assess(
                sidecar_pb2.AssessRequest(
                    token=token, expected_action=action, user_agent="example/1.0"
                ),
                timeout=2.0,
            )
        except grpc.RpcError as err:  # unreadable request, load shedding, auth, no answer
            print(f"assess: {err.code().name}: {err.details()}", file=sys.stderr)
            return 1
    print(
        f"allowed={response.allowed} "
        f"verdict={sidecar_pb2.Verdict.Name(response.verdict)} "
        f"token_status={sidecar_pb2.TokenStatus.Name(response.token_status)} "
        f"score={response.score:.2f} assessment={response.assessment_name}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
