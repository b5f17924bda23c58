"""The Kubernetes manifests, the Helm chart and the Dockerfile: rendered, validated against the
Kubernetes schemas (kubeconform, strict), linted (helm lint, hadolint), and checked for the
shape a security review and a first deployment need. The sidecar's own settings loader reads
every config file they carry."""

from __future__ import annotations

import base64
import copy
import re
import shutil
from pathlib import Path

import pytest
import yaml

from scripts import chart_schema
from sidecar.config import Settings, load_settings
from tests.deploy.chart import CHART, Obj, config_text, find, render, sidecar_of
from tests.deploy.conftest import TOOLS_TIMEOUT, DeployTools
from tests.support.processes import ROOT

pytestmark = TOOLS_TIMEOUT

PLAIN = ROOT / "deploy/kubernetes"
INJECT = ROOT / "deploy/helm/examples/inject"
VARIANTS = sorted(p.name for p in (CHART / "ci").glob("*-values.yaml"))


def load_all(path: Path) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def plain_objects() -> list[Obj]:
    return [doc for path in sorted(PLAIN.rglob("*.yaml")) for doc in load_all(path)]


def load_config(text: str, tmp_path: Path, objects: list[Obj] | None = None) -> Settings:
    """The sidecar's own loader on a config file; mounted-Secret paths point at stand-ins,
    and settings the Deployment takes from a Secret (`RECAPTCHA_SIDECAR_*` with a
    secretKeyRef, e.g. a store URL) get a stand-in value of their kind."""
    stand_ins = {"RECAPTCHA_SIDECAR_REPLAY_STORE", "RECAPTCHA_SIDECAR_OUTBOX"}
    from_secrets = [
        env["name"]
        for deployment in (o for o in objects or [] if o["kind"] == "Deployment")
        if "initContainers" in deployment["spec"]["template"]["spec"]
        for env in sidecar_of(deployment).get("env", [])
        if env["name"] in stand_ins and "secretKeyRef" in env.get("valueFrom", {})
    ]
    with pytest.MonkeyPatch.context() as patch:
        for name in from_secrets:
            patch.setenv(name, "redis://stand-in.invalid:6379/0")
        return _load_config(text, tmp_path)


def _load_config(text: str, tmp_path: Path) -> Settings:
    secrets = tmp_path / "secrets"
    for path in set(re.findall(r"/var/run/secrets/recaptcha-sidecar/[\w./-]+", text)):
        stand_in = secrets / path.removeprefix("/var/run/secrets/recaptcha-sidecar/")
        stand_in.parent.mkdir(parents=True, exist_ok=True)
        if stand_in.parts[-2:] == ("siteverify", "secrets"):
            stand_in.write_text("stand-in-secret stand-in-site-key\n")  # SECRET SITE_KEY
        else:
            stand_in.write_text(base64.b64encode(bytes(range(32))).decode())  # a usable key
    file = tmp_path / "config.yaml"
    file.write_text(text.replace("/var/run/secrets/recaptcha-sidecar", str(secrets)))
    return load_settings(file)


