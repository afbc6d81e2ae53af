"""Kubernetes manifests of a rendered service: building them with kubectl's kustomize, the
facts they must agree with (read from the service's own code), and the policy they must meet.

The policy is a function from built objects to a list of violations, so a test can break a
manifest on purpose and see the violation it causes."""

from __future__ import annotations

import ast
import functools
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]

# Kustomize v5 (kubectl 1.27 and later) builds Components and `labels`; Debian bookworm's
# kubernetes-client is kubectl 1.20 with kustomize v2, which cannot.
MIN_KUSTOMIZE_MAJOR = 5
# Settings that only the Secret may hold.
SECRET_SETTINGS = frozenset(
    {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "BOOTSTRAP_API_KEY", "SENTRY_DSN"}
)
POD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job"})
# Names that must be DNS labels (RFC 1123, at most 63 characters): a namespace, a Service,
# and a Job (its name becomes a label value of its pods). Other names are DNS subdomains.
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
LABEL_NAMED_KINDS = frozenset({"Service", "Job"})


@functools.cache
def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        raise AssertionError(
            "kubectl is not on PATH: the Kubernetes manifests' tests build them with "
            "`kubectl kustomize` (.ci/run installs it)"
        )
    result = subprocess.run([found, "version", "--client"], capture_output=True, text=True)
    match = re.search(r"Kustomize Version: v(\d+)", result.stdout)
    if match is None or int(match[1]) < MIN_KUSTOMIZE_MAJOR:
        raise AssertionError(
            f"{found} has no kustomize v{MIN_KUSTOMIZE_MAJOR} or later ({result.stdout.strip()!r});"
            " the manifests need kubectl 1.27 or newer"
        )
    return found


def kustomization_dirs(deploy: Path) -> list[str]:
    """Folders under deploy/ that `kubectl kustomize` builds (Components are only included)."""
    found = []
    for path in sorted(deploy.rglob("kustomization.yaml")):
        if re.search(r"^kind: Kustomization$", path.read_text(), re.MULTILINE):
            found.append(path.parent.relative_to(deploy).as_posix())
    return found


def build(directory: Path) -> list[Obj]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {directory} failed:\n{result.stderr}")
    return [obj for obj in yaml.safe_load_all(result.stdout) if obj]


# The service's own settings, read from its rendered code.


@dataclass(frozen=True)
class ServiceFacts:
    slug: str
    port: int  # gunicorn.conf.py's PORT default
    graceful_timeout: int  # gunicorn.conf.py's GRACEFUL_TIMEOUT default
    readiness_timeout: float  # Settings.readiness_timeout default
    live_path: str
    ready_path: str
    health_paths: frozenset[str]
    metrics_path: str | None
    uid: int  # the image's user
    setting_names: frozenset[str]  # every environment name the service reads


def _environ_reads(tree: ast.AST) -> dict[str, str | None]:
    """os.environ.get("NAME"[, "default"]) and os.environ["NAME"]: name -> default."""
    reads: dict[str, str | None] = {}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and ast.unparse(node.func.value) == "os.environ"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            default = node.args[1] if len(node.args) > 1 else None
            value = default.value if isinstance(default, ast.Constant) else None
            reads[node.args[0].value] = None if value is None else str(value)
        elif (
            isinstance(node, ast.Subscript)
            and ast.unparse(node.value) == "os.environ"
            and isinstance(node.slice, ast.Constant)
        ):
            reads.setdefault(node.slice.value, None)
    return reads


