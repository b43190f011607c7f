"""A small schema of the gateway's shape (connections, nodes, a costly field), so that the
cost rules are tested on their own, apart from the gateway's real schema."""

from __future__ import annotations

from typing import Any

from graphql import DocumentNode, GraphQLSchema, build_schema, get_operation_ast, parse

from graph.gate.cost import QueryShape, measure

SDL = """
type Query {
  viewer: Account
  jobs(first: Int, after: String): JobConnection!
  nodes(ids: [ID!]!): [Node]!
  recent(first: Int): [Job!]!
  capacity: [Unit!]!
  acceleratorCatalog: [Unit!]!
}
type Mutation {
  cancelJob(id: ID!): Job
  submitJob(name: String): Job
}
interface Node { id: ID! }
type Account implements Node { id: ID! name: String jobs(first: Int): JobConnection! }
type JobConnection { edges: [JobEdge!]! pageInfo: PageInfo! totalCount: Int! }
type JobEdge { node: Job! cursor: String! }
type PageInfo { hasNextPage: Boolean! endCursor: String }
type Job implements Node { id: ID! name: String state: State owner: Account logs(tailLines: Int): String }
type Unit { model: String devices: Int }
enum State { QUEUED RUNNING }
"""

SCHEMA: GraphQLSchema = build_schema(SDL)


def document_of(query: str) -> DocumentNode:
    return parse(query)


def shape(query: str, variables: dict[str, Any] | None = None, operation: str | None = None) -> QueryShape:
    document = parse(query)
    chosen = get_operation_ast(document, operation)
    assert chosen is not None
    return measure(SCHEMA, document, chosen, variables)


def cost(query: str, variables: dict[str, Any] | None = None) -> int:
    return shape(query, variables).cost
