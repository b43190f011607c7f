"""One settings object, read from a TOML file and ``AICN_*`` environment variables.

With no file at all the defaults serve: SQLite in ``./aicn-data``, one LOCAL center with
the host's CPU cores, the gateway on 127.0.0.1:8000. The file is ``aicn.toml`` in the
working directory, or the path in ``AICN_CONFIG``. Environment variables win over the
file; nested values use ``__`` (``AICN_DATABASE_URL``, ``AICN_CENTERS='[...]'`` as JSON).
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from aicn.replica_settings import ReplicaSettings
from aicn.security_settings import AuthSettings, GraphSettings, HttpSettings, LimitSettings
from aicn.storage_settings import StorageSettings
from aicn.watch_settings import MetricsSettings, TelemetrySettings, WebhookSettings


class DeviceConfig(BaseModel):
    """Devices of one catalog model a center offers, and their price."""

    model_config = ConfigDict(extra="forbid")

    accelerator: str = "cpu-core"
    count: int = Field(ge=0)
    partition: str | None = None
    price_per_unit_hour: Decimal = Decimal("1.00")


class SlurmConfig(BaseModel):
    """How to reach one Slurm cluster's slurmrestd (see docs/slurm.md)."""

    model_config = ConfigDict(extra="forbid")

    url: str = "http://127.0.0.1:6820"
    user_name: str = "root"
    token: str | None = None
    token_env: str | None = Field(default=None, description="name of an environment variable holding the token")
    token_file: str | None = Field(default=None, description="a file holding the token, or KEY=VALUE lines with SLURM_JWT")
    jwt_key_file: str | None = Field(default=None, description="the cluster's jwt_hs256.key: the gateway mints short-lived tokens")
    partition: str | None = None
    output_dir: str = "/tmp/aicn-slurm"
    working_dir: str | None = None
    gres_models: dict[str, str] = Field(default_factory=dict)
    request_timeout: float = Field(default=10.0, gt=0)
    progress_interval: float = Field(default=1.0, gt=0)

    def resolved_token(self) -> str | None:
        if self.token:
            return self.token
        if self.token_env:
            return os.environ.get(self.token_env) or None
        if self.token_file:
            text = Path(self.token_file).read_text()
            for line in text.splitlines():
                key, separator, value = line.partition("=")
                if separator and key.strip() == "SLURM_JWT":
                    return value.strip()
            return text.strip() or None
        return None


class LocalConfig(BaseModel):
    """``[centers.local]``: how a LOCAL center runs its jobs."""

    model_config = ConfigDict(extra="forbid")

    #: who jobs run as (see README, "Isolation"): "auto" (the user aicn-job, created at start when missing,
    #: when the gateway runs as root; else the gateway's own user, with a warning at start), "none" (the
    #: gateway's own user: jobs can reach everything it can) or an unprivileged user of the jobs' own
    run_as: str = Field(default="auto", min_length=1)
    #: with run_as = "auto" as root: the uids (and gids of the same numbers) jobs get, one of its own per live
    #: job; no passwd entries needed (default: above systemd's container range, below 2^31)
    job_uid_range: tuple[int, int] = (1_900_000_000, 1_900_065_535)
    #: where each job gets a working directory only it can read (default: <tmp>/aicn-work-<center>)
    work_dir: Path | None = None

    @field_validator("job_uid_range")
    @classmethod
    def _an_unprivileged_range(cls, value: tuple[int, int]) -> tuple[int, int]:
        first, last = value
        if not 1000 <= first <= last < 2**31 - 1:
            raise ValueError("give [first, last] with 1000 <= first <= last < 2147483647")
        return value


class RayConfig(BaseModel):
    """How to reach one Ray cluster's Jobs REST API (the dashboard; see docs/ray.md)."""

    model_config = ConfigDict(extra="forbid")

    url: str = "http://127.0.0.1:8265"
    token: SecretStr | None = None
    token_file: str | None = Field(default=None, description="a file holding the token (RAY_AUTH_TOKEN)")
    resource_models: dict[str, str] = Field(
        default_factory=dict, description='Ray resource -> catalog model: "GPU", "accelerator_type:A100" or a custom resource such as "NPU"'
    )
    request_timeout: float = Field(default=10.0, gt=0)
    serve_host: str = Field(default="127.0.0.1", description="where Ray Serve's HTTP proxy listens (the gateway's only way in)")
    serve_port: int = Field(default=8270, gt=0, lt=65536, description="Ray Serve's HTTP proxy port; never the gateway's own (8000)")
    serve_replica_cpus: float | None = Field(
        default=None, gt=0, description="the CPUs one Serve replica reserves (default: what its devices ask, one per cpu-core)"
    )

    def resolved_token(self) -> str | None:
        if self.token is not None:
            return self.token.get_secret_value() or None
        if self.token_file:
            return Path(self.token_file).read_text().strip() or None
        return None


