"""Kubernetes manifests (kubernetes=true): every kustomization under deploy/ builds with
`kubectl kustomize`; every object validates against the Kubernetes API's schemas
(kubernetes-validate, strict) and the ServiceMonitor against its CRD's (tests/schemas/); and
the policy of kube_policy.py holds, with probe paths, port and timeouts read from the
rendered service's own code. Breaking a manifest on purpose must break the policy."""

import copy
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from kube_policy import (
    SECRET_SETTINGS,
    Obj,
    ServiceFacts,
    build,
    kustomization_dirs,
    policy_violations,
    service_facts,
)
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError, latest_version
from support import REPO_ROOT, answer_sets, render, rendered_answers

Rendered = dict[str, tuple[Path, dict[str, Any]]]
Builds = dict[str, list[Obj]]

SETS = [s.id for s in answer_sets() if s.answers.get("kubernetes")]
# The newest Kubernetes that kubernetes-validate ships schemas for, and the oldest the
# generated README promises (the preStop sleep action is on by default from 1.30).
KUBERNETES_VERSIONS = [latest_version(), "1.30"]
SERVICEMONITOR_SCHEMA = json.loads(
    (REPO_ROOT / "tests" / "schemas" / "servicemonitor-v1.json").read_text()
)
ENVIRONMENTS = ("staging", "production")


@pytest.fixture(scope="session")
def builds(rendered_sets: Rendered) -> Callable[[str], Builds]:
    """set id -> {kustomization folder under deploy/: its built objects}, built once."""
    cache: dict[str, Builds] = {}

    def get(set_id: str) -> Builds:
        if set_id not in cache:
            deploy = rendered_sets[set_id][0] / "deploy"
            cache[set_id] = {name: build(deploy / name) for name in kustomization_dirs(deploy)}
        return cache[set_id]

    return get


@pytest.fixture(scope="session")
def facts(rendered_sets: Rendered) -> Callable[[str], ServiceFacts]:
    return lambda set_id: service_facts(*rendered_sets[set_id])


def test_the_matrix_has_kubernetes_sets_for_each_database() -> None:
    databases = {s.answers.get("database", "postgresql") for s in answer_sets() if s.id in SETS}
    assert databases == {"postgresql", "sqlite", "none"}


def _validate(obj: Obj, version: str) -> None:
    if obj["kind"] == "ServiceMonitor":
        jsonschema.validate(obj, SERVICEMONITOR_SCHEMA, cls=jsonschema.Draft202012Validator)
    else:
        kubernetes_validate.validate(obj, version, strict=True)


def _kinds(objects: list[Obj]) -> set[str]:
    return {obj["kind"] for obj in objects}


@pytest.mark.parametrize("set_id", SETS)
def test_every_kustomization_builds_with_the_objects_its_answers_need(
    builds: Callable[[str], Builds], rendered_sets: Rendered, set_id: str
) -> None:
    answers = rendered_sets[set_id][1]
    built = builds(set_id)
    apps = ["base", *(f"overlays/{env}" for env in ENVIRONMENTS)]
    migrations = ["migrate", *(f"overlays/{env}/migrate" for env in ENVIRONMENTS)]
    postgresql = answers["database"] == "postgresql"
    assert sorted(built) == sorted(apps + (migrations if postgresql else []))

    app_kinds = {"ServiceAccount", "ConfigMap", "Deployment", "Service", "NetworkPolicy"}
    if answers["database"] == "sqlite":
        app_kinds |= {"PersistentVolumeClaim"}
    else:
        app_kinds |= {"HorizontalPodAutoscaler", "PodDisruptionBudget"}
    if answers["metrics"]:
        app_kinds |= {"ServiceMonitor"}
    for name in apps:
        assert _kinds(built[name]) == app_kinds, name
        containers = {
            container["name"]
            for obj in built[name]
            if obj["kind"] == "Deployment"
            for container in obj["spec"]["template"]["spec"]["containers"]
        }
        # The background-job worker: its own Deployment, or beside the app on SQLite's volume.
        assert ("worker" in containers) == bool(answers.get("background_jobs")), name
    for name in migrations if postgresql else []:
        assert _kinds(built[name]) == {"ServiceAccount", "ConfigMap", "Job"}, name


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("set_id", SETS)
def test_every_object_validates_against_its_schema(
    builds: Callable[[str], Builds], set_id: str, version: str
) -> None:
    errors = []
    for name, objects in builds(set_id).items():
        for obj in objects:
            try:
                _validate(obj, version)
            except (ValidationError, jsonschema.ValidationError, SchemaNotFoundError) as error:
                path = "/".join(map(str, getattr(error, "path", [])))
                errors.append(f"{name}: {obj['kind']}/{obj['metadata']['name']} {path}: {error}")
    assert errors == []


