"""deploy/: the image and the Kubernetes manifests agree with the daemon and its config.

Each kustomization is rendered with ``kubectl kustomize`` and checked as applied: the core
objects against the Kubernetes OpenAPI schemas (kubernetes-validate, bundled schemas, no
network), and the ties to the daemon against the *effective* settings of that rendering:
the ConfigMap it mounts, the container's environment and the example Secret's files.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from consumer.config import DEFAULT_SECRETS_DIR, SECRETS_DIR_ENV, Settings, load_settings
from tests.support import REPO

ROOT = REPO
CONFIG = ROOT / "config" / "consumer.yaml"
# The base kustomization's own copy: kustomize reads nothing outside its root unless told to.
DEPLOYED_CONFIG = ROOT / "deploy" / "k8s" / "base" / "consumer.yaml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
K8S = ROOT / "deploy" / "k8s"
SECRET_EXAMPLE = K8S / "base" / "secret.example.yaml"
KUSTOMIZATIONS = {"base": K8S / "base", "example": K8S / "overlays" / "example"}

# A Kubernetes minor in upstream support that kubernetes-validate bundles schemas for.
KUBERNETES_VERSION = "1.35.0"
# API groups of custom resources: no schema in kubernetes-validate, checked by hand below.
CRD_GROUPS = ("keda.sh", "monitoring.coreos.com")
DEFAULT_HTTP_PORT = 8080
DAEMON, INGEST = "cover-consumer", "cover-consumer-ingest"  # the two Deployments

Manifest = dict[str, Any]


@functools.cache
def _render(name: str) -> tuple[Manifest, ...]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: cannot render the kustomizations")
    # No --load-restrictor: what renders here renders in `kubectl apply -k` and Flux.
    proc = subprocess.run(
        [kubectl, "kustomize", KUSTOMIZATIONS[name]],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"kubectl kustomize {name} failed:\n{proc.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(proc.stdout) if doc)


@pytest.fixture(params=sorted(KUSTOMIZATIONS))
def rendering(request: pytest.FixtureRequest) -> tuple[Manifest, ...]:
    return _render(request.param)


def _of_kind(docs: tuple[Manifest, ...], kind: str) -> list[Manifest]:
    return [doc for doc in docs if doc["kind"] == kind]


def _one(docs: tuple[Manifest, ...], kind: str, name: str | None = None) -> Manifest:
    found = [d for d in _of_kind(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _container(docs: tuple[Manifest, ...], deployment: str = DAEMON) -> Manifest:
    containers = _one(docs, "Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: Manifest = containers[0]
    return container


def _volume_at(
    docs: tuple[Manifest, ...], path: str, deployment: str = DAEMON
) -> tuple[Manifest, Manifest]:
    """The mount at ``path`` in the container and the pod volume it mounts."""
    pod = _one(docs, "Deployment", deployment)["spec"]["template"]["spec"]
    container = _container(docs, deployment)
    mounts = [m for m in container.get("volumeMounts", []) if m["mountPath"] == path]
    assert len(mounts) == 1, f"nothing (or more than one thing) mounted at {path}"
    volumes = [v for v in pod["volumes"] if v["name"] == mounts[0]["name"]]
    assert len(volumes) == 1
    return mounts[0], volumes[0]


def _config_path(docs: tuple[Manifest, ...], deployment: str = DAEMON) -> str:
    args: list[str] = _container(docs, deployment)["args"]
    assert "--config" in args
    return args[args.index("--config") + 1]


def _example_secret() -> Manifest:
    secret: Manifest = yaml.safe_load(SECRET_EXAMPLE.read_text(encoding="utf-8"))
    return secret


def _final_stage() -> list[str]:
    """The Dockerfile's lines from its last FROM on: what the image runs."""
    lines = DOCKERFILE.read_text(encoding="utf-8").splitlines()
    last_from = max(i for i, line in enumerate(lines) if line.startswith("FROM "))
    return lines[last_from:]


def _http_port(settings: Settings) -> int:
    # Defensive: the http section arrives with the side server.
    http = getattr(settings, "http", None)
    return int(getattr(http, "port", DEFAULT_HTTP_PORT))


@pytest.fixture(params=[DAEMON, INGEST])
def deployment(request: pytest.FixtureRequest) -> str:
    """Each Deployment, for what both must get right (config, secrets, security)."""
    name: str = request.param
    return name


