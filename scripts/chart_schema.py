"""Writes deploy/helm/recaptcha-sidecar/values.schema.json (`python scripts/chart_schema.py`).

The chart's own values are described here; `config` is the sidecar's settings model
(sidecar.config.Settings) as JSON Schema, minus the keys the chart wires itself, so the chart
accepts exactly what the sidecar accepts. tests/deploy keeps the file current.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "deploy/helm/recaptcha-sidecar/values.schema.json"

# Settings the chart sets from other values (or, for api_key, refuses to put in a ConfigMap).
CHART_MANAGED = {
    "health_listen": "probes.port",
    "metrics_insecure": "metrics.insecure",
    "api_key": "credentials.apiKey.existingSecret (never in clear in a ConfigMap)",
    "api_key_file": "credentials.apiKey.existingSecret",
    "tls_cert_file": "listenerSecurity.tls.secretName",
    "tls_key_file": "listenerSecurity.tls.secretName",
    "tls_client_ca_file": "listenerSecurity.tls.clientAuth",
    "auth_token_file": "listenerSecurity.token.secretName",
    "account_id_key": "accountId.existingSecret (never in clear in a ConfigMap)",
    "account_id_key_file": "accountId.existingSecret",
    "siteverify_secrets_file": "siteverifySecrets.existingSecret",
    "outbox_key_file": "outboxKey.existingSecret",
    "rate_limit_key_file": "rateLimitKey.existingSecret",
    "replay_redis_password": "replayStore.urlSecret (in the URL; never in clear in a ConfigMap)",
}


def obj(properties: dict[str, Any], required: list[str] | None = None, **extra: Any) -> Any:
    schema = {"type": "object", "additionalProperties": False, "properties": properties, **extra}
    if required:
        schema["required"] = required
    return schema


STRING = {"type": "string"}
BOOL = {"type": "boolean"}
PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
QUANTITY = {"type": ["string", "integer"]}
ANY_OBJECT = {"type": "object"}
ANY_LIST = {"type": "array"}
PULL_POLICY = {"enum": ["Always", "IfNotPresent", "Never"]}
SECONDS = {"type": "integer", "minimum": 0}
PROBE = obj(
    {
        "periodSeconds": {"type": "integer", "minimum": 1},
        "failureThreshold": {"type": "integer", "minimum": 1},
        "timeoutSeconds": {"type": "integer", "minimum": 1},
        "initialDelaySeconds": SECONDS,
        "successThreshold": {"type": "integer", "minimum": 1},
    }
)
IMAGE = obj(
    {"repository": STRING, "tag": STRING, "pullPolicy": PULL_POLICY},
    ["repository", "tag"],
)


def config_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """The settings model's schema without chart-managed keys, and its $defs."""
    sys.path.insert(0, str(ROOT))
    from sidecar.config import Settings

    model = Settings.model_json_schema()
    defs = model.pop("$defs", {})
    for key in CHART_MANAGED:
        model["properties"].pop(key, None)
    model.pop("title", None)
    model["description"] = (
        "The sidecar's settings file (recaptcha-sidecar config). Not here, set by the chart: "
        + ", ".join(f"{key} ({source})" for key, source in CHART_MANAGED.items())
    )
    return model, defs


def schema() -> dict[str, Any]:
    config, defs = config_schema()
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "recaptcha-sidecar chart values",
        **obj(
            {
                "global": ANY_OBJECT,
                "image": obj(
                    {
                        "repository": STRING,
                        "tag": STRING,
                        "digest": {"type": "string", "pattern": "^(|sha256:[0-9a-f]{64})$"},
                        "pullPolicy": PULL_POLICY,
                    },
                    ["repository"],
                ),
                "imagePullSecrets": ANY_LIST,
                "config": config,
                "socketDir": {"type": "string", "pattern": "^/"},
                "stateDir": {"type": "string", "pattern": "^/"},
                "configDir": {"type": "string", "pattern": "^/"},
                "volumes": obj(
                    {
                        "socketSizeLimit": QUANTITY,
                        "stateSizeLimit": QUANTITY,
                        "tmpSizeLimit": QUANTITY,
                    }
                ),
                "credentials": obj(
                    {
                        "workloadIdentity": obj({"gcpServiceAccount": STRING}),
                        "apiKey": obj({"existingSecret": STRING, "key": STRING}),
                    }
                ),
                "rollOnConfigChange": BOOL,
                "rollOnPolicyChange": BOOL,
                "metrics": obj({"insecure": BOOL}),
                "accountId": obj({"existingSecret": STRING, "key": STRING}),
                "siteverifySecrets": obj({"existingSecret": STRING, "key": STRING}),
                "outboxKey": obj({"existingSecret": STRING, "key": STRING}),
                "rateLimitKey": obj({"existingSecret": STRING, "key": STRING}),
                "listenerSecurity": obj(
                    {
                        "tls": obj({"secretName": STRING, "clientAuth": BOOL}),
                        "token": obj({"secretName": STRING, "key": STRING}),
                    }
                ),
                "service": obj(
                    {
                        "enabled": BOOL,
                        "type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
                        "port": PORT,
                        "annotations": ANY_OBJECT,
                    }
                ),
                "probes": obj(
                    {"port": PORT, "startup": PROBE, "readiness": PROBE, "liveness": PROBE},
                    ["port"],
                ),
                "resources": ANY_OBJECT,
                "securityContext": ANY_OBJECT,
                "extraEnv": ANY_LIST,
                "serviceAccount": obj(
                    {
                        "create": BOOL,
                        "name": STRING,
                        "annotations": ANY_OBJECT,
                        "automountServiceAccountToken": BOOL,
                    }
                ),
                "workload": obj(
                    {
                        "enabled": BOOL,
                        "name": STRING,
                        "replicas": {"type": "integer", "minimum": 0},
                        "image": IMAGE,
                        "command": ANY_LIST,
                        "args": ANY_LIST,
                        "env": ANY_LIST,
                        "ports": ANY_LIST,
                        "resources": ANY_OBJECT,
                        "securityContext": ANY_OBJECT,
                        "podSecurityContext": ANY_OBJECT,
                        "preStopSleepSeconds": SECONDS,
                        "terminationGracePeriodSeconds": SECONDS,
                        "podAnnotations": ANY_OBJECT,
                        "podLabels": ANY_OBJECT,
                        "nodeSelector": ANY_OBJECT,
                        "tolerations": ANY_LIST,
                        "affinity": ANY_OBJECT,
                        "topologySpreadConstraints": ANY_LIST,
                    }
                ),
                "podDisruptionBudget": obj(
                    {"enabled": BOOL, "maxUnavailable": {"type": ["integer", "string"]}}
                ),
                "replayStore": obj({"urlSecret": obj({"name": STRING, "key": STRING})}),
                "outboxStore": obj({"urlSecret": obj({"name": STRING, "key": STRING})}),
                "redisTls": obj({"caSecret": obj({"name": STRING, "key": STRING})}),
                "redis": obj(
                    {
                        "enabled": BOOL,
                        "image": IMAGE,
                        "auth": obj({"existingSecret": STRING}),
                        "maxmemory": STRING,
                        "resources": ANY_OBJECT,
                        "networkPolicy": obj({"enabled": BOOL}),
                    }
                ),
            }
        ),
        "$defs": defs,
    }


def render() -> str:
    return json.dumps(schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    SCHEMA.write_text(render())
    print(f"wrote {SCHEMA.relative_to(ROOT)}")
