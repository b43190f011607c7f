"""Group streams for subscriptions that follow many entities at once (`jobUpdates`): graph/core/fanout.py
with a position per entity instead of one sequence number.

A `jobUpdates` subscriber follows every job its filter matches and gets a job's row each time
the job changes; there is no one sequence over all of them, but each row carries its job's
latest seq. A stream (resolvers/jobs/streams.py's ``UpdatesStream``) keeps where it stands as
``positions`` (job id -> the newest seq it has read, sent or passed over) and never sends a row
at or behind its position. Subscribers with the same operation, variables and viewer
(graph/core/sharing.py's group key) and the same filter (the ``entity``: the filter and the
viewer's scope decide which rows a stream reads, so members of one group could each read every
row the group sends) share one stream once they have caught up.

A subscriber starts on its own stream (its own opening: ``snapshot``, ``since``), through
strawberry. After each row it sends, it joins its group when its stream has nothing left to
hand out (no news waiting, no progress deferred, no rows of a batch left) and the group has no
row the subscriber lacks that no news will bring again (a row the group read ahead of its news;
see ``UpdatesStream.unheard``). As a member it keeps its own positions: the group hands it a row
only when the row is newer than what it has. When the group's stream ends early (an execution
with errors, a failure), the member goes back to a stream of its own that resumes from its
positions and from shortly before it joined (``since``), so it loses nothing.

The group's stream goes on at its founder's pace (progress at most once per interval per job);
a later member may get one progress row of a job sooner than that after its own stream's last.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar, cast

from graph.core.fanout import FanoutGroups, Group, Member, Seat, current_seat

T = TypeVar("T")

#: how far before its joining a member that goes back to a stream of its own resumes (clocks, commit order)
RESUME_MARGIN = timedelta(seconds=2)


class KeyedRecord(Protocol):
    @property
    def key(self) -> Hashable: ...
    @property
    def seq(self) -> int: ...
    @property
    def terminal(self) -> bool: ...


class KeyedStream(Protocol):
    positions: dict[Any, int]

    def records(self, idle: bool = False) -> AsyncGenerator[Any, None]: ...
    def settled(self) -> bool: ...
    def unheard(self) -> dict[Any, int]: ...
    def take_over(self, other: Any) -> None: ...
    def close(self) -> None: ...


#: a subscriber's stream: from ``positions`` (None: the subscriber's own opening) and ``since``
OpenStream = Callable[[dict[Any, int] | None, datetime | None], KeyedStream]


@dataclass(eq=False)
class KeyedMember(Member):
    positions: dict[Any, int] = field(default_factory=dict)
    joined: datetime = field(default_factory=lambda: datetime.now(UTC))

    def offer_keyed(self, record: KeyedRecord, head: str) -> int:
        if record.seq <= self.positions.get(record.key, 0):
            return 0
        self.positions[record.key] = record.seq
        busy = self.seat.sink.runs(self.seat.operation) and self.seat.sink.send_frame(self.prefix + head + self.tail)
        return 2 if busy else 1


class KeyedGroup(Group):
    """The one stream of a group of members following the same entities."""

    def __init__(self, groups: FanoutGroups, key: Hashable, executor: Any, source: KeyedStream, wrap: Callable[[Any], Any]) -> None:
        self.source = source
        super().__init__(groups, key, executor, lambda _last: source.records(), wrap, 0)

    def offer(self, member: Member, record: Any, head: str) -> int:
        return cast(KeyedMember, member).offer_keyed(record, head)

    def join_keyed(self, seat: Seat, own: KeyedStream) -> KeyedMember | None:
        """A member from where ``own`` stands, or None when it cannot take over without a loss yet."""
        if self.task.done() or not own.settled():
            return None
        mine = own.positions
        if any(mine.get(key, 0) < seq for key, seq in self.source.unheard().items()):
            return None
        member = KeyedMember(seat, 0, self, positions=dict(mine))
        self.members[id(member)] = member
        return member

    def close(self) -> None:
        super().close()
        self.source.close()  # also when its task never started


def join_keyed(
    groups: FanoutGroups, seat: Seat, entity: Hashable, own: KeyedStream, open_stream: OpenStream, wrap: Callable[[Any], Any]
) -> KeyedMember | None:
    if seat.template is None or not seat.plain or not own.settled():
        return None
    share_key, executor = seat.template
    key = (share_key, entity)
    group = groups.groups.get(key)
    if not isinstance(group, KeyedGroup) or group.task.done():
        source = open_stream({}, None)
        source.take_over(own)
        group = KeyedGroup(groups, key, executor, source, wrap)
        groups.groups[key] = group
    return group.join_keyed(seat, own)


async def follow_keyed(context: Any, entity: Hashable, open_stream: OpenStream, wrap: Callable[[Any], T]) -> AsyncIterator[T]:
    """A subscriber's rows of ``entity``: on its own stream until it can join its group's (see above)."""
    seat = current_seat.get()
    groups: FanoutGroups | None = getattr(context.services, "fanout", None)
    own = open_stream(None, None)
    while True:
        member: KeyedMember | None = None
        records = own.records(idle=True)
        try:
            async for record in records:
                if record is not None:  # None: news that brought no row; it may join now
                    context.refresh_loaders()  # a row's fields are read as of the row
                    yield wrap(record)
                if seat is not None and groups is not None:
                    member = join_keyed(groups, seat, entity, own, open_stream, wrap)
                    if member is not None:
                        break
        finally:
            await records.aclose()
            own.close()
        if member is None:
            return
        try:
            ended = await member.done
        finally:
            member.leave()
        if ended:
            return
        member.seat.template = None  # it joins again only after strawberry has run a row for it again
        own = open_stream(member.positions, member.joined - RESUME_MARGIN)
