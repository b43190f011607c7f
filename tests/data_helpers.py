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
