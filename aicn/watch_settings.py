"""Settings of webhooks, metrics and traces (the ``[webhooks]``, ``[metrics]`` and ``[telemetry]``
tables of ``aicn.toml``; ``AICN_WEBHOOKS__ALLOWED_NETWORKS='["127.0.0.0/8"]'`` and the like)."""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class WebhookSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: internal networks webhooks may reach anyway (loopback, private, link-local are refused
    #: otherwise): ``["127.0.0.0/8", "::1/128"]`` for a receiver on this host
    allowed_networks: list[str] = Field(default_factory=list)
    #: plain ``http://`` URLs, to loopback addresses only (a test receiver without TLS)
    allow_http_on_loopback: bool = False
    max_attempts: int = Field(default=12, ge=1, le=100)
    #: the first retry waits about this long, each next one twice as long, up to `retry_max_seconds`
    retry_base_seconds: float = Field(default=2.0, gt=0)
    retry_max_seconds: float = Field(default=3600.0, gt=0)
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    #: the safety net: how often the deliverer looks at the outbox with no news (new deliveries wake
    #: it over the bus, and it sleeps until the next attempt falls due)
    poll_interval_seconds: float = Field(default=10.0, gt=0)

    @field_validator("allowed_networks")
    @classmethod
    def _networks(cls, networks: list[str]) -> list[str]:
        for network in networks:
            ipaddress.ip_network(network, strict=False)  # raises ValueError naming the bad one
        return networks


class MetricsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    #: when set, `/metrics` asks every scraper for ``Authorization: Bearer <token>`` (not an API token:
    #: a scraper's credential, in Prometheus' `authorization.credentials_file`)
    token: SecretStr | None = Field(default=None, min_length=16)
    #: without a token `/metrics` answers loopback callers only; true answers everyone
    public: bool = False


class TelemetrySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: an OTLP/HTTP traces endpoint (``http://collector:4318/v1/traces``); needs the ``aicn[otel]`` extra
    otlp_endpoint: str | None = None
    service_name: str = "aicn"