@pytest.fixture
def settings(
    rendering: tuple[Manifest, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """What the daemon of this rendering would load: its ConfigMap, env and the example Secret."""
    return _load(rendering, DAEMON, tmp_path, monkeypatch)


@pytest.fixture
def ingest_settings(
    rendering: tuple[Manifest, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """What the ingest of this rendering would load."""
    return _load(rendering, INGEST, tmp_path, monkeypatch)


def _load(
    rendering: tuple[Manifest, ...],
    deployment: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    mount, volume = _volume_at(rendering, _config_path(rendering, deployment), deployment)
    configmap = _one(rendering, "ConfigMap", volume["configMap"]["name"])
    config = tmp_path / "consumer.yaml"
    config.write_text(configmap["data"][mount["subPath"]], encoding="utf-8")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for key, value in _example_secret()["stringData"].items():
        (secrets / key).write_text(value, encoding="utf-8")
    for name in list(os.environ):
        if name.upper().startswith("COVER_CONSUMER"):
            monkeypatch.delenv(name)
    monkeypatch.setenv(SECRETS_DIR_ENV, str(secrets))
    for env in _container(rendering, deployment).get("env", []):
        if "value" in env:
            monkeypatch.setenv(env["name"], env["value"])
    return load_settings(config)


def test_core_objects_pass_strict_schema_validation(rendering: tuple[Manifest, ...]) -> None:
    core = [d for d in rendering if d["apiVersion"].split("/")[0] not in CRD_GROUPS]
    assert {"Deployment", "ConfigMap", "PodDisruptionBudget"} <= {d["kind"] for d in core}
    validate = [sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet"]
    proc = subprocess.run(
        [*validate, "--kubernetes-version", KUBERNETES_VERSION, "-"],
        input=yaml.safe_dump_all(core),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # --quiet prints only failures and warnings (a kind without a schema is a warning).
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not proc.stdout.strip(), proc.stdout


def test_rendering_applies_no_secret(rendering: tuple[Manifest, ...]) -> None:
    assert not _of_kind(rendering, "Secret"), "real secrets are created out of band"


def test_kustomization_config_is_a_verbatim_copy_of_config_consumer_yaml() -> None:
    # One source of truth: config/consumer.yaml. The copy exists only so that kustomize
    # needs no --load-restrictor; a change to one without the other fails here.
    assert DEPLOYED_CONFIG.read_bytes() == CONFIG.read_bytes(), (
        f"{DEPLOYED_CONFIG.relative_to(ROOT)} differs from {CONFIG.relative_to(ROOT)}: "
        "run `make deploy-config`"
    )


def test_base_configmap_is_config_file_verbatim() -> None:
    docs = _render("base")
    mount, volume = _volume_at(docs, _config_path(docs))
    configmap = _one(docs, "ConfigMap", volume["configMap"]["name"])
    assert configmap["data"][mount["subPath"]] == CONFIG.read_text(encoding="utf-8")


def test_config_mount_is_the_file_the_container_runs_with(
    rendering: tuple[Manifest, ...], deployment: str
) -> None:
    mount, volume = _volume_at(rendering, _config_path(rendering, deployment), deployment)
    assert "configMap" in volume
    assert mount["subPath"] in _one(rendering, "ConfigMap", volume["configMap"]["name"])["data"]


def test_container_args_are_the_image_cmd(rendering: tuple[Manifest, ...]) -> None:
    cmd = [line for line in _final_stage() if line.startswith("CMD ")]
    assert len(cmd) == 1
    assert _container(rendering)["args"] == json.loads(cmd[0].removeprefix("CMD "))


def test_effective_config_is_valid_with_the_example_secret(settings: Settings) -> None:
    # The fixture raises ConfigError for an invalid config; SASL needs the secret files.
    if settings.kafka.security_protocol.startswith("SASL_"):
        assert settings.kafka.sasl_username is not None
        assert settings.kafka.sasl_password is not None


def test_scaler_watches_what_the_daemon_consumes(
    rendering: tuple[Manifest, ...], settings: Settings
) -> None:
    for trigger in _one(rendering, "ScaledObject")["spec"]["triggers"]:
        assert trigger["type"] == "kafka"
        meta = trigger["metadata"]
        assert meta["consumerGroup"] == settings.kafka.group_id
        assert meta["topic"] == settings.kafka.topic
        assert meta["bootstrapServers"] == settings.kafka.bootstrap_servers
        assert meta["offsetResetPolicy"] == settings.kafka.auto_offset_reset


def test_replicas_are_capped_at_the_partition_count(
    rendering: tuple[Manifest, ...], settings: Settings
) -> None:
    spec = _one(rendering, "ScaledObject")["spec"]
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= settings.topics.partitions


def test_trigger_metadata_values_are_strings(rendering: tuple[Manifest, ...]) -> None:
    for scaled in _of_kind(rendering, "ScaledObject"):
        for trigger in scaled["spec"]["triggers"]:
            bad = {k: v for k, v in trigger["metadata"].items() if not isinstance(v, str)}
            assert not bad, f"KEDA trigger metadata must be strings: {bad}"


def test_autoscaled_deployment_sets_no_replicas(rendering: tuple[Manifest, ...]) -> None:
    scaled = _of_kind(rendering, "ScaledObject")
    assert scaled
    for obj in scaled:
        target = obj["spec"]["scaleTargetRef"]
        assert target.get("kind", "Deployment") == "Deployment"
        assert "replicas" not in _one(rendering, "Deployment", target["name"])["spec"]


def test_trigger_authentication_exists_and_reads_example_secret_keys(
    rendering: tuple[Manifest, ...],
) -> None:
    secret = _example_secret()
    for trigger in _one(rendering, "ScaledObject")["spec"]["triggers"]:
        auth = _one(rendering, "TriggerAuthentication", trigger["authenticationRef"]["name"])
        for ref in auth["spec"]["secretTargetRef"]:
            assert ref["name"] == secret["metadata"]["name"]
            assert ref["key"] in secret["stringData"]


def test_container_port_is_the_http_port(
    rendering: tuple[Manifest, ...], settings: Settings
) -> None:
    ports = {p["name"]: p["containerPort"] for p in _container(rendering)["ports"]}
    assert ports == {"http": _http_port(settings)}


@pytest.mark.parametrize(
    ("probe", "path"),
    [("startupProbe", "/livez"), ("livenessProbe", "/livez"), ("readinessProbe", "/readyz")],
)
def test_probe_targets_the_side_server(
    rendering: tuple[Manifest, ...], settings: Settings, probe: str, path: str
) -> None:
    get = _container(rendering)[probe]["httpGet"]
    assert get["path"] == path
    assert get["port"] in ("http", _http_port(settings))


def test_grace_period_outlasts_the_shutdown_budget(
    rendering: tuple[Manifest, ...], settings: Settings
) -> None:
    grace = _one(rendering, "Deployment", DAEMON)["spec"]["template"]["spec"]
    assert grace["terminationGracePeriodSeconds"] > settings.consumer.shutdown_timeout


def test_secrets_mount_at_the_apps_default_secrets_dir(
    rendering: tuple[Manifest, ...], deployment: str
) -> None:
    mount, volume = _volume_at(rendering, DEFAULT_SECRETS_DIR, deployment)
    assert volume["secret"]["secretName"] == _example_secret()["metadata"]["name"]
    assert "subPath" not in mount  # a subPath mount would hide keys added later
    env = _container(rendering, deployment).get("env", [])
    assert SECRETS_DIR_ENV not in {e["name"] for e in env}


def test_image_runs_as_the_pods_numeric_non_root_user(
    rendering: tuple[Manifest, ...], deployment: str
) -> None:
    users = [line.split()[1] for line in _final_stage() if line.startswith("USER ")]
    assert len(users) == 1
    uid = users[0].split(":")[0]
    assert uid.isdigit(), "a numeric UID lets Kubernetes verify runAsNonRoot"
    assert int(uid) != 0
    pod = _one(rendering, "Deployment", deployment)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == int(uid)


def test_pod_meets_the_restricted_security_profile(
    rendering: tuple[Manifest, ...], deployment: str
) -> None:
    pod = _one(rendering, "Deployment", deployment)["spec"]["template"]["spec"]
    ctx = _container(rendering, deployment)["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["capabilities"] == {"drop": ["ALL"]}


def test_pod_gets_no_api_token(rendering: tuple[Manifest, ...], deployment: str) -> None:
    pod = _one(rendering, "Deployment", deployment)["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    account = _one(rendering, "ServiceAccount", pod["serviceAccountName"])
    assert account["automountServiceAccountToken"] is False


def _pod_labels(docs: tuple[Manifest, ...], deployment: str = DAEMON) -> dict[str, str]:
    template = _one(docs, "Deployment", deployment)["spec"]["template"]
    labels: dict[str, str] = template["metadata"]["labels"]
    return labels


def _selects(selector: dict[str, str], docs: tuple[Manifest, ...], deployment: str) -> bool:
    return selector.items() <= _pod_labels(docs, deployment).items()


def test_disruption_budget_evicts_one_pod_at_a_time(rendering: tuple[Manifest, ...]) -> None:
    pdb = _one(rendering, "PodDisruptionBudget", DAEMON)["spec"]
    assert _selects(pdb["selector"]["matchLabels"], rendering, DAEMON)
    assert not _selects(pdb["selector"]["matchLabels"], rendering, INGEST)
    assert pdb["maxUnavailable"] == 1
    # A not-ready pod (guard tripped) must not block a node drain.
    assert pdb["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_metrics_service_selects_the_pods(rendering: tuple[Manifest, ...]) -> None:
    service = _one(rendering, "Service", DAEMON)["spec"]
    assert _selects(service["selector"], rendering, DAEMON)
    assert not _selects(service["selector"], rendering, INGEST)
    assert [p["targetPort"] for p in service["ports"]] == ["http"]


def test_scaler_adds_no_replica_for_partitions_without_lag(
    rendering: tuple[Manifest, ...],
) -> None:
    for trigger in _one(rendering, "ScaledObject")["spec"]["triggers"]:
        meta = trigger["metadata"]
        assert meta["limitToPartitionsWithLag"] == "true"
        # KEDA refuses the pair, and the limit needs a topic to count partitions of.
        assert meta["allowIdleConsumers"] == "false"
        assert meta["topic"]


def _keda_ca_key(docs: tuple[Manifest, ...]) -> str | None:
    refs = _one(docs, "TriggerAuthentication")["spec"]["secretTargetRef"]
    keys = [ref["key"] for ref in refs if ref["parameter"] == "ca"]
    return keys[0] if keys else None


def test_daemon_and_scaler_trust_the_same_ca(
    rendering: tuple[Manifest, ...], settings: Settings
) -> None:
    key = _keda_ca_key(rendering)
    cafile = settings.kafka.ssl_cafile
    expected = None if key is None else Path(DEFAULT_SECRETS_DIR) / key
    assert cafile == expected


def test_example_overlay_verifies_brokers_against_a_private_ca() -> None:
    key = _keda_ca_key(_render("example"))
    assert key is not None
    assert key in _example_secret()["stringData"]


@pytest.mark.parametrize(
    ("deployment", "port"), [(DAEMON, "http"), (INGEST, "ingest")], ids=["daemon", "ingest"]
)
def test_a_pod_monitor_scrapes_every_pod_on_its_metrics_port(deployment: str, port: str) -> None:
    docs = _render("example")
    monitor = _one(docs, "PodMonitor", deployment)["spec"]
    assert _selects(monitor["selector"]["matchLabels"], docs, deployment)
    others = {DAEMON, INGEST} - {deployment}
    assert not any(_selects(monitor["selector"]["matchLabels"], docs, o) for o in others)
    endpoints = monitor["podMetricsEndpoints"]
    assert [(e["port"], e["path"]) for e in endpoints] == [(port, "/metrics")]
    assert port in {p["name"] for p in _container(docs, deployment)["ports"]}


@pytest.mark.parametrize("deployment", [DAEMON, INGEST])
def test_pods_scraped_by_a_pod_monitor_carry_no_scrape_annotations(deployment: str) -> None:
    # Scraped twice, every sum() in the alerts would double.
    template = _one(_render("example"), "Deployment", deployment)["spec"]["template"]
    annotations = template["metadata"].get("annotations", {})
    assert not [name for name in annotations if name.startswith("prometheus.io/")]


def test_grafana_dashboard_configmap_has_a_stable_name_and_the_sidecar_label() -> None:
    dashboard = _one(_render("example"), "ConfigMap", "cover-consumer-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["cover-consumer.json"])["uid"] == "cover-consumer"


# --- the ingest ------------------------------------------------------------------------------


def test_ingest_runs_the_ingest_command_on_the_daemons_config(
    rendering: tuple[Manifest, ...],
) -> None:
    args = _container(rendering, INGEST)["args"]
    assert args[0] == "ingest"
    assert _config_path(rendering, INGEST) == _config_path(rendering, DAEMON)
    _, ingest_volume = _volume_at(rendering, _config_path(rendering, INGEST), INGEST)
    _, daemon_volume = _volume_at(rendering, _config_path(rendering, DAEMON), DAEMON)
    assert ingest_volume == daemon_volume  # one ConfigMap: one config for both


def test_ingest_port_is_the_configured_one(
    rendering: tuple[Manifest, ...], ingest_settings: Settings
) -> None:
    ports = {p["name"]: p["containerPort"] for p in _container(rendering, INGEST)["ports"]}
    assert ports == {"ingest": ingest_settings.ingest.port}


def test_effective_ingest_config_is_valid_with_the_example_secret(
    ingest_settings: Settings,
) -> None:
    assert ingest_settings.ingest.mfs.key is not None  # ingest__mfs__key of the Secret


@pytest.mark.parametrize(
    ("probe", "path"),
    [("startupProbe", "/livez"), ("livenessProbe", "/livez"), ("readinessProbe", "/readyz")],
)
def test_ingest_probes_target_its_port(
    rendering: tuple[Manifest, ...], probe: str, path: str
) -> None:
    get = _container(rendering, INGEST)[probe]["httpGet"]
    assert (get["path"], get["port"]) == (path, "ingest")


def test_ingest_runs_two_replicas_and_no_keda(rendering: tuple[Manifest, ...]) -> None:
    spec = _one(rendering, "Deployment", INGEST)["spec"]
    scaled = {o["spec"]["scaleTargetRef"]["name"] for o in _of_kind(rendering, "ScaledObject")}
    hpas = [
        h
        for h in _of_kind(rendering, "HorizontalPodAutoscaler")
        if h["spec"]["scaleTargetRef"]["name"] == INGEST
    ]
    assert INGEST not in scaled
    if hpas:  # the autoscaler owns the count, never below two
        assert "replicas" not in spec
        assert all(h["spec"]["minReplicas"] >= 2 for h in hpas)
    else:
        assert spec["replicas"] == 2


def test_base_ingest_runs_two_replicas() -> None:
    assert _one(_render("base"), "Deployment", INGEST)["spec"]["replicas"] == 2


def test_ingest_grace_period_outlasts_pre_stop_and_its_shutdown_budget(
    rendering: tuple[Manifest, ...], ingest_settings: Settings
) -> None:
    pod = _one(rendering, "Deployment", INGEST)["spec"]["template"]["spec"]
    pre_stop = _container(rendering, INGEST)["lifecycle"]["preStop"]["sleep"]["seconds"]
    budget = pre_stop + ingest_settings.ingest.shutdown_timeout
    assert pod["terminationGracePeriodSeconds"] > budget


def test_ingest_service_and_budget_select_only_ingest_pods(
    rendering: tuple[Manifest, ...],
) -> None:
    service = _one(rendering, "Service", INGEST)["spec"]
    pdb = _one(rendering, "PodDisruptionBudget", INGEST)["spec"]
    for selector in (service["selector"], pdb["selector"]["matchLabels"]):
        assert _selects(selector, rendering, INGEST)
        assert not _selects(selector, rendering, DAEMON)
    assert [p["targetPort"] for p in service["ports"]] == ["ingest"]
    assert pdb["minAvailable"] == 1


def test_example_ingress_routes_only_the_notification_paths_over_tls() -> None:
    docs = _render("example")
    ingress = _one(docs, "Ingress", INGEST)["spec"]
    [rule] = ingress["rules"]
    routed = {
        (
            p["path"],
            p["pathType"],
            p["backend"]["service"]["name"],
            p["backend"]["service"]["port"]["name"],
        )
        for p in rule["http"]["paths"]
    }
    assert routed == {("/smn", "Exact", INGEST, "ingest"), ("/mfs", "Exact", INGEST, "ingest")}
    assert [rule["host"]] == ingress["tls"][0]["hosts"]
    assert ingress["tls"][0]["secretName"]


def test_example_ingest_takes_its_projects_smn_topic_behind_its_ingress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An empty list takes any topic SMN signs; a deployment names its own.
    ingest = _load(_render("example"), INGEST, tmp_path, monkeypatch).ingest
    assert len(ingest.smn.topic_urns) == 1
    assert ingest.smn.topic_urns[0].startswith("urn:smn:")
    assert ingest.trust_forwarded_for  # the source is what ingress-nginx appends
