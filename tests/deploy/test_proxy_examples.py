"""The proxy examples that cannot run here (Traefik, Envoy, Istio): the Kubernetes ones are
validated strictly against the CRD schemas vendored in deploy/examples/schemas/ (and the
Kubernetes ones), the others checked for what makes them safe. nginx and Caddy are run for
real by tests/interop/test_proxies.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import TOOLS_TIMEOUT, DeployTools
from tests.support.processes import ROOT

EXAMPLES = ROOT / "deploy" / "examples"
CRD_SCHEMAS = EXAMPLES / "schemas"
CRD_LOCATION = (
    f"{CRD_SCHEMAS}/{{{{ .Group }}}}/{{{{ .ResourceKind }}}}_{{{{ .ResourceAPIVersion }}}}.json"
)
NOT_RUN = [
    "traefik/middleware.yaml",
    "envoy/envoy.yaml",
    "istio/authorization-policy.yaml",
    "istio/mesh-config.yaml",
]
KUBERNETES = ["traefik/middleware.yaml", "istio/authorization-policy.yaml"]
DECISION_HEADERS = {
    "X-Recaptcha-Allowed",
    "X-Recaptcha-Verdict",
    "X-Recaptcha-Token-Status",
    "X-Recaptcha-Decided-By",
    "X-Recaptcha-Score",
    "X-Recaptcha-Assessment",
    "X-Recaptcha-Policy-Version",
}

pytestmark = TOOLS_TIMEOUT


def _docs(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((EXAMPLES / name).read_text()) if doc]


@pytest.mark.parametrize("name", NOT_RUN)
def test_each_example_that_cannot_run_here_says_so_in_its_header(name: str) -> None:
    header = (EXAMPLES / name).read_text().split("\n\n", 1)[0]
    assert "NOT RUN HERE" in header


@pytest.mark.parametrize("name", KUBERNETES)
def test_kubernetes_examples_validate_against_the_vendored_crd_schemas(
    tools: DeployTools, name: str
) -> None:
    out = tools.validate(EXAMPLES / name, extra_locations=[CRD_LOCATION])
    assert f"Valid: {len(_docs(name))}" in out


@pytest.mark.parametrize(
    ("name", "breakage"),
    [
        ("istio/authorization-policy.yaml", ("action: CUSTOM", "action: CUSTOMISED")),
        ("istio/authorization-policy.yaml", ("resolution: STATIC", "resolutions: STATIC")),
        ("traefik/middleware.yaml", ("trustForwardHeader: false", "trustForwardHeaders: false")),
    ],
)
def test_the_crd_schemas_reject_a_broken_example(
    tools: DeployTools, tmp_path: Path, name: str, breakage: tuple[str, str]
) -> None:
    text = (EXAMPLES / name).read_text()
    assert breakage[0] in text
    broken = tmp_path / "broken.yaml"
    broken.write_text(text.replace(breakage[0], breakage[1]))
    with pytest.raises(AssertionError, match="Invalid: 1"):
        tools.validate(broken, extra_locations=[CRD_LOCATION])


def test_istio_provider_policy_and_service_entry_agree() -> None:
    entry, policy, patch = _docs("istio/authorization-policy.yaml")
    (provider,) = _docs("istio/mesh-config.yaml")[0]["meshConfig"]["extensionProviders"]
    grpc = provider["envoyExtAuthzGrpc"]
    assert policy["spec"]["action"] == "CUSTOM"
    assert policy["spec"]["provider"]["name"] == provider["name"]
    assert grpc["service"] in entry["spec"]["hosts"]
    assert grpc["port"] == entry["spec"]["ports"][0]["number"] == 50051
    assert grpc["failOpen"] is False
    assert entry["spec"]["endpoints"] == [{"address": "127.0.0.1"}]
    value = patch["spec"]["configPatches"][0]["patch"]["value"]
    settings = value["typed_per_filter_config"]["envoy.filters.http.ext_authz"]["check_settings"]
    assert "recaptcha_action" in settings["context_extensions"]


def test_traefik_forwards_only_the_token_and_takes_every_decision_header() -> None:
    (middleware,) = _docs("traefik/middleware.yaml")
    auth = middleware["spec"]["forwardAuth"]
    assert auth["address"].endswith("/forward-auth?action=login")
    assert auth["trustForwardHeader"] is False
    assert auth["authRequestHeaders"] == ["X-Recaptcha-Token", "User-Agent"]
    assert set(auth["authResponseHeaders"]) == DECISION_HEADERS


def _filters(config: dict[str, Any]) -> list[dict[str, Any]]:
    chain = config["static_resources"]["listeners"][0]["filter_chains"][0]
    manager = chain["filters"][0]["typed_config"]
    return list(manager["http_filters"]), manager


def test_envoy_bootstrap_fails_closed_and_sets_fingerprints_before_ext_authz() -> None:
    (config,) = _docs("envoy/envoy.yaml")
    filters, manager = _filters(config)
    names = [f["name"] for f in filters]
    assert names == [
        "envoy.filters.http.header_mutation",
        "envoy.filters.http.ext_authz",
        "envoy.filters.http.router",
    ]
    mutations = filters[0]["typed_config"]["mutations"]["request_mutations"]
    assert {m["append"]["header"]["key"]: m["append"]["append_action"] for m in mutations} == {
        "x-ja3-fingerprint": "OVERWRITE_IF_EXISTS_OR_ADD",
        "x-ja4-fingerprint": "OVERWRITE_IF_EXISTS_OR_ADD",
    }
    ext_authz = filters[1]["typed_config"]
    assert ext_authz["failure_mode_allow"] is False
    assert ext_authz["transport_api_version"] == "V3"
    cluster = ext_authz["grpc_service"]["envoy_grpc"]["cluster_name"]
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    endpoint = clusters[cluster]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    assert endpoint["endpoint"]["address"]["socket_address"]["port_value"] == 50051
    routes = manager["route_config"]["virtual_hosts"][0]["routes"]
    protected = routes[0]["typed_per_filter_config"]["envoy.filters.http.ext_authz"]
    assert protected["check_settings"]["context_extensions"] == {"recaptcha_action": "login"}
