"""`aicn operations push FILE` and `aicn operations list`: the safelist of persisted operations.

Each operation of the file (with the fragments it uses) becomes one text, checked against
the schema the settings serve, its cost measured ahead by the gate's own cost model, and
stored by the SHA-256 of the text: the hash clients send as
``extensions.persistedQuery.sha256Hash``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from graphql import DocumentNode, FragmentDefinitionNode, FragmentSpreadNode, OperationDefinitionNode, parse, print_ast, validate, visit
from graphql.language import Visitor

from aicn.settings import Settings
from resolvers.operations.service import PersistedOperations
from store.db import Database


def register(commands: Any) -> None:
    operations = commands.add_parser("operations", help="the safelist of persisted operations")
    operation_commands = operations.add_subparsers(dest="operations_command", required=True)
    push = operation_commands.add_parser("push", help="register every operation of a .graphql file (safelisted)")
    push.add_argument("file", type=Path, help="a .graphql file of named operations (and the fragments they use)")
    push.set_defaults(run=lambda args: asyncio.run(_push(args.file)))
    listing = operation_commands.add_parser("list", help="list the persisted operations")
    listing.set_defaults(run=lambda _args: asyncio.run(_list()))


class _Spreads(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def enter_fragment_spread(self, node: FragmentSpreadNode, *_args: Any) -> None:
        self.names.add(node.name.value)


def split_operations(document: DocumentNode) -> list[tuple[OperationDefinitionNode, DocumentNode]]:
    """Each operation alone, with the fragments it reaches."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    split: list[tuple[OperationDefinitionNode, DocumentNode]] = []
    for operation in (d for d in document.definitions if isinstance(d, OperationDefinitionNode)):
        wanted: list[str] = []
        pending: list[Any] = [operation]
        while pending:
            spreads = _Spreads()
            visit(pending.pop(), spreads)
            for name in sorted(spreads.names - set(wanted)):
                if name in fragments:
                    wanted.append(name)
                    pending.append(fragments[name])
        split.append((operation, DocumentNode(definitions=(operation, *(fragments[name] for name in wanted)))))
    return split


async def _push(file: Path) -> int:
    from graph.gate.cost import measure
    from graph.http.app import served_schema

    settings = Settings()
    schema = served_schema(settings.graph.federation)._schema
    document = parse(file.read_text())
    prepared: list[tuple[str, str | None, int]] = []
    for operation, alone in split_operations(document):
        name = operation.name.value if operation.name else None
        errors = validate(schema, alone)
        if errors:
            print(f"aicn: {name or 'an anonymous operation'}: {errors[0].message}", file=sys.stderr)
            return 1
        prepared.append((print_ast(alone), name, measure(schema, alone, operation, None).cost))
    db = Database(settings.resolved_database_url, schema=settings.database_schema)
    try:
        await db.migrate()
        store = PersistedOperations(db)
        for text, name, cost in prepared:
            saved = await store.register(text, name=name, cost=cost, safelisted=True)
            print(f"{saved.sha256}  {name or '-'}  cost {cost}")
    finally:
        await db.dispose()
    print(f"aicn: {len(prepared)} operation(s) safelisted")
    return 0


async def _list() -> int:
    settings = Settings()
    db = Database(settings.resolved_database_url, schema=settings.database_schema)
    try:
        await db.migrate()
        for operation in await PersistedOperations(db).all():
            kind = "safelisted" if operation.safelisted else "automatic"
            print(f"{operation.sha256}  {operation.name or '-'}  {kind}  cost {operation.cost if operation.cost is not None else '?'}")
    finally:
        await db.dispose()
    return 0
