"""Networks of real aicn gateways for PEER tests: each a separate `aicn serve` process on loopback,
with its own database and its own LOCAL center, linked by PEER centers with tokens of accounts
made at the peer (never an admin token: the origin must see only its own account there)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tests.served_gateway import ServedGateway, write_config

CREATE_ACCOUNT = "mutation($input: CreateAccountInput!) { createAccount(input: $input) { account { id name } userErrors { code } } }"
CREATE_TOKEN = """
mutation($input: CreateApiTokenInput!) {
  createApiToken(input: $input) { secret token { id } userErrors { code message } }
}
"""


@dataclass(frozen=True)
class PeerLinkSpec:
    """A PEER center of one gateway: its name, the peer's URL, a token of an account there."""

    name: str
    url: str
    token: str
    markup: str = "0"
    token_id: str = ""
    #: the PEER center's poll interval: the fallback beside the live link
    poll_seconds: float = 0.05


@dataclass
class NetworkGateway:
    name: str
    served: ServedGateway
    peers: list[PeerLinkSpec] = field(default_factory=list)
    database_url: str = ""
    schema: str | None = None
    price: str = "10.00"
    grace_seconds: float = 30.0

    @property
    def graphql_url(self) -> str:
        return f"{self.served.url}/graphql"


def gateway_config(
    directory: Path,
    database_url: str,
    schema: str | None,
    *,
    price: str,
    peers: list[PeerLinkSpec] = (),  # type: ignore[assignment]
    grace_seconds: float = 30.0,
    port: int | None = None,
    extra_centers: str = "",
    local_extra: str = "",
) -> Path:
    """A served gateway's config: write_config's LOCAL center (2 cores at ``price``), then the PEER centers."""
    directory.mkdir(parents=True, exist_ok=True)
    path = write_config(directory, database_url, schema, price=price)
    text = path.read_text()
    if port is not None:
        text = "\n".join(f"port = {port}" if line.startswith("port =") else line for line in text.splitlines()) + "\n"
    head, _, centers = text.partition("[[centers]]")
    lines = [head + f"vanished_grace_seconds = {grace_seconds}\n\n[[centers]]" + centers.rstrip("\n") + local_extra.rstrip("\n")]
    for peer in peers:
        lines += [
            "",
            "[[centers]]",
            f'name = "{peer.name}"',
            'kind = "PEER"',
            f'display_name = "Peer {peer.name}"',
            f"poll_interval_seconds = {peer.poll_seconds}",
            "probe_interval_seconds = 0.5",
            "deadline_seconds = 5",
            "[centers.peer]",
            f'url = "{peer.url}"',
            f'token = "{peer.token}"',
            f'markup = "{peer.markup}"',
            "reconnect_seconds = 0.2",
        ]
    path.write_text("\n".join(lines) + "\n" + extra_centers)
    return path


async def account_token(peer: ServedGateway, account_name: str) -> tuple[str, str]:
    """(secret, token id) of a new READ+SUBMIT token of a new account at ``peer``: whom it bills."""
    made = (await peer.client.execute(CREATE_ACCOUNT, {"input": {"name": account_name}}))["createAccount"]
    assert not made["userErrors"], made
    answer = await peer.client.execute(
        CREATE_TOKEN, {"input": {"accountId": made["account"]["id"], "name": "peer link", "scopes": ["READ", "SUBMIT"]}}
    )
    created = answer["createApiToken"]
    assert not created["userErrors"], created
    return created["secret"], created["token"]["id"]


async def start_gateway(
    directory: Path,
    name: str,
    database_url: str,
    schema: str | None,
    *,
    price: str,
    peers: list[NetworkGateway] = (),  # type: ignore[assignment]
    markup: str = "0",
    grace_seconds: float = 30.0,
    extra_centers: str = "",
    local_extra: str = "",
    peer_poll_seconds: float = 0.05,
) -> NetworkGateway:
    """Start gateway ``name`` with a PEER center for each of ``peers`` (already running)."""
    links: list[PeerLinkSpec] = []
    for peer in peers:
        secret, token_id = await account_token(peer.served, f"peer-{name}")
        links.append(PeerLinkSpec(f"peer-{peer.name}", peer.graphql_url, secret, markup, token_id, peer_poll_seconds))
    config = gateway_config(
        directory / name,
        database_url,
        schema,
        price=price,
        peers=links,
        grace_seconds=grace_seconds,
        extra_centers=extra_centers,
        local_extra=local_extra,
    )
    served = ServedGateway(config)
    await served.start()
    return NetworkGateway(name, served, links, database_url, schema, price, grace_seconds)


async def relink(gateway: NetworkGateway, peers: list[NetworkGateway], markup: str = "0") -> None:
    """Restart ``gateway`` (same port, same data) with a PEER center for each of ``peers``."""
    for peer in peers:
        secret, token_id = await account_token(peer.served, f"peer-{gateway.name}")
        gateway.peers.append(PeerLinkSpec(f"peer-{peer.name}", peer.graphql_url, secret, markup, token_id))
    await gateway.served.stop()
    gateway_config(
        gateway.served.config.parent,
        gateway.database_url,
        gateway.schema,
        price=gateway.price,
        peers=gateway.peers,
        grace_seconds=gateway.grace_seconds,
        port=gateway.served.port,
    )
    await gateway.served.start()
