"""`recaptcha-sidecar assess` and `annotate`: a built-in client of a running sidecar, so a first
call or an operator's debugging needs no grpcurl. It uses the generated stubs the app's clients
use, over the same addresses (`127.0.0.1:50051`, `unix:///path.sock`), and prints the answer for
a person, or as JSON (the proto's own field names) with `--json`.

Exit codes: 0 when the sidecar answered (an answer that is not allowed is still an answer), 1
when the call failed (unreachable, deadline, an error status), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

DEFAULT_TARGET = "127.0.0.1:50051"


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--target",
        default=DEFAULT_TARGET,
        help=f"the sidecar: host:port or unix:///path.sock (default {DEFAULT_TARGET})",
    )
    common.add_argument(
        "--timeout", type=float, default=5.0, help="deadline of the call, seconds (default 5)"
    )
    common.add_argument("--json", action="store_true", help="print the answer as JSON")

    assess = commands.add_parser(
        "assess", parents=[common], help="assess a token through a running sidecar"
    )
    assess.add_argument("--token", required=True, help="the token the page or app obtained")
    assess.add_argument("--action", default="", help="the action the token should carry")
    assess.add_argument("--site-key", default="", help="the key (default: the sidecar's)")
    assess.add_argument("--user-ip", default="", help="the end user's IP address")
    assess.add_argument("--user-agent", default="", help="the end user's User-Agent")
    assess.add_argument("--account-id", default="", help="the account, for account defender")
    assess.add_argument("--idempotency-key", default="", help="makes a retry replay the answer")

    annotate = commands.add_parser(
        "annotate", parents=[common], help="report the outcome of an assessment"
    )
    annotate.add_argument("--assessment", required=True, help="the assessment name Assess returned")
    annotate.add_argument(
        "--annotation", required=True, help="LEGITIMATE, FRAUDULENT, PASSWORD_CORRECT, …"
    )
    annotate.add_argument(
        "--reason", action="append", default=[], help="PASSED_TWO_FACTOR, … (repeatable)"
    )
    annotate.add_argument(
        "--wait-for-upstream", action="store_true", help="deliver before answering"
    )


def _enum(enum: Any, prefix: str, name: str) -> str:
    """A proto enum value's full name from a name given with or without the prefix (LEGITIMATE
    or ANNOTATION_LEGITIMATE); ValueError naming the choices otherwise."""
    wanted = name.upper()
    if not wanted.startswith(prefix):
        wanted = prefix + wanted
    try:
        enum.Value(wanted)
        return wanted
    except ValueError:
        names = enum.DESCRIPTOR.values_by_name
        choices = ", ".join(n.removeprefix(prefix) for n in names if "UNSPECIFIED" not in n)
        raise ValueError(f"{name!r}: expected one of {choices}") from None


def _print(message: Any, as_json: bool, out: TextIO, enums: dict[str, Any]) -> None:
    from google.protobuf import json_format

    if as_json:
        out.write(json_format.MessageToJson(message, preserving_proto_field_name=True) + "\n")
        return
    fields = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    for key, value in fields.items():
        if key in enums and isinstance(value, str):
            value = value.removeprefix(enums[key])
        if isinstance(value, bool):
            value = str(value).lower()
        out.write(f"{key}: {value}\n")


def run(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    import grpc
    from recaptcha.sidecar.v1 import sidecar_pb2 as pb
    from recaptcha.sidecar.v1 import sidecar_pb2_grpc

    command = args.command
    try:
        if command == "assess":
            request: Any = pb.AssessRequest(
                token=args.token,
                expected_action=args.action,
                site_key=args.site_key,
                user_ip_address=args.user_ip,
                user_agent=args.user_agent,
                account_id=args.account_id,
                idempotency_key=args.idempotency_key,
            )
        else:
            request = pb.AnnotateRequest(
                assessment_name=args.assessment,
                annotation=_enum(pb.Annotation, "ANNOTATION_", args.annotation),
                reasons=[_enum(pb.AnnotationReason, "ANNOTATION_REASON_", r) for r in args.reason],
                wait_for_upstream=args.wait_for_upstream,
            )
    except ValueError as error:
        err.write(f"recaptcha-sidecar {command}: {error}\n")
        return 2
    with grpc.insecure_channel(args.target) as channel:
        stub = sidecar_pb2_grpc.VerificationServiceStub(channel)
        try:
            if command == "assess":
                answer = stub.Assess(request, timeout=args.timeout)
                enums = {
                    "verdict": "VERDICT_",
                    "token_status": "TOKEN_STATUS_",
                    "recommended_action": "RECOMMENDED_ACTION_",
                }
            else:
                answer = stub.Annotate(request, timeout=args.timeout)
                enums = {"delivery": "ANNOTATION_DELIVERY_"}
        except grpc.RpcError as error:
            code = error.code().name if error.code() else "UNKNOWN"
            err.write(f"recaptcha-sidecar {command}: {code}: {error.details()}\n")
            return 1
    _print(answer, args.json, out, enums)
    return 0