class ServicesConfig(BaseModel):
    """``[services]``: how inference services scale and how long requests may wait."""

    model_config = ConfigDict(extra="forbid")

    tick_seconds: float = Field(default=0.25, gt=0, description="how often the controller looks at every service")
    scale_up_after_seconds: float = Field(default=1.0, ge=0, description="load above target this long adds a replica")
    cool_down_seconds: float = Field(default=30.0, ge=0, description="quiet this long (and since the last step) removes one")
    cold_start_seconds: float = Field(default=60.0, gt=0, description="how long a request waits for a replica when none is ready")
    health_interval_seconds: float = Field(default=2.0, gt=0)
    health_failures: int = Field(default=3, ge=1, description="failed health checks in a row that replace a replica")
    startup_seconds: float = Field(default=120.0, gt=0, description="a running replica that never answers within this is replaced")
    max_payload_bytes: int = Field(default=1_048_576, ge=1)
    price_per_million_tokens: Decimal = Field(
        default=Decimal(0), ge=0, decimal_places=6, description="what a million tokens an OPENAI service reports cost (0: free)"
    )
    token_billing_seconds: float = Field(default=3600.0, gt=0, description="a service's tokens go on a bill this often, and at its end")
    #: the interpreter the built-in ONNX runner's replicas run with (default: the gateway's own). It needs
    #: onnxruntime and numpy, and isolated LOCAL jobs' users must be able to run it: checked at start
    python: Path | None = None


