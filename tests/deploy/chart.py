"""The chart as rendered by `helm template`: the objects, the sidecar container, its config
file. Shared by the manifest checks and the image test (which starts the image as the chart
would)."""

from __future__ import annotations

from typing import Any

from tests.deploy.conftest import DeployTools
from tests.support.processes import ROOT

CHART = ROOT / "deploy/helm/recaptcha-sidecar"
SIDECAR = "recaptcha-sidecar"
Obj = dict[str, Any]


def find(objects: list[Obj], kind: str, name: str | None = None) -> Obj:
    matches = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def sidecar_of(deployment: Obj) -> Obj:
    spec = deployment["spec"]["template"]["spec"]
    return next(c for c in spec["initContainers"] if c["name"] == SIDECAR)


def render(tools: DeployTools, variant: str, *args: str) -> list[Obj]:
    return tools.template(CHART, "-f", str(CHART / "ci" / variant), *args)


def config_text(objects: list[Obj]) -> str:
    configmaps = [o for o in objects if o["kind"] == "ConfigMap" and "config.yaml" in o["data"]]
    assert len(configmaps) == 1
    return str(configmaps[0]["data"]["config.yaml"])
