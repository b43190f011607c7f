"""Everything shaped by Ray Serve's REST API (Ray 2.60, the dashboard's ``/api/serve/applications/``).

A service's replica set on a RAY center is one Serve application, ``aicn-service-<key>``, made of
one deployment (the built-in ONNX runner of ``connectors/serving/ray_app.py``). The gateway's
replica references live in that deployment's ``user_config`` and its ``num_replicas`` is their
count: adding or removing a reference is one of Serve's light updates (no running replica
restarts). Facts of the API this module relies on (checked against a real head):

* ``PUT /api/serve/applications/`` is declarative over *every* application: one left out is
  deleted, so a change is read, modified and written back whole (other applications kept as
  they were deployed);
* ``GET /api/serve/applications/`` reports each application's ``status`` (``DEPLOYING``,
  ``RUNNING``, ``DEPLOY_FAILED``, ``UNHEALTHY``, ``DELETING``), its ``deployed_app_config`` and,
  per deployment, its replicas with their ``state``;
* ``http_options`` take effect only when Serve starts: the gateway always sends the same ones
  (loopback, a port that is not the gateway's own 8000);
* the code reaches the cluster as a runtime-env package (``PUT /api/packages/gcs/_ray_pkg_<hash>.zip``),
  so a cluster that cannot read the gateway's files still runs it.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from connectors.ray.api import Resources
from connectors.serving import ONNX_SERVER

APPLICATIONS = "/api/serve/applications/"
APP_PREFIX = "aicn-service-"
DEPLOYMENT = "onnx"
IMPORT_PATH = "aicn_serving.ray_app:build"
#: the external id of a Serve replica: ``serve:<application>:<the gateway's reference>``
EXTERNAL_PREFIX = "serve:"
REPLICAS_KEY = "aicn_replicas"
#: seconds Serve waits between health checks of a replica, and for one to answer
HEALTH_PERIOD_SECONDS = 5.0

_PACKAGE_FILES = {
    "aicn_serving/__init__.py": b'"""The built-in ONNX runner, shipped to a Ray cluster by the gateway."""\n',
    "aicn_serving/onnx_server.py": ONNX_SERVER.read_bytes(),
    "aicn_serving/ray_app.py": ONNX_SERVER.with_name("ray_app.py").read_bytes(),
}


def app_name(service_key: str) -> str:
    return f"{APP_PREFIX}{service_key}"


def route_prefix(app: str) -> str:
    return f"/{app}"


def external_id(app: str, reference: str) -> str:
    return f"{EXTERNAL_PREFIX}{app}:{reference}"


def parse_external_id(value: str) -> tuple[str, str] | None:
    """(application, reference) of a Serve replica's external id; None for a Ray job's."""
    if not value.startswith(EXTERNAL_PREFIX):
        return None
    app, _, reference = value.removeprefix(EXTERNAL_PREFIX).partition(":")
    return (app, reference) if app.startswith(APP_PREFIX) and reference else None


def package() -> tuple[str, bytes]:
    """The runner's runtime-env package: its name (content-addressed, as Ray's own) and its bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(_PACKAGE_FILES.items()):
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    data = buffer.getvalue()
    return f"_ray_pkg_{hashlib.sha1(data).hexdigest()}.zip", data


def package_path(name: str) -> str:
    return f"/api/packages/gcs/{name}"


@dataclass(frozen=True)
class Replica:
    """What the connector knows of one Serve replica of a deployment."""

    state: str


@dataclass(frozen=True)
class Application:
    name: str
    status: str
    message: str
    config: Mapping[str, Any]
    deployment_status: str = ""
    deployment_message: str = ""
    replicas: tuple[Replica, ...] = ()
    references: tuple[str, ...] = field(default_factory=tuple)

    @property
    def running(self) -> int:
        return sum(1 for replica in self.replicas if replica.state == "RUNNING")

    @property
    def deleting(self) -> bool:
        return self.status == "DELETING"

    @property
    def failed(self) -> bool:
        return self.status == "DEPLOY_FAILED" or self.deployment_status == "DEPLOY_FAILED"

    @property
    def why(self) -> str:
        text = (self.deployment_message or self.message).strip()
        # Serve's message ends with the replica's traceback: its last line says what went wrong
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return (lines[-1] if lines else "no detail")[:500]


