"""Settings of authentication, request limits and the HTTP face (the ``[auth]``,
``[limits]`` and ``[http]`` tables of ``aicn.toml``; ``AICN_AUTH__MODE=dev`` and the like)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class AuthSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: ``required``: every operation but schema introspection needs a token.
    #: ``dev``: requests without a token from this host act as the default account
    #: (read and submit); anything from elsewhere still needs a token.
    mode: Literal["required", "dev"] = "required"
    #: tokens kept in each gateway's cache (0: read every request's token from the database)
    token_cache_size: int = Field(default=10_000, ge=0)
    #: how long a cached token is trusted before it is read again. Revocations through the
    #: gateway (GraphQL, or `aicn tokens revoke` with `AICN_BUS_URL`) reach every cache at
    #: once; this bounds only a change made behind the gateway's back (a shell revocation of a
    #: gateway without Redis, an edited row)
    token_cache_seconds: float = Field(default=10.0, ge=0)


class LimitSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_depth: int = Field(default=12, ge=1)
    max_aliases: int = Field(default=30, ge=0)
    #: graphql-core parses about 4 µs per token and character runs: these keep a parse under 10 ms
    max_tokens: int = Field(default=2_000, ge=10)
    max_query_length: int = Field(default=32_768, ge=100)
    max_root_fields: int = Field(default=20, ge=1)
    #: the most one operation may cost (graph/gate/cost.py: about a point per object it may
    #: return, connections by their `first`): the README's largest example, a year of bills
    #: with 100 lines each, costs 4,838
    max_cost: int = Field(default=10_000, ge=1)
    #: each token's bucket: this many points, refilled at `restore_rate` points per second;
    #: a dashboard polling centers, capacity and a page of jobs every second costs ~130 a second
    bucket_size: int = Field(default=20_000, ge=1)
    restore_rate: float = Field(default=200.0, gt=0)
    max_body_bytes: int = Field(default=1_048_576, ge=1_024)
    max_subscriptions_per_connection: int = Field(default=20, ge=1)
    #: the lines a `jobLogs` subscription sends a second at most; beyond, lines are dropped and counted
    log_lines_per_second: int = Field(default=200, ge=1, le=100_000)
    introspection: bool = True
    #: `__schema` / `__type` fields in one operation (each walks the whole schema; GraphiQL asks one)
    max_introspection_fields: int = Field(default=2, ge=1)

    @model_validator(mode="after")
    def _cost_fits_the_bucket(self) -> LimitSettings:
        if self.max_cost > self.bucket_size:
            raise ValueError("limits.max_cost must not exceed limits.bucket_size, or such an operation could never run")
        return self


class HttpSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: origins allowed to call the gateway from a browser (CORS and WebSocket); empty: none
    cors_origins: list[str] = Field(default_factory=list)


class GraphSettings(BaseModel):
    #: serve the Apollo Federation v2 subgraph schema (`_service`, `_entities`, `@key`, `@cost`)
    #: instead of the plain one (``[graph] federation = true``, ``AICN_GRAPH__FEDERATION=true``)
    federation: bool = False
    #: persisted operations: ``automatic`` (APQ: clients register texts by their SHA-256),
    #: ``safelist`` (only texts an admin pushed with `aicn operations push` run), ``off``
    persisted_queries: Literal["automatic", "safelist", "off"] = "automatic"
    #: seconds a CDN or browser may keep a GET query's answer (`Cache-Control: max-age`)
    get_max_age: int = Field(default=5, ge=0)
