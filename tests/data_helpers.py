"""Helpers for the data tests: a tree's checksum computed independently of the gateway, and the queries."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from tests.client import GraphQLClient

OUTPUTS = """query($id: ID!) { node(id: $id) { ... on Job {
  state failureReason
  outputModel { id name version uri sizeBytes checksum trainedBy { id } replicas { state uri center { name } } }
  outputDataset { id name version uri sizeBytes checksum producedBy { id } replicas { state uri center { name } } }
} } }"""


def tree_checksum(root: Path) -> tuple[int, str]:
    """(bytes, "sha256:<manifest digest>") of a directory, as the README defines it."""
    lines = []
    total = 0
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        data = path.read_bytes()
        total += len(data)
        lines.append(f"{path.relative_to(root).as_posix()}\t{len(data)}\t{hashlib.sha256(data).hexdigest()}\n")
    return total, "sha256:" + hashlib.sha256("".join(sorted(lines)).encode()).hexdigest()


def local_path(uri: str) -> Path:
    parsed = urlparse(uri)
    assert parsed.scheme == "file", uri
    return Path(unquote(parsed.path))


async def outputs_of(gql: GraphQLClient, job_id: str) -> dict[str, Any]:
    return (await gql.execute(OUTPUTS, {"id": job_id}))["node"]


REGISTER = """mutation($input: RegisterDatasetInput!) {
  registerDataset(input: $input) { dataset { id name sizeBytes checksum replicas { state center { name } } } userErrors { code field message } }
}"""
REPLICATE = """mutation($input: ReplicateDatasetInput!) {
  replicateDataset(input: $input) { transfer { id state bytesTotal } userErrors { code field message } }
}"""
TRANSFER = """query($id: ID!) { node(id: $id) { ... on Transfer {
  state bytesDone bytesTotal checksum attempts failureCode failureReason destinationUri center { name } dataset { name }
} } }"""
STAGING_EVENTS = """query($id: ID!) { node(id: $id) { ... on Job {
  state failureReason
  events(first: 100) { edges { node { kind state message staging { datasetName state bytesDone bytesTotal } } } }
} } }"""


def make_tree(root: Path, files: dict[str, bytes]) -> Path:
    for relative, data in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    return root


async def register(gql: GraphQLClient, **fields: Any) -> dict[str, Any]:
    payload = (await gql.execute(REGISTER, {"input": fields}))["registerDataset"]
    assert payload["userErrors"] == [], payload["userErrors"]
    return payload["dataset"]


async def replicate(gql: GraphQLClient, dataset_id: str, center_id: str) -> dict[str, Any]:
    return (await gql.execute(REPLICATE, {"input": {"datasetId": dataset_id, "centerId": center_id}}))["replicateDataset"]


async def transfer_of(gql: GraphQLClient, transfer_id: str) -> dict[str, Any]:
    return (await gql.execute(TRANSFER, {"id": transfer_id}))["node"]


def file_at(gateway: Any, center_name: str, name: str, content: bytes = b"data") -> str:
    """A file written into a center's data root (a place the gateway may read), as a file:// uri."""
    center = next(center for center in gateway.runtime.registry.all() if center.name == center_name)
    assert center.data_root is not None
    path = center.data_root / "imports" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return str(path.as_uri())
