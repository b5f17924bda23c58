"""Google's `RecaptchaEnterpriseService` as a descriptor in the default pool, so reflection
can list and describe it wherever it is served: by the emulator (as Google's stand-in) and by
the sidecar's Google-compatible gRPC face.

google-cloud-recaptcha-enterprise registers the messages' file but no service (its transports
are proto-plus stubs), and compiling googleapis' `.proto` beside it fails on duplicate
symbols. So the service is a small file of our own in Google's package, depending on the file
the package registered, declaring the two methods both sides serve (`SERVED`) and the one only
the emulator answers (SearchRelatedAccountGroupMemberships, which the sidecar calls upstream).
"""

from __future__ import annotations

from typing import Any

from google.cloud.recaptchaenterprise_v1.types import recaptchaenterprise as types
from google.protobuf import descriptor_pb2, descriptor_pool

SERVICE = "google.cloud.recaptchaenterprise.v1.RecaptchaEnterpriseService"
SERVED = ("CreateAssessment", "AnnotateAssessment")
_FILE = "recaptcha_sidecar/googleapi/recaptchaenterprise_service.proto"


def register_service_descriptor() -> Any:
    """The service's descriptor, added to the default pool once (idempotent: the emulator and
    the sidecar can share a process, as the tests do)."""
    pool = descriptor_pool.Default()
    try:
        return pool.FindServiceByName(SERVICE)
    except KeyError:
        pass
    assessment: Any = types.Assessment.pb()
    messages = assessment.DESCRIPTOR.file
    package, _, name = SERVICE.rpartition(".")
    proto = descriptor_pb2.FileDescriptorProto(
        name=_FILE, package=package, syntax="proto3", dependency=[messages.name]
    )
    service = proto.service.add(name=name)
    for method, request, response in (
        ("CreateAssessment", types.CreateAssessmentRequest, types.Assessment),
        ("AnnotateAssessment", types.AnnotateAssessmentRequest, types.AnnotateAssessmentResponse),
        (
            "SearchRelatedAccountGroupMemberships",
            types.SearchRelatedAccountGroupMembershipsRequest,
            types.SearchRelatedAccountGroupMembershipsResponse,
        ),
    ):
        service.method.add(
            name=method,
            input_type="." + request.pb().DESCRIPTOR.full_name,
            output_type="." + response.pb().DESCRIPTOR.full_name,
        )
    pool.AddSerializedFile(proto.SerializeToString())
    return pool.FindServiceByName(SERVICE)