def _assigned_environ(tree: ast.Module, variable: str) -> tuple[str, str]:
    """The environment name and default behind a top-level `variable = ...os.environ.get()`."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == variable for target in node.targets
        ):
            reads = _environ_reads(node.value)
            if len(reads) == 1:
                ((name, default),) = reads.items()
                if default is not None:
                    return name, default
    raise AssertionError(f"gunicorn.conf.py: no `{variable} = ...os.environ.get(NAME, default)`")


def _field_default(tree: ast.Module, field: str) -> float:
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign) and ast.unparse(node.target) == field:
            value = node.value
            if isinstance(value, ast.Call):
                for keyword in value.keywords:
                    if keyword.arg == "default" and isinstance(keyword.value, ast.Constant):
                        return float(keyword.value.value)
            elif isinstance(value, ast.Constant):
                return float(value.value)
    raise AssertionError(f"config.py: no default for {field}")


def _setting_fields(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for statement in node.body:
                if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                    names.add(statement.target.id.upper())
    return names


def _routes(tree: ast.Module) -> dict[str, str]:
    """The health router's GET routes: handler name -> full path."""
    prefix = ""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "APIRouter":
            for keyword in node.keywords:
                if keyword.arg == "prefix" and isinstance(keyword.value, ast.Constant):
                    prefix = keyword.value.value
    routes = {}
    for node in tree.body:
        if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef):
            for decorator in node.decorator_list:
                if (
                    isinstance(decorator, ast.Call)
                    and ast.unparse(decorator.func) == "router.get"
                    and isinstance(decorator.args[0], ast.Constant)
                ):
                    routes[node.name] = prefix + decorator.args[0].value
    return routes


def service_facts(project: Path, answers: dict[str, Any]) -> ServiceFacts:
    package = project / "src" / answers["package_name"]
    gunicorn = ast.parse((project / "gunicorn.conf.py").read_text())
    config = ast.parse((package / "config.py").read_text())
    health = _routes(ast.parse((package / "features" / "health" / "router.py").read_text()))
    if not {"live", "ready"} <= health.keys():
        raise AssertionError(f"health router: no live and ready routes in {health}")
    port_name, port = _assigned_environ(gunicorn, "bind")
    graceful_name, graceful = _assigned_environ(gunicorn, "graceful_timeout")
    assert (port_name, graceful_name) == ("PORT", "GRACEFUL_TIMEOUT")
    metrics_path = None
    if answers["metrics"]:
        probes = ast.parse((package / "core" / "probes.py").read_text())
        for node in probes.body:
            if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "METRICS_PATH":
                metrics_path = ast.literal_eval(node.value)
        if metrics_path is None:
            raise AssertionError("core/probes.py: no METRICS_PATH")
    uid = 10001
    dockerfile = project / "Dockerfile"
    if dockerfile.exists():
        match = re.search(r"^USER (\d+)", dockerfile.read_text(), re.MULTILINE)
        if match is None:
            raise AssertionError("Dockerfile: no numeric USER")
        uid = int(match[1])
    return ServiceFacts(
        slug=answers["project_slug"],
        port=int(port),
        graceful_timeout=int(graceful),
        readiness_timeout=_field_default(config, "readiness_timeout"),
        live_path=health["live"],
        ready_path=health["ready"],
        health_paths=frozenset(health.values()),
        metrics_path=metrics_path,
        uid=uid,
        setting_names=frozenset(_setting_fields(config) | _environ_reads(gunicorn).keys()),
    )


# The policy.