class PeerConfig(BaseModel):
    """``[centers.peer]``: another aicn gateway, reached over its GraphQL API with a token of an account there."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="the peer's GraphQL endpoint, e.g. http://127.0.0.1:8001/graphql")
    token: SecretStr | None = None
    token_file: str | None = Field(default=None, description="a file holding the token")
    #: added to the peer's price per standard-unit-hour (the origin's margin); 0 resells at cost
    markup: Decimal = Field(default=Decimal("0"), ge=0)
    request_timeout: float = Field(default=10.0, gt=0)
    #: how long the live link waits before it connects again after a drop
    reconnect_seconds: float = Field(default=0.5, gt=0)

    @field_validator("markup")
    @classmethod
    def _exact_markup(cls, amount: Decimal) -> Decimal:
        if amount != amount.quantize(Decimal("0.000001")):
            raise ValueError("markup must have at most 6 decimal places")
        return amount

    @model_validator(mode="after")
    def _one_token(self) -> PeerConfig:
        if self.token is None and self.token_file is None:
            raise ValueError("a peer needs token or token_file: a token of the account at the peer that the peer bills")
        return self

    def resolved_token(self) -> str:
        if self.token is not None:
            return self.token.get_secret_value()
        assert self.token_file is not None
        return Path(self.token_file).read_text().strip()


class CenterConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    kind: Literal["LOCAL", "SLURM", "RAY", "PEER"] = "LOCAL"
    display_name: str | None = None
    region: str | None = None
    devices: list[DeviceConfig] = Field(default_factory=list)
    deadline_seconds: float = Field(default=5.0, gt=0)
    poll_interval_seconds: float = Field(default=0.25, gt=0)
    probe_interval_seconds: float = Field(default=2.0, gt=0)
    failure_threshold: int = Field(default=3, ge=1)
    max_duration_minutes: float | None = Field(default=None, gt=0)
    #: the center's data root, on a filesystem its jobs and the gateway both reach: every job's
    #: AICN_INPUT_DIR and AICN_OUTPUT_DIR, and the center's dataset replicas (default: see data_root_of)
    data_root: Path | None = None
    #: bytes the center's data root may hold (None: the free space of its filesystem)
    storage_bytes: int | None = Field(default=None, ge=0)
    #: False: the center cannot read files outside its data root; a model is copied (checksum verified)
    #: into <data_root>/models before the center serves it
    reads_gateway_files: bool = True
    slurm: SlurmConfig | None = None
    local: LocalConfig | None = None
    ray: RayConfig | None = None
    peer: PeerConfig | None = None

    @model_validator(mode="after")
    def _needs_slurm_section(self) -> CenterConfig:
        if self.kind == "SLURM" and self.slurm is None:
            self.slurm = SlurmConfig()
        if self.kind == "RAY" and self.ray is None:
            self.ray = RayConfig()
        if self.kind == "PEER" and self.peer is None:
            raise ValueError(f"center {self.name}: a PEER center needs a [centers.peer] section with url and token")
        return self


def data_root_of(config: CenterConfig, data_dir: Path, isolated: bool = False) -> Path:
    """``data_root``, or ``<data_dir>/storage/<center>``. The jobs of an isolated LOCAL center run as a
    user of their own and cannot reach the data dir (it is private to the gateway), so theirs defaults
    to ``<tmp>/aicn-storage-<digest of the data dir>/<center>``: one per gateway, reachable by its jobs."""
    if config.data_root is not None:
        return config.data_root.absolute()
    if isolated:
        import hashlib
        import tempfile

        gateway = hashlib.sha256(str(data_dir.absolute()).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"aicn-storage-{gateway}" / config.name
    return (data_dir / "storage" / config.name).absolute()


def _default_centers() -> list[CenterConfig]:
    cores = os.cpu_count() or 1
    return [
        CenterConfig(
            name="local",
            display_name="This host",
            region="local",
            devices=[DeviceConfig(accelerator="cpu-core", count=cores, price_per_unit_hour=Decimal("30.00"))],
        )
    ]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AICN_", env_nested_delimiter="__", extra="forbid")

    data_dir: Path = Path("aicn-data")
    database_url: str | None = None
    database_schema: str | None = None
    bus_url: str | None = None
    #: the prefix of this deployment's Redis channels (default ``aicn:``): deployments sharing one Redis keep apart
    bus_prefix: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    currency: str = "CNY"
    quota_mode: Literal["queue", "refuse"] = "queue"
    vanished_grace_seconds: float = Field(default=30.0, gt=0, description="how long a center may not know a job before it is LOST")
    default_account_balance: Decimal = Decimal("1000.00")  # an account's prepaid balance when first billed
    billing_timezone: str = "UTC"  # bills are calendar months in this zone
    account_name: str = "default"
    #: a cap on the bandwidth of each copy of a dataset (staging, replicas); None: as fast as the disks go
    transfer_bytes_per_second: int | None = Field(default=None, gt=0)
    #: what moving 10^9 bytes of a job's inputs to a center costs; set, DATA_LOCAL weighs it against the price
    #: difference (the cheapest total of price x duration + moving wins); unset, DATA_LOCAL goes where the data is
    transfer_price_per_gb: Decimal | None = Field(default=None, ge=0, decimal_places=6)
    #: what keeping 10^9 bytes of verified dataset and model copies costs per month (0: storage is free)
    storage_price_per_gb_month: Decimal = Field(default=Decimal(0), ge=0, decimal_places=6)
    #: folders whose files may be registered as datasets by a file:// uri (besides every center's data root)
    data_import_roots: list[Path] = Field(default_factory=list)
    #: the largest file ``POST /datasets/upload`` and ``/models/upload`` accept into the artifact store (10 GiB)
    upload_max_bytes: int = Field(default=10 * 1024**3, gt=0)
    #: where the artifact store keeps uploads: ``<data_dir>/artifacts``, or an S3-compatible store
    storage: StorageSettings = Field(default_factory=StorageSettings)
    centers: list[CenterConfig] = Field(default_factory=_default_centers)
    catalog: list[dict[str, Any]] = Field(default_factory=list)
    log_level: str = "info"
    #: ``text`` lines for people, or ``json``: one object a line, each with its request id
    log_format: Literal["text", "json"] = "text"
    auth: AuthSettings = Field(default_factory=AuthSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    graph: GraphSettings = Field(default_factory=GraphSettings)
    services: ServicesConfig = Field(default_factory=ServicesConfig)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    replicas: ReplicaSettings = Field(default_factory=ReplicaSettings)
    #: ``AICN_ADMIN_TOKEN``: an admin token to accept (registered on start) instead of printing a new one
    admin_token: SecretStr | None = Field(default=None, min_length=20)

    @field_validator("centers")
    @classmethod
    def _unique_names(cls, centers: list[CenterConfig]) -> list[CenterConfig]:
        names = [center.name for center in centers]
        if len(names) != len(set(names)):
            raise ValueError("center names must be unique")
        return centers

    @model_validator(mode="after")
    def _serve_apart_from_the_gateway(self) -> Settings:
        for center in self.centers:
            if center.ray is not None and center.ray.serve_port == self.port:
                raise ValueError(f"center {center.name!r}: serve_port {self.port} is the gateway's own port; give Ray Serve another")
        return self

    @field_validator("default_account_balance")
    @classmethod
    def _exact_balance(cls, amount: Decimal) -> Decimal:
        if amount < 0 or amount != amount.quantize(Decimal("0.000001")):
            raise ValueError("default_account_balance must be at least 0, with at most 6 decimal places")
        return amount

    @field_validator("billing_timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        from zoneinfo import ZoneInfo

        ZoneInfo(zone)  # raises for a zone the system does not know
        return zone

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'aicn.db').resolve()}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = Path(os.environ.get("AICN_CONFIG", "aicn.toml"))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path.exists():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)