def parse_applications(body: Mapping[str, Any]) -> dict[str, Application]:
    """``GET /api/serve/applications/``: every application, the gateway's and others'."""
    found: dict[str, Application] = {}
    applications = body.get("applications")
    if not isinstance(applications, Mapping):
        raise ValueError("the Serve status holds no applications")
    for name, details in applications.items():
        if not isinstance(details, Mapping):
            continue
        config = details.get("deployed_app_config") or {}
        deployments = details.get("deployments") or {}
        ours = deployments.get(DEPLOYMENT) if isinstance(deployments, Mapping) else None
        ours = ours if isinstance(ours, Mapping) else {}
        replicas = tuple(Replica(str(item.get("state") or "")) for item in ours.get("replicas") or () if isinstance(item, Mapping))
        found[str(name)] = Application(
            name=str(name),
            status=str(details.get("status") or ""),
            message=str(details.get("message") or ""),
            config=config if isinstance(config, Mapping) else {},
            deployment_status=str(ours.get("status") or ""),
            deployment_message=str(ours.get("message") or ""),
            replicas=replicas,
            references=references_of(config if isinstance(config, Mapping) else {}),
        )
    return found


def references_of(config: Mapping[str, Any]) -> tuple[str, ...]:
    for deployment in config.get("deployments") or ():
        if isinstance(deployment, Mapping) and deployment.get("name") == DEPLOYMENT:
            user_config = deployment.get("user_config") or {}
            listed = user_config.get(REPLICAS_KEY) if isinstance(user_config, Mapping) else None
            return tuple(str(item) for item in listed or ())
    return ()


@dataclass(frozen=True)
class ServeOptions:
    """The Serve side of a RAY center: where its HTTP proxy listens (never on the gateway's port)."""

    host: str = "127.0.0.1"
    port: int = 8270
    #: the CPUs one replica reserves; None: what its devices ask (one per cpu-core)
    replica_cpus: float | None = None


def app_config(
    app: str, model_dir: str, package_name: str, references: Sequence[str], resources: Resources, options: ServeOptions
) -> dict[str, Any]:
    actor: dict[str, Any] = {"num_cpus": options.replica_cpus if options.replica_cpus is not None else (resources.num_cpus or 0)}
    if resources.num_gpus:
        actor["num_gpus"] = resources.num_gpus
    if resources.memory_bytes:
        actor["memory"] = resources.memory_bytes
    if resources.custom:
        actor["resources"] = dict(resources.custom)
    return {
        "name": app,
        "route_prefix": route_prefix(app),
        "import_path": IMPORT_PATH,
        "runtime_env": {"working_dir": f"gcs://{package_name}"},
        "args": {"model_dir": model_dir},
        "deployments": [
            {
                "name": DEPLOYMENT,
                "num_replicas": len(references),
                "user_config": {REPLICAS_KEY: list(references)},
                "ray_actor_options": actor,
                "health_check_period_s": HEALTH_PERIOD_SECONDS,
            }
        ],
    }


def with_references(config: Mapping[str, Any], references: Sequence[str]) -> dict[str, Any]:
    """An application's config with another replica list (and count): a light update."""
    changed = dict(config)
    deployments = []
    for deployment in config.get("deployments") or ():
        deployment = dict(deployment)
        if deployment.get("name") == DEPLOYMENT:
            deployment["num_replicas"] = len(references)
            deployment["user_config"] = {REPLICAS_KEY: list(references)}
        deployments.append(deployment)
    changed["deployments"] = deployments
    return changed


def deploy_body(applications: Sequence[Mapping[str, Any]], options: ServeOptions) -> dict[str, Any]:
    return {
        "proxy_location": "HeadOnly",
        "http_options": {"host": options.host, "port": options.port},
        "applications": list(applications),
    }
