"""What the gate learns of a parsed document, kept for the next request that sends the same text.

strawberry's parser cache (graph/schema.py ``CachedParse``) hands every request with the same
text the same ``DocumentNode``, so the shape (without variables) and the scopes its fields need
are worked out once per document, not once per request. The entry keeps the document itself,
so an id is never mistaken for that of a document since freed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import DocumentNode, GraphQLSchema, OperationDefinitionNode

from graph.core.permissions import required_scopes
from graph.gate.cost import QueryShape, cost_key, measure

#: as many documents as the parser cache keeps
SIZE = 1024
#: measures kept per document for different page sizes (a client paging through sends a few)
SHAPES_PER_DOCUMENT = 16


@dataclass
class _Learned:
    """What is known of one operation of one document under one schema; filled in as it is asked for."""

    document: DocumentNode
    schema: GraphQLSchema
    shape: QueryShape | None = None
    scopes: dict[str, str] | None = None
    #: measures with variables, by what of them the measure reads (``cost_key``)
    shapes: dict[tuple[Any, ...], QueryShape] = field(default_factory=dict)


class DocumentMemo:
    def __init__(self, size: int = SIZE) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[int, int], _Learned] = OrderedDict()

    def shape(
        self, schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode, variables: Mapping[str, Any] | None
    ) -> QueryShape:
        """``measure``'s answer, kept for the next request of the same document whose variables give the
        measure the same page sizes and list lengths (a ``submitJob``'s ``$input`` gives it none)."""
        learned = self._learned(schema, document, operation)
        if learned.shape is None:
            learned.shape = measure(schema, document, operation, variables)
            learned.shapes[cost_key(learned.shape, variables)] = learned.shape
            return learned.shape
        key = cost_key(learned.shape, variables)  # which variables it reads depends on the document only
        shape = learned.shapes.get(key)
        if shape is None:
            shape = measure(schema, document, operation, variables)
            if len(learned.shapes) >= SHAPES_PER_DOCUMENT:
                learned.shapes.clear()
            learned.shapes[key] = shape
        return shape

    def scopes(self, schema: Any, document: DocumentNode, operation: OperationDefinitionNode) -> Mapping[str, str]:
        """``required_scopes``' answer (variables do not change which fields are read)."""
        learned = self._learned(schema._schema, document, operation)
        if learned.scopes is None:
            learned.scopes = required_scopes(schema, document, operation)
        return learned.scopes

    def _learned(self, schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode) -> _Learned:
        """The entry for this operation, kept as the most recently used; a new one when the document at
        that id (or the schema) is not the one the entry was made for."""
        key = (id(document), id(operation))
        learned = self._entries.get(key)
        if learned is None or learned.document is not document or learned.schema is not schema:
            learned = self._entries[key] = _Learned(document, schema)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return learned