def assert_native_sidecar(deployment: Obj, config: Settings) -> None:
    """The shape the issue asks for, wherever the Deployment comes from."""
    pod = deployment["spec"]["template"]["spec"]
    sidecar = sidecar_of(deployment)
    assert sidecar["restartPolicy"] == "Always"
    assert config.health_listen is not None
    health_port = int(config.health_listen.rsplit(":", 1)[1])
    assert config.health_listen.startswith("0.0.0.0:"), "kubelet probes the pod IP"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert sidecar[probe]["grpc"]["port"] == health_port, probe
    assert {"name": "health", "containerPort": health_port, "protocol": "TCP"} in sidecar["ports"]
    assert sidecar["resources"]["requests"]["cpu"] and sidecar["resources"]["limits"]["memory"]
    context = sidecar["securityContext"]
    assert context["runAsNonRoot"] is True and context["runAsUser"] != 0
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert "privileged" not in context or context["privileged"] is False
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["fsGroup"] == context["runAsGroup"]
    # The Unix socket lives in an emptyDir that the app mounts at the same place.
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in sidecar["volumeMounts"]}
    socket = next(a for a in config.listen if a.startswith("unix:"))
    socket_dir = str(Path(socket.removeprefix("unix://")).parent)
    shared = next(name for name, path in mounts.items() if path == socket_dir)
    assert "emptyDir" in volumes[shared]
    for app in pod["containers"]:
        assert {"name": shared, "mountPath": socket_dir} in app["volumeMounts"]
        assert app["securityContext"]["allowPrivilegeEscalation"] is False
    assert config.socket_mode == "0660"
    # State (the annotation outbox) on a writable emptyDir only the sidecar mounts; /tmp too.
    assert "emptyDir" in volumes[next(n for n, p in mounts.items() if p == "/tmp")]
    state = next(n for n, p in mounts.items() if p == "/var/lib/recaptcha-sidecar")
    assert "emptyDir" in volumes[state]
    assert all(state != m["name"] for app in pod["containers"] for m in app["volumeMounts"])
    # Loopback and the socket only: nothing in the pod is reachable without auth but health.
    assert all(a.startswith(("unix:", "127.0.0.1:")) for a in config.listen) or (
        config.tls_cert_file or config.auth_token_file
    )
    # Graceful stop: the app's preStop plus the sidecar's 10 s drain fit the grace period.
    pre_stop = max(
        c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        for c in pod["containers"]
    )
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + 10 + 20


def assert_disruption_ready(objects: list[Obj], deployment: Obj) -> None:
    budget = find(objects, "PodDisruptionBudget")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert (
        deployment["spec"]["selector"]["matchLabels"] == budget["spec"]["selector"]["matchLabels"]
    )
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


# --- plain manifests ------------------------------------------------------------------------


def test_plain_manifests_validate(tools: DeployTools) -> None:
    out = tools.validate(PLAIN)
    assert f"{len(plain_objects())} resources found" in out


def test_kubeconform_rejects_what_kubernetes_would(tools: DeployTools, tmp_path: Path) -> None:
    """A control: the schemas are really applied, strictly (unknown fields, wrong types)."""
    deployment = load_all(PLAIN / "deployment.yaml")[0]
    for mutate in (
        lambda d: d["spec"].pop("selector"),
        lambda d: sidecar_of(d).update(unknownField=True),
        lambda d: sidecar_of(d)["startupProbe"]["grpc"].update(port="health"),
        lambda d: d["spec"].update(replicas="two"),
    ):
        broken = copy.deepcopy(deployment)
        mutate(broken)
        path = tmp_path / "broken.yaml"
        path.write_text(yaml.safe_dump(broken))
        with pytest.raises(AssertionError, match="is invalid"):
            tools.validate(path)


def test_plain_deployment_is_a_native_sidecar_deployment(tmp_path: Path) -> None:
    objects = plain_objects()
    config = load_config(config_text(objects), tmp_path)
    for deployment in (
        find(load_all(PLAIN / "deployment.yaml"), "Deployment"),
        find(load_all(PLAIN / "shared-redis/deployment.yaml"), "Deployment"),
    ):
        assert_native_sidecar(deployment, config)
        assert_disruption_ready(objects, deployment)
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        assert (
            volumes["recaptcha-config"]["configMap"]["name"]
            == find(objects, "ConfigMap")["metadata"]["name"]
        )
    assert config.project and config.replay_store == "memory://"


