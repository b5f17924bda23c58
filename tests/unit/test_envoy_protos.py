"""The vendored Envoy ext_authz protos: exactly the closure the service needs, generated under
sidecar.third_party, and clobbering nothing that other packages ship."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import google.rpc
import grpc_tools
import pytest
from google.protobuf import descriptor_pb2
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[2]
THIRD = ROOT / "proto" / "third_party"
SERVICE_FILE = "envoy/service/auth/v3/external_auth.proto"


def _vendored() -> set[str]:
    return {str(p.relative_to(THIRD)) for p in THIRD.rglob("*.proto")}


def test_vendored_files_are_the_closure_of_external_auth(tmp_path: Path) -> None:
    """No import is missing (protoc would fail) and no file is vendored for nothing."""
    out = tmp_path / "set.pb"
    googleapis = Path(google.rpc.__path__[0]).parent.parent  # google/rpc/status.proto
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = ["protoc", f"-I{THIRD}", f"-I{googleapis}", f"-I{well_known}"]
    code = protoc.main([*args, "--include_imports", f"--descriptor_set_out={out}", SERVICE_FILE])
    assert code == 0
    loaded = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    needed = {f.name for f in loaded if not f.name.startswith("google/")}
    assert needed == _vendored()
    # google/rpc is googleapis-common-protos', never a vendored copy
    assert not (THIRD / "google").exists()


def test_every_vendored_file_is_generated() -> None:
    generated = ROOT / "sidecar" / "third_party"
    for name in _vendored():
        module = generated / name.replace(".proto", "_pb2.py")
        assert module.is_file(), f"{module} missing: run make generate"


def test_generated_modules_import_nothing_outside_sidecar_third_party() -> None:
    """In a fresh interpreter: the service is Envoy's, and no top-level envoy/udpa/xds/validate
    module was imported (so an `envoy` package elsewhere can neither clash nor be picked up)."""
    script = """
import sys
from sidecar.third_party.envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
service = external_auth_pb2.DESCRIPTOR.services_by_name["Authorization"]
print(service.full_name, [m.name for m in service.methods])
print(sorted(m for m in sys.modules if m.split(".")[0] in ("envoy", "udpa", "xds", "validate")))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == ["envoy.service.auth.v3.Authorization ['Check']", "[]"]


def test_opentelemetry_and_google_rpc_modules_are_intact() -> None:
    """What the xds-protos wheel would overwrite: it must not be installed, and the OTLP
    exporter's InstrumentationScope and googleapis' google.rpc must still import."""
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.distribution("xds-protos")
    script = """
from sidecar.third_party.envoy.service.auth.v3 import external_auth_pb2
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from google.rpc import status_pb2
import importlib.metadata as m
files = {str(f) for f in m.distribution("googleapis-common-protos").files}
assert "google/rpc/status_pb2.py" in files
print(InstrumentationScope.DESCRIPTOR.full_name, status_pb2.Status.DESCRIPTOR.full_name)
"""
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "opentelemetry.proto.common.v1.InstrumentationScope google.rpc.Status"


def test_no_two_installed_distributions_own_the_same_file() -> None:
    """A wheel that overwrites another's modules (xds-protos does, for opentelemetry/proto and
    google/rpc) fails here at once, whichever wheel it is."""
    owners: dict[str, set[str]] = {}
    for dist in importlib.metadata.distributions():
        for file in dist.files or ():
            name = str(file)
            if ".dist-info/" in name or "__pycache__" in name or name.startswith(".."):
                continue
            owners.setdefault(name, set()).add(dist.metadata["Name"])
    shared = {name: sorted(dists) for name, dists in owners.items() if len(dists) > 1}
    assert shared == {}