_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")
_FACTORS = {
    None: 1,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def quantity(value: str | int | float) -> float:
    match = _QUANTITY.match(str(value))
    if match is None:
        raise ValueError(f"not a quantity: {value!r}")
    return float(match[1]) * _FACTORS[match[2]]


def seconds(duration: str) -> float:
    """A Prometheus duration ("30s", "1m30s", "500ms") in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a duration: {duration!r}")
    return sum(int(n) * units[u] for n, u in parts)


def _matches(selector: dict[str, str] | None, labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in (selector or {}).items())


def _settings(objects: list[Obj]) -> dict[str, dict[str, str]]:
    return {o["metadata"]["name"]: o.get("data", {}) for o in objects if o["kind"] == "ConfigMap"}


def _effective(env: dict[str, str], name: str, default: float) -> float:
    return float(env[name]) if name in env else default


def policy_violations(objects: list[Obj], facts: ServiceFacts) -> list[str]:
    """Everything in one kustomize build that breaks the policy, as readable lines."""
    problems: list[str] = []
    configmaps = _settings(objects)
    secret_name = f"{facts.slug}-secrets"
    for obj in objects:
        kind, name = obj["kind"], obj["metadata"]["name"]
        where = f"{kind}/{name}"
        problems += _name_violations(where, obj)
        if obj["metadata"].get("labels", {}).get("app.kubernetes.io/name") != facts.slug:
            problems.append(f"{where}: no label app.kubernetes.io/name={facts.slug}")
        if kind == "Secret":
            problems.append(f"{where}: a Secret in the manifests; secrets are made with kubectl")
        if kind == "ConfigMap":
            data = obj.get("data", {})
            for key in sorted(SECRET_SETTINGS & data.keys()):
                problems.append(f"{where}: {key} is a secret and belongs in {secret_name}")
            for key in sorted(data.keys() - facts.setting_names):
                problems.append(f"{where}: {key} is not a setting the service reads")
        if kind in POD_KINDS:
            problems += _pod_violations(where, obj, facts, configmaps, secret_name)
    problems += _wiring_violations(objects, facts)
    return problems


def _name_violations(where: str, obj: Obj) -> list[str]:
    problems = []
    metadata = obj["metadata"]
    pattern = DNS_LABEL if obj["kind"] in LABEL_NAMED_KINDS else DNS_SUBDOMAIN
    if not pattern.match(metadata["name"]):
        problems.append(f"{where}: the name is not a valid {obj['kind']} name")
    if "namespace" in metadata and not DNS_LABEL.match(metadata["namespace"]):
        problems.append(f"{where}: namespace {metadata['namespace']} is not a DNS label")
    labels = dict(metadata.get("labels", {}))
    labels.update(obj.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {}))
    for key, value in labels.items():
        if not LABEL_VALUE.match(value):
            problems.append(f"{where}: label {key}={value} is not a valid label value")
    return problems


def _pod_violations(
    where: str,
    obj: Obj,
    facts: ServiceFacts,
    configmaps: dict[str, dict[str, str]],
    secret_name: str,
) -> list[str]:
    problems = []
    pod = obj["spec"]["template"]["spec"]
    pod_labels = obj["spec"]["template"]["metadata"].get("labels", {})
    security = pod.get("securityContext", {})
    if security.get("runAsNonRoot") is not True:
        problems.append(f"{where}: pod securityContext.runAsNonRoot is not true")
    if security.get("runAsUser") != facts.uid:
        user = security.get("runAsUser")
        problems.append(f"{where}: pod runs as {user}, the image as {facts.uid}")
    if security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append(f"{where}: pod seccompProfile is not RuntimeDefault")
    if pod.get("automountServiceAccountToken") is not False:
        problems.append(f"{where}: the ServiceAccount token is mounted")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    containers = pod.get("containers", [])
    init_containers = pod.get("initContainers", [])
    env: dict[str, str] = {}
    for container in init_containers + containers:
        at = f"{where} container {container['name']}"
        problems += _container_violations(at, container, volumes)
        refs = container.get("envFrom", [])
        maps = [r["configMapRef"]["name"] for r in refs if "configMapRef" in r]
        secrets = [r["secretRef"]["name"] for r in refs if "secretRef" in r]
        if not maps or any(m not in configmaps for m in maps):
            problems.append(f"{at}: envFrom names no ConfigMap of this build ({maps})")
        for m in maps:
            env.update(configmaps.get(m, {}))
        if secrets != [secret_name]:
            problems.append(f"{at}: envFrom secretRef is {secrets}, not [{secret_name!r}]")
    if obj["kind"] != "Job":
        if not _matches(obj["spec"].get("selector", {}).get("matchLabels"), pod_labels):
            problems.append(f"{where}: selector does not match the pod labels")
        problems += _server_violations(where, pod, pod_labels, volumes, env, facts)
    return problems


def _container_violations(at: str, container: Obj, volumes: dict[str, Obj]) -> list[str]:
    problems = []
    security = container.get("securityContext", {})
    if security.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{at}: allowPrivilegeEscalation is not false")
    if security.get("readOnlyRootFilesystem") is not True:
        problems.append(f"{at}: readOnlyRootFilesystem is not true")
    if security.get("privileged"):
        problems.append(f"{at}: privileged")
    capabilities = security.get("capabilities", {})
    if "ALL" not in capabilities.get("drop", []) or capabilities.get("add"):
        problems.append(f"{at}: capabilities are not all dropped")
    resources = container.get("resources", {})
    for resource in ("cpu", "memory"):
        request = resources.get("requests", {}).get(resource)
        limit = resources.get("limits", {}).get(resource)
        if request is None or limit is None:
            problems.append(f"{at}: no {resource} request and limit")
        elif quantity(request) > quantity(limit):
            problems.append(f"{at}: {resource} request {request} is above its limit {limit}")
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    if "emptyDir" not in volumes.get(mounts.get("/tmp", ""), {}):
        problems.append(f"{at}: /tmp is not a writable emptyDir (the root is read-only)")
    return problems


def _server_violations(
    where: str,
    pod: Obj,
    pod_labels: dict[str, str],
    volumes: dict[str, Obj],
    env: dict[str, str],
    facts: ServiceFacts,
) -> list[str]:
    """A long-running web container: probes, port and shutdown agree with the service."""
    problems = []
    port = int(_effective(env, "PORT", facts.port))
    graceful = _effective(env, "GRACEFUL_TIMEOUT", facts.graceful_timeout)
    readiness_timeout = _effective(env, "READINESS_TIMEOUT", facts.readiness_timeout)
    for container in pod["containers"]:
        at = f"{where} container {container['name']}"
        if _is_worker(container):
            problems += _worker_violations(at, where, pod, container, env)
            continue
        ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
        if ports.get("http") != port:
            listening = f"the service listens on {port}"
            problems.append(f"{at}: port http is {ports.get('http')}, {listening}")
        wanted = {
            "startupProbe": facts.live_path,
            "livenessProbe": facts.live_path,
            "readinessProbe": facts.ready_path,
        }
        for probe_name, path in wanted.items():
            probe = container.get(probe_name)
            if probe is None or "httpGet" not in probe:
                problems.append(f"{at}: no HTTP {probe_name}")
                continue
            get = probe["httpGet"]
            if get.get("path") not in facts.health_paths:
                problems.append(f"{at}: {probe_name} path {get.get('path')} is not a health route")
            elif get["path"] != path:
                problems.append(f"{at}: {probe_name} path {get['path']}, expected {path}")
            if get.get("port") not in ("http", port):
                problems.append(f"{at}: {probe_name} port {get.get('port')} is not {port}")
        home = {e["name"]: e.get("value") for e in container.get("env", [])}.get("HOME")
        writable = [
            m["mountPath"]
            for m in container.get("volumeMounts", [])
            if "emptyDir" in volumes.get(m["name"], {})
        ]
        if home not in writable:
            problems.append(
                f"{at}: HOME is not a writable volume (gunicorn writes its socket there)"
            )
        readiness = container.get("readinessProbe", {})
        if readiness.get("timeoutSeconds", 1) <= readiness_timeout:
            problems.append(
                f"{at}: readinessProbe timeoutSeconds {readiness.get('timeoutSeconds', 1)} is not "
                f"above READINESS_TIMEOUT {readiness_timeout}"
            )
        pause = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        if pause <= 0:
            problems.append(f"{at}: no preStop sleep, so requests arrive after SIGTERM")
        grace = pod.get("terminationGracePeriodSeconds", 30)
        if grace <= pause + graceful:
            problems.append(
                f"{where}: terminationGracePeriodSeconds {grace} is not above the preStop pause "
                f"{pause} plus GRACEFUL_TIMEOUT {graceful:g}"
            )
    spread = pod.get("topologySpreadConstraints", [])
    if not spread or not all(
        _matches(c.get("labelSelector", {}).get("matchLabels"), pod_labels) for c in spread
    ):
        problems.append(f"{where}: no topologySpreadConstraints that select its pods")
    return problems


def _is_worker(container: Obj) -> bool:
    command = container.get("command", [])
    return command[:2] == ["python", "-m"] and len(command) == 3 and command[2].endswith(".worker")


def _worker_violations(
    at: str, where: str, pod: Obj, container: Obj, env: dict[str, str]
) -> list[str]:
    """The background-job worker has no HTTP port: its probes run its own `--check`, its
    metrics port (when it has one) is JOBS_METRICS_PORT, and the pod waits longer than the
    grace its running jobs get on SIGTERM."""
    problems = []
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    if "jobs-metrics" in ports:
        metrics_port = int(_effective(env, "JOBS_METRICS_PORT", 9101))
        if ports["jobs-metrics"] != metrics_port:
            problems.append(
                f"{at}: port jobs-metrics is {ports['jobs-metrics']}, the worker serves its "
                f"metrics on {metrics_port}"
            )
    check = [*container["command"], "--check"]
    for probe_name in ("startupProbe", "livenessProbe", "readinessProbe"):
        probe = container.get(probe_name)
        if probe is None or probe.get("exec", {}).get("command") != check:
            problems.append(f"{at}: {probe_name} does not run {' '.join(check)}")
    shutdown_grace = float(_effective(env, "JOBS_SHUTDOWN_GRACE", 25))
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if grace <= shutdown_grace:
        problems.append(
            f"{where}: terminationGracePeriodSeconds {grace} is not above JOBS_SHUTDOWN_GRACE "
            f"{shutdown_grace:g}"
        )
    return problems


def _wiring_violations(objects: list[Obj], facts: ServiceFacts) -> list[str]:
    """Services, autoscalers, budgets, policies and monitors point at real pods and ports."""
    problems = []
    by_kind: dict[str, list[Obj]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], []).append(obj)
    web_pods = [
        (o["spec"]["template"]["metadata"]["labels"], o["spec"]["template"]["spec"])
        for o in by_kind.get("Deployment", [])
    ]
    deployments = {o["metadata"]["name"] for o in by_kind.get("Deployment", [])}

    def selects_pods(selector: dict[str, str] | None) -> bool:
        return any(_matches(selector, labels) for labels, _ in web_pods)

    for service in by_kind.get("Service", []):
        where = f"Service/{service['metadata']['name']}"
        if not selects_pods(service["spec"].get("selector")):
            problems.append(f"{where}: selects no pod")
        names = {
            p.get("name"): p["containerPort"]
            for _, pod in web_pods
            for c in pod["containers"]
            for p in c.get("ports", [])
        }
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            if target not in names and target not in names.values():
                problems.append(f"{where}: targetPort {target} is no container port")
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        where = f"HorizontalPodAutoscaler/{hpa['metadata']['name']}"
        spec = hpa["spec"]
        if spec["scaleTargetRef"]["name"] not in deployments:
            problems.append(f"{where}: scales no Deployment of this build")
        if spec.get("minReplicas", 1) < 2 or spec["maxReplicas"] < spec.get("minReplicas", 1):
            problems.append(f"{where}: the range must start at 2 pods (a drain leaves one)")
    scaled = {
        o["spec"]["scaleTargetRef"]["name"] for o in by_kind.get("HorizontalPodAutoscaler", [])
    }
    for deployment in by_kind.get("Deployment", []):
        if deployment["metadata"]["name"] in scaled and "replicas" in deployment["spec"]:
            problems.append(
                f"Deployment/{deployment['metadata']['name']}: sets replicas, which resets "
                "the autoscaler's count on every apply"
            )
    for pdb in by_kind.get("PodDisruptionBudget", []):
        if not selects_pods(pdb["spec"].get("selector", {}).get("matchLabels")):
            problems.append(f"PodDisruptionBudget/{pdb['metadata']['name']}: selects no pod")
    for policy in by_kind.get("NetworkPolicy", []):
        if not selects_pods(policy["spec"]["podSelector"].get("matchLabels")):
            problems.append(f"NetworkPolicy/{policy['metadata']['name']}: selects no pod")
    services = by_kind.get("Service", [])
    for monitor in by_kind.get("ServiceMonitor", []):
        where = f"ServiceMonitor/{monitor['metadata']['name']}"
        selector = monitor["spec"]["selector"].get("matchLabels")
        chosen = [s for s in services if _matches(selector, s["metadata"].get("labels", {}))]
        port_names = {p.get("name") for s in chosen for p in s["spec"]["ports"]}
        if not chosen:
            problems.append(f"{where}: selects no Service")
        for endpoint in monitor["spec"]["endpoints"]:
            if endpoint.get("port") not in port_names:
                problems.append(f"{where}: port {endpoint.get('port')} is no Service port")
            if endpoint.get("path") != facts.metrics_path:
                problems.append(f"{where}: path {endpoint.get('path')}, not {facts.metrics_path}")
            if "scrapeTimeout" in endpoint and seconds(endpoint["scrapeTimeout"]) > seconds(
                endpoint.get("interval", "30s")
            ):
                problems.append(f"{where}: scrapeTimeout is longer than the interval")
    return problems