def test_plain_credentials_are_workload_identity_or_an_optional_secret() -> None:
    objects = plain_objects()
    account = find(objects, "ServiceAccount")
    assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].endswith(
        ".iam.gserviceaccount.com"
    )
    deployment = find(load_all(PLAIN / "deployment.yaml"), "Deployment")
    assert (
        deployment["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]
    )
    env = {e["name"]: e for e in sidecar_of(deployment)["env"]}
    ref = env["RECAPTCHA_SIDECAR_API_KEY"]["valueFrom"]["secretKeyRef"]
    assert ref["optional"] is True
    secret = find(objects, "Secret", ref["name"])
    assert ref["key"] in secret["stringData"]


def test_shared_redis_variant_differs_only_where_documented() -> None:
    base = find(load_all(PLAIN / "deployment.yaml"), "Deployment")
    shared = find(load_all(PLAIN / "shared-redis/deployment.yaml"), "Deployment")
    env = {e["name"]: e for e in sidecar_of(shared)["env"]}
    assert env["RECAPTCHA_SIDECAR_REPLAY_STORE"]["value"].startswith("redis://:$(REDIS_PASSWORD)@")
    redis = load_all(PLAIN / "shared-redis/redis.yaml")
    service = find(redis, "Service")["metadata"]["name"]
    assert f"@{service}:6379/" in env["RECAPTCHA_SIDECAR_REPLAY_STORE"]["value"]
    assert (
        env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"]
        == find(redis, "Secret")["metadata"]["name"]
    )
    # The NetworkPolicy lets exactly these pods in.
    policy = find(redis, "NetworkPolicy")
    allowed = policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    assert allowed.items() <= shared["spec"]["template"]["metadata"]["labels"].items()
    assert not allowed.items() <= base["spec"]["template"]["metadata"]["labels"].items()
    # Everything else is the base Deployment.
    normalized = copy.deepcopy(shared)
    normalized["spec"]["replicas"] = base["spec"]["replicas"]
    for label in allowed:
        del normalized["spec"]["template"]["metadata"]["labels"][label]
    sidecar_of(normalized)["env"] = [
        e
        for e in sidecar_of(normalized)["env"]
        if e["name"] not in ("REDIS_PASSWORD", "RECAPTCHA_SIDECAR_REPLAY_STORE")
    ]
    assert normalized == base
    redis_container = find(redis, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "noeviction" in redis_container["args"]
    assert redis_container["securityContext"]["readOnlyRootFilesystem"] is True


# --- Helm chart -----------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_chart_lints_clean(tools: DeployTools, variant: str) -> None:
    out = tools.run(tools.helm, "lint", CHART, "--strict", "-f", CHART / "ci" / variant)
    assert "0 chart(s) failed" in out
    problems = [line for line in out.splitlines() if re.match(r"\[(WARNING|ERROR)\]", line)]
    assert not problems, out


@pytest.mark.parametrize("variant", VARIANTS)
def test_chart_renders_valid_manifests_and_a_config_the_sidecar_accepts(
    tools: DeployTools, variant: str, tmp_path: Path
) -> None:
    objects = render(tools, variant)
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(objects))
    out = tools.validate(rendered)
    assert f"{len(objects)} resources found" in out
    config = load_config(config_text(objects), tmp_path, objects)
    values = yaml.safe_load((CHART / "ci" / variant).read_text())
    deployments = [
        o
        for o in objects
        if o["kind"] == "Deployment" and "initContainers" in o["spec"]["template"]["spec"]
    ]
    if values.get("workload", {}).get("enabled", True):
        (deployment,) = deployments
        assert_native_sidecar(deployment, config)
        assert_disruption_ready(objects, deployment)
    else:
        assert not deployments and not [o for o in objects if o["kind"] == "PodDisruptionBudget"]


def test_chart_wires_credentials_listener_security_and_redis(
    tools: DeployTools, tmp_path: Path
) -> None:
    objects = render(
        tools,
        "exposed-mtls-values.yaml",
        *("--set", "credentials.apiKey.existingSecret=key"),
        *("--set", "outboxKey.existingSecret=recaptcha-outbox-key"),
        *("--set", "siteverifySecrets.existingSecret=recaptcha-siteverify"),
    )
    config = load_config(config_text(objects), tmp_path)
    assert config.siteverify_secrets_file is not None
    assert config.siteverify_secrets_file.parts[-2:] == ("siteverify", "secrets"), (
        "the legacy siteverify secrets are a mounted Secret"
    )
    assert "0.0.0.0:50052" in config.listen
    assert config.tls_client_ca_file and config.auth_token_file and config.api_key_file
    assert config.outbox_key_file, "issue 13 item 13: the outbox key is a mounted Secret"
    deployment = find(objects, "Deployment")
    sidecar = sidecar_of(deployment)
    mounts = {m["mountPath"]: m["name"] for m in sidecar["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    text = config_text(objects)
    for path in re.findall(r"/var/run/secrets/recaptcha-sidecar/[\w-]+", text):
        assert volumes[mounts[path]]["secret"]["secretName"]
    assert {"name": "grpc", "containerPort": 50052, "protocol": "TCP"} in sidecar["ports"]
    service = find(objects, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "grpc"

    redis = render(tools, "redis-values.yaml")
    sidecar = sidecar_of(find(redis, "Deployment", "demo-recaptcha-sidecar"))
    env = {e["name"]: e for e in sidecar["env"]}
    assert env["RECAPTCHA_SIDECAR_REPLAY_STORE"]["value"] == (
        "redis://:$(REDIS_PASSWORD)@demo-recaptcha-sidecar-redis:6379/0"
    )
    assert "replay_store" not in yaml.safe_load(config_text(redis)), "the env var decides"
    assert find(redis, "Secret", "demo-recaptcha-sidecar-redis")["data"]["password"]
    assert find(redis, "NetworkPolicy")

    # the quota shield: the counters' secret mounted where the config says (issue 19)
    limits = load_config(config_text(redis), tmp_path)
    assert limits.rate_limit_key_file is not None and limits.upstream_rate_limit == "900/second"
    assert limits.policy.default.rate_limits[0].per == "ip"
    sidecar = sidecar_of(find(redis, "Deployment", "demo-recaptcha-sidecar"))
    mounts = {m["mountPath"]: m["name"] for m in sidecar["volumeMounts"]}
    volumes = {
        v["name"]: v
        for v in find(redis, "Deployment", "demo-recaptcha-sidecar")["spec"]["template"]["spec"][
            "volumes"
        ]
    }
    limit_volume = volumes[mounts["/var/run/secrets/recaptcha-sidecar/rate-limit"]]
    assert limit_volume["secret"]["secretName"] == "recaptcha-rate-limit-key"

    wi = render(tools, "default-values.yaml")
    account = find(wi, "ServiceAccount")
    assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
    assert "env" not in sidecar_of(find(wi, "Deployment")), "ADC: no key anywhere"


def test_chart_wires_managed_redis_the_outbox_key_and_the_ca(
    tools: DeployTools, tmp_path: Path
) -> None:
    """The managed-cluster example: both store URLs from the Secret (the config file holds
    neither), the outbox key and the Redis CA mounted where the config and the URL say."""
    objects = render(tools, "managed-cluster-values.yaml")
    text = config_text(objects)
    config = load_config(text, tmp_path, objects)
    raw = yaml.safe_load(text)
    assert "outbox" not in raw and "replay_store" not in raw, "the env vars decide"
    assert raw["outbox_key_file"] == "/var/run/secrets/recaptcha-sidecar/outbox-key/key"
    assert (config.replay_min_replicas, config.outbox_min_replicas) == (1, 1)
    deployment = find(objects, "Deployment")
    sidecar = sidecar_of(deployment)
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in sidecar["env"]}
    for name in ("RECAPTCHA_SIDECAR_REPLAY_STORE", "RECAPTCHA_SIDECAR_OUTBOX"):
        assert env[name] == {"name": "recaptcha-redis-url", "key": "url"}
    mounts = {m["mountPath"]: m["name"] for m in sidecar["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    for path, secret, key in (
        ("/var/run/secrets/recaptcha-sidecar/outbox-key", "recaptcha-outbox-key", "key"),
        ("/var/run/secrets/recaptcha-sidecar/redis-ca", "recaptcha-redis-ca", "ca.pem"),
    ):
        volume = volumes[mounts[path]]["secret"]
        assert volume["secretName"] == secret and volume["items"][0]["key"] == key
    assert (
        volumes[mounts["/var/run/secrets/recaptcha-sidecar/redis-ca"]]["secret"]["items"][0]["path"]
        == "ca.pem"
    )  # the file the example URL's ssl_ca_certs names


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--set", "outboxStore.urlSecret.name=url"],
            "outboxStore.urlSecret needs outboxKey.existingSecret",
        ),
        (["--set", "service.enabled=true"], "service.enabled exposes the sidecar beyond the pod"),
        (  # issue 13 item 3: TLS alone authenticates nobody
            [
                *("--set", "service.enabled=true"),
                *("--set", "listenerSecurity.tls.secretName=recaptcha-sidecar-tls"),
            ],
            "TLS alone authenticates nobody",
        ),
        (["--set", "config.project="], "config.project is required"),
        (["--set", "config.projekt=x"], "additional properties 'projekt' not allowed"),
        (["--set", "config.api_key=AIza"], "additional properties 'api_key' not allowed"),
        (["--set", "config.socket_mode=432"], "want string"),
        (["--set", "config.policy.default.threshold=2"], "maximum"),
        (  # issue 19: per-client limits on Redis need one secret for every pod
            [
                *("--set", "redis.enabled=true"),
                *("--set", "config.policy.actions.login.rate_limits[0].per=ip"),
                *("--set", "config.policy.actions.login.rate_limits[0].limit=30/minute"),
            ],
            "need rateLimitKey.existingSecret",
        ),
    ],
)
def test_chart_refuses_bad_values(tools: DeployTools, args: list[str], message: str) -> None:
    with pytest.raises(AssertionError, match=re.escape(message)):
        render(tools, "default-values.yaml", *args)


def test_chart_renders_the_same_sidecar_as_the_plain_manifests(tools: DeployTools) -> None:
    plain = sidecar_of(find(load_all(PLAIN / "deployment.yaml"), "Deployment"))
    chart = sidecar_of(find(render(tools, "default-values.yaml"), "Deployment"))
    for key in (
        "restartPolicy",
        "args",
        "ports",
        "startupProbe",
        "readinessProbe",
        "livenessProbe",
        "resources",
        "securityContext",
        "volumeMounts",
        "imagePullPolicy",
    ):
        assert chart[key] == plain[key], key
    plain_pod = find(load_all(PLAIN / "deployment.yaml"), "Deployment")["spec"]["template"]["spec"]
    chart_pod = find(render(tools, "default-values.yaml"), "Deployment")["spec"]["template"]["spec"]
    for key in ("securityContext", "terminationGracePeriodSeconds", "automountServiceAccountToken"):
        assert chart_pod[key] == plain_pod[key], key
    strip = lambda vs: [{k: v for k, v in vol.items() if k != "configMap"} for vol in vs]  # noqa: E731
    assert strip(chart_pod["volumes"]) == strip(plain_pod["volumes"])


def test_policy_edits_hot_reload_and_other_settings_roll_the_pods(tools: DeployTools) -> None:
    """The sidecar re-reads only `policy` from its mounted file (PolicySource); a change to
    any other setting takes a restart, which the pod template's checksum brings about."""

    def rendered(*args: str) -> tuple[dict[str, str], str]:
        objects = render(tools, "default-values.yaml", *args)
        metadata = find(objects, "Deployment")["spec"]["template"]["metadata"]
        return metadata.get("annotations") or {}, config_text(objects)

    policy_edit = ("--set-json", "config.policy.default.threshold=0.7")
    start_edit = ("--set", "config.log_level=DEBUG")
    annotations, config = rendered()
    assert set(annotations) == {"checksum/config"}
    edited, edited_config = rendered(*policy_edit)
    assert edited_config != config, "the ConfigMap carries the new policy"
    assert edited == annotations, "a policy edit must not restart the pods: hot reload"
    assert rendered(*start_edit)[0]["checksum/config"] != annotations["checksum/config"]
    assert rendered(*start_edit, *policy_edit)[0] == rendered(*start_edit)[0]

    rolling = ("--set", "rollOnPolicyChange=true")
    assert (
        rendered(*rolling, *policy_edit)[0]["checksum/policy"]
        != (rendered(*rolling)[0]["checksum/policy"])
    )
    no_reload = ("--set-json", "config.policy_reload_interval=0")
    assert (
        rendered(*no_reload, *policy_edit)[0]["checksum/policy"]
        != (rendered(*no_reload)[0]["checksum/policy"])
    ), "without hot reload a policy edit must restart"
    assert rendered("--set", "rollOnConfigChange=false")[0] == {}
    assert rendered("--set", "rollOnConfigChange=false", *start_edit)[0] == {}


def test_values_offer_every_setting() -> None:
    """Every key of `recaptcha-sidecar config` is a value, or the chart sets it itself."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing = set(Settings.model_fields) - set(values["config"]) - set(chart_schema.CHART_MANAGED)
    assert not missing, f"add to deploy/helm/recaptcha-sidecar/values.yaml config: {missing}"
    defaults = Settings(emulator=True).model_dump(mode="json")
    for key, value in values["config"].items():
        # The pod's values on purpose: its listeners, and the outbox on the state volume.
        if key not in ("project", "emulator", "listen", "outbox"):
            assert value == defaults[key] or key == "policy", f"config.{key} default differs"


def test_values_schema_is_current() -> None:
    assert (CHART / "values.schema.json").read_text() == chart_schema.render(), (
        "run: .venv/bin/python scripts/chart_schema.py"
    )


def test_injection_into_an_existing_workload(tools: DeployTools, tmp_path: Path) -> None:
    """The example parent chart includes the named templates from this chart as a dependency."""
    copy_root = tmp_path / "helm"
    shutil.copytree(ROOT / "deploy/helm", copy_root)
    parent = copy_root / "examples/inject"
    tools.run(tools.helm, "dependency", "build", parent, "--skip-refresh")
    objects = tools.template(parent)
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(objects))
    tools.validate(rendered)
    deployment = find(objects, "Deployment")
    assert deployment["metadata"]["name"] == "demo-web"
    config = load_config(config_text(objects), tmp_path)
    assert_native_sidecar(deployment, config)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert (
        volumes["recaptcha-config"]["configMap"]["name"]
        == find(objects, "ConfigMap")["metadata"]["name"]
    )
    (web,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in web["env"]}
    assert env["RECAPTCHA_SIDECAR_TARGET"] == "unix:///run/recaptcha/sidecar.sock"
    assert set(deployment["spec"]["template"]["metadata"]["annotations"]) == {"checksum/config"}


# --- Dockerfile -----------------------------------------------------------------------------


def test_dockerfile_lints_clean(tools: DeployTools) -> None:
    assert tools.run(tools.hadolint, "--failure-threshold", "style", ROOT / "Dockerfile") == ""


def test_dockerfile_shape() -> None:
    lines = [
        line
        for line in (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    stages = [i for i, line in enumerate(lines) if line.startswith("FROM ")]
    assert len(stages) == 2, "multi-stage: build, then runtime"
    runtime = lines[stages[-1] :]
    assert any(line.startswith("COPY --from=build /opt/recaptcha-sidecar") for line in runtime)
    (user,) = [line.split()[1] for line in runtime if line.startswith("USER ")]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0
    assert "STOPSIGNAL SIGTERM" in runtime
    (entrypoint,) = [line for line in runtime if line.startswith("ENTRYPOINT ")]
    assert entrypoint.split(" ", 1)[1].startswith('["'), "exec form"
    assert any(line.startswith("VOLUME ") and "/run/recaptcha" in line for line in runtime)
    assert any(line.startswith("LABEL ") for line in runtime)
    everything = "\n".join(lines)
    for compiler in ("gcc", "build-essential", "apt-get install", "apk add"):
        assert compiler not in everything
    assert "scripts/image-install.sh" in everything
    install = (ROOT / "scripts/image-install.sh").read_text()
    assert "--require-hashes --only-binary=:all:" in install and "requirements.lock" in install


def test_dockerignore_lets_in_exactly_what_the_dockerfile_copies() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "deny by default"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = set()
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            copied.update(s.rstrip("/") for s in line.split()[1:-1] if s != "./")
    assert copied == allowed
    for path in copied:
        assert (ROOT / path).exists(), path


def test_chart_serves_metrics_on_the_pod_ip_for_prometheus(
    tools: DeployTools, tmp_path: Path
) -> None:
    """Issue 13 item 4: the sidecar refuses a metrics endpoint beyond loopback without TLS or
    metrics_insecure; the chart sets metrics_insecure (metrics.insecure) so Prometheus can
    scrape the pod IP, and the sidecar accepts what it renders."""
    objects = render(tools, "default-values.yaml", "--set", "config.metrics_listen=0.0.0.0:9464")
    config = load_config(config_text(objects), tmp_path)
    assert (config.metrics_listen, config.metrics_insecure) == ("0.0.0.0:9464", True)
    strict = render(
        tools,
        "default-values.yaml",
        *("--set", "config.metrics_listen=0.0.0.0:9464", "--set", "metrics.insecure=false"),
    )
    with pytest.raises(Exception, match=re.escape("metrics_listen: 0.0.0.0:9464 can be reached")):
        load_config(config_text(strict), tmp_path)