def test_the_validators_refuse_a_misspelt_field(builds: Callable[[str], Builds]) -> None:
    objects = builds("everything-on")["overlays/production"]
    deployment = copy.deepcopy(next(o for o in objects if o["kind"] == "Deployment"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["livenesProbe"] = container.pop("livenessProbe")
    with pytest.raises(ValidationError):
        _validate(deployment, latest_version())
    monitor = copy.deepcopy(next(o for o in objects if o["kind"] == "ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["intervall"] = monitor["spec"]["endpoints"][0].pop("interval")
    with pytest.raises(jsonschema.ValidationError):
        _validate(monitor, latest_version())
    monitor = copy.deepcopy(next(o for o in objects if o["kind"] == "ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["interval"] = "30 seconds"
    with pytest.raises(jsonschema.ValidationError):
        _validate(monitor, latest_version())


@pytest.mark.parametrize("set_id", SETS)
def test_the_policy_holds(
    builds: Callable[[str], Builds], facts: Callable[[str], ServiceFacts], set_id: str
) -> None:
    service = facts(set_id)
    problems = [
        f"{name}: {problem}"
        for name, objects in builds(set_id).items()
        for problem in policy_violations(objects, service)
    ]
    assert problems == []


def test_the_policy_refuses_a_probe_path_the_service_does_not_have(
    rendered_sets: Rendered, facts: Callable[[str], ServiceFacts], tmp_path: Path
) -> None:
    """Edit the rendered manifest as a team might, rebuild it, and see the policy fail."""
    project, _ = rendered_sets["everything-on"]
    deploy = shutil.copytree(project / "deploy", tmp_path / "deploy")
    manifest = deploy / "base" / "deployment.yaml"
    text = manifest.read_text()
    assert text.count("path: /health/ready\n") == 1
    manifest.write_text(text.replace("path: /health/ready\n", "path: /health/readyz\n"))
    problems = policy_violations(build(deploy / "overlays" / "production"), facts("everything-on"))
    assert problems == [
        "Deployment/my-service container app: readinessProbe path /health/readyz is not a "
        "health route"
    ]


def _deployment(objects: list[Obj]) -> Obj:
    return next(o for o in objects if o["kind"] == "Deployment")


def _app(objects: list[Obj]) -> Obj:
    return _deployment(objects)["spec"]["template"]["spec"]["containers"][0]


def _worker_monitor(objects: list[Obj]) -> Obj:
    return next(
        o
        for o in objects
        if o["kind"] == "ServiceMonitor" and o["metadata"]["name"].endswith("-worker")
    )


def _set_env(objects: list[Obj], name: str, value: str) -> None:
    next(o for o in objects if o["kind"] == "ConfigMap")["data"][name] = value


BREAKS: dict[str, tuple[Callable[[list[Obj]], object], str]] = {
    "liveness-on-readiness": (
        lambda o: _app(o)["livenessProbe"]["httpGet"].update(path="/health/ready"),
        "livenessProbe path /health/ready, expected /health/live",
    ),
    "no-startup-probe": (lambda o: _app(o).pop("startupProbe"), "no HTTP startupProbe"),
    "wrong-port": (
        lambda o: _app(o)["ports"][0].update(containerPort=8080),
        "port http is 8080, the service listens on 8000",
    ),
    "port-setting-moved": (
        lambda o: _set_env(o, "PORT", "9000"),
        "port http is 8000, the service listens on 9000",
    ),
    "short-grace-period": (
        lambda o: _deployment(o)["spec"]["template"]["spec"].update(
            terminationGracePeriodSeconds=30
        ),
        "terminationGracePeriodSeconds 30 is not above the preStop pause 10 plus "
        "GRACEFUL_TIMEOUT 30",
    ),
    "longer-graceful-timeout": (
        lambda o: _set_env(o, "GRACEFUL_TIMEOUT", "60"),
        "terminationGracePeriodSeconds 45 is not above the preStop pause 10 plus "
        "GRACEFUL_TIMEOUT 60",
    ),
    "readiness-timeout-too-short": (
        lambda o: _app(o)["readinessProbe"].update(timeoutSeconds=2),
        "readinessProbe timeoutSeconds 2 is not above READINESS_TIMEOUT 2.0",
    ),
    "no-pre-stop": (lambda o: _app(o).pop("lifecycle"), "no preStop sleep"),
    "writable-root": (
        lambda o: _app(o)["securityContext"].update(readOnlyRootFilesystem=False),
        "readOnlyRootFilesystem is not true",
    ),
    "escalation": (
        lambda o: _app(o)["securityContext"].pop("allowPrivilegeEscalation"),
        "allowPrivilegeEscalation is not false",
    ),
    "capability-added": (
        lambda o: _app(o)["securityContext"]["capabilities"].update(add=["NET_ADMIN"]),
        "capabilities are not all dropped",
    ),
    "root": (
        lambda o: _deployment(o)["spec"]["template"]["spec"]["securityContext"].update(runAsUser=0),
        "pod runs as 0, the image as 10001",
    ),
    "no-memory-limit": (
        lambda o: _app(o)["resources"]["limits"].pop("memory"),
        "no memory request and limit",
    ),
    "request-above-limit": (
        lambda o: _app(o)["resources"]["requests"].update(cpu="3"),
        "cpu request 3 is above its limit 2",
    ),
    "no-tmp": (lambda o: _app(o).pop("volumeMounts"), "/tmp is not a writable emptyDir"),
    "no-home": (lambda o: _app(o).pop("env"), "HOME is not a writable volume"),
    "no-spread": (
        lambda o: _deployment(o)["spec"]["template"]["spec"].pop("topologySpreadConstraints"),
        "no topologySpreadConstraints",
    ),
    "secret-in-configmap": (
        lambda o: _set_env(o, "SECRET_KEY", "x" * 40),
        "SECRET_KEY is a secret and belongs in my-service-secrets",
    ),
    "unknown-setting": (
        lambda o: _set_env(o, "WEB_CONCURENCY", "4"),
        "WEB_CONCURENCY is not a setting the service reads",
    ),
    "secret-object": (
        lambda o: o.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "x", "labels": {"app.kubernetes.io/name": "my-service"}},
            }
        ),
        "a Secret in the manifests",
    ),
    "namespace-too-long": (
        lambda o: [obj["metadata"].update(namespace="n" * 64) for obj in o],
        "is not a DNS label",
    ),
    "replicas-beside-autoscaler": (
        lambda o: _deployment(o)["spec"].update(replicas=3),
        "sets replicas, which resets the autoscaler's count",
    ),
    "service-misses-pods": (
        lambda o: next(s for s in o if s["kind"] == "Service")["spec"].update(
            selector={"app.kubernetes.io/name": "other"}
        ),
        "Service/my-service: selects no pod",
    ),
    "worker-metrics-port-moved": (
        lambda o: _set_env(o, "JOBS_METRICS_PORT", "9200"),
        "port jobs-metrics is 9101, the worker serves its metrics on 9200",
    ),
    "worker-monitor-wrong-port": (
        lambda o: _worker_monitor(o)["spec"]["endpoints"][0].update(port="metrics"),
        "ServiceMonitor/my-service-worker: port metrics is no Service port",
    ),
    "monitor-wrong-path": (
        lambda o: next(s for s in o if s["kind"] == "ServiceMonitor")["spec"]["endpoints"][
            0
        ].update(path="/metric"),
        "path /metric, not /metrics",
    ),
}


@pytest.mark.parametrize("name", BREAKS)
def test_the_policy_refuses_each_break(
    builds: Callable[[str], Builds], facts: Callable[[str], ServiceFacts], name: str
) -> None:
    objects = copy.deepcopy(builds("everything-on")["overlays/production"])
    assert policy_violations(objects, facts("everything-on")) == []
    mutate, expected = BREAKS[name]
    mutate(objects)
    problems = policy_violations(objects, facts("everything-on"))
    assert any(expected in problem for problem in problems), problems


def _jobs(objects: list[Obj]) -> list[Obj]:
    return [o for o in objects if o["kind"] == "Job"]


def _commands(objects: list[Obj]) -> list[list[str]]:
    commands = []
    for obj in objects:
        if "template" in obj.get("spec", {}):
            pod = obj["spec"]["template"]["spec"]
            for container in pod.get("initContainers", []) + pod["containers"]:
                commands.append(container.get("command", []))
    return commands


@pytest.mark.parametrize("set_id", SETS)
def test_migrations_run_before_the_app_rolls_out(
    builds: Callable[[str], Builds], rendered_sets: Rendered, set_id: str
) -> None:
    answers = rendered_sets[set_id][1]
    built = builds(set_id)
    upgrade = ["alembic", "upgrade", "heads"]
    for env in ENVIRONMENTS:
        app = built[f"overlays/{env}"]
        deployment = _deployment(app)
        pod = deployment["spec"]["template"]["spec"]
        assert _jobs(app) == []
        if answers["database"] == "postgresql":
            # A kustomization of its own, applied and waited for first (README).
            migration = built[f"overlays/{env}/migrate"]
            (job,) = _jobs(migration)
            job_pod = job["spec"]["template"]["spec"]
            assert job_pod["containers"][0]["command"] == upgrade
            assert job_pod["restartPolicy"] == "Never"
            assert job["metadata"]["namespace"] == deployment["metadata"]["namespace"]
            assert job_pod["containers"][0]["image"] == pod["containers"][0]["image"]
            # The same settings: the same generated ConfigMap, by name and content.
            (settings,) = [o for o in migration if o["kind"] == "ConfigMap"]
            assert settings in app
            assert "initContainers" not in pod
        elif answers["database"] == "sqlite":
            # One pod on one volume: migrations run in it, before the app starts.
            (init,) = pod["initContainers"]
            assert init["command"] == upgrade
            assert deployment["spec"]["replicas"] == 1
            assert deployment["spec"]["strategy"] == {"type": "Recreate"}
            claims = {v["name"]: v for v in pod["volumes"] if "persistentVolumeClaim" in v}
            for container in (init, pod["containers"][0]):
                (data,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/data"]
                assert data["name"] in claims
        else:
            assert upgrade not in _commands(app)
            assert "initContainers" not in pod


@pytest.mark.parametrize("set_id", SETS)
def test_overlays_set_namespace_image_replicas_and_resources(
    builds: Callable[[str], Builds], rendered_sets: Rendered, set_id: str
) -> None:
    answers = rendered_sets[set_id][1]
    slug = answers["project_slug"]
    built = builds(set_id)
    assert all("namespace" not in o["metadata"] for o in built["base"])
    shapes = {}
    for env in ENVIRONMENTS:
        for name in (n for n in built if n.startswith(f"overlays/{env}")):
            for obj in built[name]:
                assert obj["metadata"]["namespace"] == f"{slug}-{env}", (name, obj["kind"])
            for obj in built[name]:
                if "template" in obj.get("spec", {}):
                    pod = obj["spec"]["template"]["spec"]
                    for container in pod.get("initContainers", []) + pod["containers"]:
                        assert container["image"] == f"registry.example.com/{slug}:0.1.0"
        app = built[f"overlays/{env}"]
        hpa = [o["spec"] for o in app if o["kind"] == "HorizontalPodAutoscaler"]
        replicas = (
            (hpa[0]["minReplicas"], hpa[0]["maxReplicas"])
            if hpa
            else _deployment(app)["spec"]["replicas"]
        )
        settings = next(o for o in app if o["kind"] == "ConfigMap")["data"]
        shapes[env] = (replicas, _app(app)["resources"], settings["WEB_CONCURRENCY"])
    assert shapes["staging"][1] != shapes["production"][1]
    if answers["database"] != "sqlite":
        assert shapes["staging"][0] != shapes["production"][0]


@pytest.mark.parametrize("set_id", SETS)
def test_the_network_policy_opens_only_what_the_answers_need(
    builds: Callable[[str], Builds], rendered_sets: Rendered, set_id: str
) -> None:
    answers = rendered_sets[set_id][1]
    objects = builds(set_id)["overlays/production"]
    (policy,) = [o for o in objects if o["kind"] == "NetworkPolicy"]
    egress = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    expected = {53}
    if answers["database"] == "postgresql":
        expected.add(5432)
    if answers["redis"]:
        expected.add(6379)
    if answers["tracing"]:
        expected.add(4318)
    assert egress == expected
    ingress = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    # Prometheus scrapes the job workers on their own port.
    jobs_metrics = answers["metrics"] and answers.get("background_jobs")
    assert ingress == ({"http", "jobs-metrics"} if jobs_metrics else {"http"})
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]


@pytest.mark.parametrize("set_id", SETS)
def test_the_readme_makes_the_secret_with_every_key_and_deploys_in_order(
    builds: Callable[[str], Builds], rendered_sets: Rendered, set_id: str
) -> None:
    project, answers = rendered_sets[set_id]
    readme = (project / "README.md").read_text()
    slug = answers["project_slug"]
    assert f"kubectl create secret generic {slug}-secrets" in readme
    wanted = {"SECRET_KEY"}
    if answers["database"] != "none":
        wanted.add("DATABASE_URL")
    if answers["redis"]:
        wanted.add("REDIS_URL")
    if answers["auth"] == "api_key":
        wanted.add("BOOTSTRAP_API_KEY")
    if answers.get("sentry"):
        wanted.add("SENTRY_DSN")
    named = {key for key in SECRET_SETTINGS if f"--from-literal={key}=" in readme}
    assert named == wanted

    # The deploy commands name real kustomizations, objects and namespaces, in order.
    applied = re.findall(r"^kubectl apply -k (\S+)$", readme, re.MULTILINE)
    if answers["database"] == "postgresql":
        assert applied == ["deploy/overlays/$env/migrate", "deploy/overlays/$env"]
    else:
        assert applied == ["deploy/overlays/$env"]
    (namespace,) = re.findall(r"^ns=(\S+)$", readme, re.MULTILINE)
    built = builds(set_id)
    for env in ENVIRONMENTS:
        folders = [path.replace("$env", env).removeprefix("deploy/") for path in applied]
        objects = [o for folder in folders for o in built[folder]]
        assert {o["metadata"]["namespace"] for o in objects} == {namespace.replace("$env", env)}
        names = {(o["kind"].lower(), o["metadata"]["name"]) for o in objects}
        for kind, name in re.findall(r"\b(job|deployment)/([a-z0-9-]+)", readme):
            assert (kind, name) in names


def test_the_longest_slug_copier_accepts_makes_valid_names(tmp_path: Path) -> None:
    slug = "a" * 52
    project = render(tmp_path / "service", {"project_slug": slug, "kubernetes": True})
    answers = rendered_answers(project)
    deploy = project / "deploy"
    for name in kustomization_dirs(deploy):
        objects = build(deploy / name)
        for obj in objects:
            _validate(obj, latest_version())
        assert policy_violations(objects, service_facts(project, answers)) == []
