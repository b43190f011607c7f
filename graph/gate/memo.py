"""What the gate learns of a parsed document, kept for the next request that sends the same text.

strawberry's parser cache (graph/schema.py ``CachedParse``) hands every request with the same
text the same ``DocumentNode``, so the shape (without variables) and the scopes its fields need
are worked out once per document, not once per request. The entry keeps the document itself,
so an id is never mistaken for that of a document since freed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from graphql import DocumentNode, GraphQLSchema, OperationDefinitionNode

from graph.core.permissions import required_scopes
from graph.gate.cost import QueryShape, measure

#: as many documents as the parser cache keeps
SIZE = 1024


class DocumentMemo:
    def __init__(self, size: int = SIZE) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[int, int], tuple[DocumentNode, GraphQLSchema, QueryShape | None, dict[str, str] | None]] = (
            OrderedDict()
        )

    def shape(
        self, schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode, variables: Mapping[str, Any] | None
    ) -> QueryShape:
        """``measure``'s answer; kept only for an operation without variables (they may change its cost)."""
        if variables:
            return measure(schema, document, operation, variables)
        key, entry = self._entry(schema, document, operation)
        if entry[2] is None:
            entry = (entry[0], entry[1], measure(schema, document, operation, variables), entry[3])
            self._store(key, entry)
        assert entry[2] is not None
        return entry[2]

    def scopes(self, schema: Any, document: DocumentNode, operation: OperationDefinitionNode) -> Mapping[str, str]:
        """``required_scopes``' answer (variables do not change which fields are read)."""
        key, entry = self._entry(schema._schema, document, operation)
        if entry[3] is None:
            entry = (entry[0], entry[1], entry[2], required_scopes(schema, document, operation))
            self._store(key, entry)
        assert entry[3] is not None
        return entry[3]

    def _entry(
        self, schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode
    ) -> tuple[tuple[int, int], tuple[DocumentNode, GraphQLSchema, QueryShape | None, dict[str, str] | None]]:
        key = (id(document), id(operation))
        entry = self._entries.get(key)
        if entry is None or entry[0] is not document or entry[1] is not schema:
            return key, (document, schema, None, None)
        self._entries.move_to_end(key)
        return key, entry

    def _store(self, key: tuple[int, int], entry: tuple[DocumentNode, GraphQLSchema, QueryShape | None, dict[str, str] | None]) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
