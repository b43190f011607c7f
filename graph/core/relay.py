"""Relay building blocks: the Node interface, PageInfo, and generic cursor connections."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import strawberry

from resolvers.common.ids import encode_cursor
from resolvers.common.reading import Page

NodeT = TypeVar("NodeT")
RowT = TypeVar("RowT")


@strawberry.interface(description="An object with a global, opaque id; fetch any of them with `node(id:)`.")
class Node:
    id: strawberry.ID


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[NodeT]):
    cursor: str
    node: NodeT


@strawberry.type(description="A page of a list, Relay style; `first` is at most 100.")
class Connection(Generic[NodeT]):
    edges: list[Edge[NodeT]]
    page_info: PageInfo
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="How many items the whole list has (counted by the database).")
    async def total_count(self) -> int:
        return await self.count()


def connection_from_page(
    page: Page[RowT],
    convert: Callable[[RowT], NodeT],
    key: Callable[[RowT], int],
    count: Callable[[], Awaitable[int]],
    cursor: Callable[[RowT], str] | None = None,
) -> Connection[NodeT]:
    """``cursor`` makes an edge's cursor when a row's key is more than its id (a sorted list)."""
    make_cursor = cursor or (lambda row: encode_cursor(key(row)))
    edges = [Edge(cursor=make_cursor(row), node=convert(row)) for row in page.rows]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_next,
            has_previous_page=page.has_previous,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        count=count,
    )


def connection_from_list(items: Sequence[NodeT], first: int, after: int | None) -> Connection[NodeT]:
    """A page over a list that is already in memory (positions as cursors)."""
    start = 0 if after is None else after + 1
    window = list(items[start : start + first])
    edges = [Edge(cursor=encode_cursor(start + index), node=item) for index, item in enumerate(window)]
    total = len(items)

    async def count() -> int:
        return total

    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=start + first < total,
            has_previous_page=start > 0,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        count=count,
    )
