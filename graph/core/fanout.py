"""One stream per group of live subscribers: each event executed and encoded once, its bytes written to every socket.

Subscribers that send the same operation with the same variables (but ``after``) as the same
viewer (graph/core/sharing.py's group key) and follow the same entity get the same `next`
payload for every event. Each starts on its own stream, through strawberry: its own tenant
checks when it subscribes, its own replay from its own ``after``. Once it has caught up (after
each event it sends, it looks for its group's stream at or behind its position), it joins the
group: it leaves its own bus subscription, and from then on the group's one stream follows the
entity, executes each event once, makes the frame's text once (``{"id":`` + the subscriber's
own id + the event's data, the same for all + the end of the subscriber's own frames: its
operation's cost report, which the gate fixes when it admits the operation) and hands it to every member's outbox (graph/http/ws.py:
its queue limit, its 4413 close). Strawberry's per-subscriber machinery does nothing for the
member until the stream ends, when the member's operation completes as before.

Gap-free: a member keeps its position (the last seq it was sent). The group sends it an event
only when the event is the next one it needs (``seq == last + 1``); one it has already had is
skipped, and a gap (which the group's own gap-free stream does not make) or an event whose
execution reports errors (those go through strawberry's error shaping) sends the member back
to a stream of its own from its position: it replays from there and may join again.

A member closed for any reason (the client's `complete`, a revoked token, a slow consumer's
close) leaves the group when its operation's task ends; the last member to leave stops the
group's stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from graphql import ExecutionResult

from resolvers.common import metrics
from resolvers.common.streams import SequencedRecord

log = logging.getLogger(__name__)


R = TypeVar("R", bound=SequencedRecord)
T = TypeVar("T")


@contextlib.asynccontextmanager
async def _closing(stream: AsyncIterator[R]) -> AsyncIterator[AsyncIterator[R]]:
    """The stream, closed on the way out (its bus subscription ends there, not when it is collected)."""
    try:
        yield stream
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()


class FrameSink(Protocol):
    """A connection that takes a `next` frame's finished text (graph/http/ws.py)."""

    def send_frame(self, text: str) -> bool:
        """Queue the frame; True when the connection's outbox is past half its limit (a burst: let the writers run)."""
        ...

    def runs(self, operation: Any) -> bool: ...


@dataclass(eq=False)
class Seat:
    """One subscription operation on a connection, as its resolver sees it."""

    sink: FrameSink
    operation: Any
    operation_id: str
    #: the group key and the executor of the last event strawberry executed for it (graph/core/sharing.py)
    template: tuple[Hashable, Any] | None = None
    #: its last `next` frame had no errors: the group's frames are what it would get
    plain: bool = False
    #: the end of its frames after the data: its payload's other members (the gate's cost report,
    #: fixed when the operation was admitted) and the closing braces
    tail: str = "}}"


#: the operation whose task runs now (set by the WebSocket handler for each operation's task)
current_seat: contextvars.ContextVar[Seat | None] = contextvars.ContextVar("aicn_fanout_seat", default=None)


@dataclass(eq=False)
class Member:
    seat: Seat
    last: int
    group: Group
    prefix: str = ""
    tail: str = "}}"
    done: asyncio.Future[bool] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def __post_init__(self) -> None:
        self.prefix = '{"id":' + json.dumps(self.seat.operation_id)
        self.tail = self.seat.tail

    def offer(self, seq: int, head: str, terminal: bool) -> int:
        """Send the event if it is the next one this member needs: 0 when not, 1 when sent, 2 when
        sent to an outbox past half its limit."""
        if seq <= self.last:
            return 0
        if seq != self.last + 1:
            self.finish(ended=False)
            return 0
        self.last = seq
        busy = self.seat.sink.runs(self.seat.operation) and self.seat.sink.send_frame(self.prefix + head + self.tail)
        if terminal:
            self.finish(ended=True)
        return 2 if busy else 1

    def finish(self, ended: bool) -> None:
        """Out of the group: ``ended``, the stream has ended; otherwise, the member goes on by itself."""
        self.group.members.pop(id(self), None)
        if not self.done.done():
            self.done.set_result(ended)

    def leave(self) -> None:
        self.finish(ended=False)
        self.group.forget_if_empty()


class Group:
    """The one stream of a group of members following one entity."""

    def __init__(
        self,
        groups: FanoutGroups,
        key: Hashable,
        executor: Any,
        stream: Callable[[int], AsyncIterator[Any]],
        wrap: Callable[[Any], Any],
        last: int,
    ) -> None:
        self.groups, self.key, self.executor = groups, key, executor
        self.stream, self.wrap = stream, wrap
        #: the last seq this group has sent (or skipped) for its members
        self.last = last
        self.members: dict[int, Member] = {}
        self.task = asyncio.create_task(self._run(), name="fanout-group", context=contextvars.Context())

    def join(self, seat: Seat, last: int) -> Member | None:
        """A member at ``last``, or None when the group is past it (the caller goes on by itself a little longer)."""
        if self.last > last or self.task.done():
            return None
        member = Member(seat, last, self)
        self.members[id(member)] = member
        return member

    def forget_if_empty(self) -> None:
        if not self.members:
            self.close()

    def close(self) -> None:
        if self.groups.groups.get(self.key) is self:
            del self.groups.groups[self.key]
        if not self.task.done():
            self.task.cancel()

    async def _run(self) -> None:
        try:
            async with _closing(self.stream(self.last)) as records:
                async for record in records:
                    result = await self._execute(record)
                    if result is None:
                        return
                    head = ',"type":"next","payload":{"data":' + result
                    self.last = record.seq
                    sent = busy = 0
                    for member in list(self.members.values()):
                        outcome = self.offer(member, record, head)
                        sent += outcome > 0
                        busy += outcome > 1
                    if sent:
                        metrics.subscription_events.inc(sent)
                        metrics.subscription_group_frames.inc(sent)
                        metrics.subscription_shared.inc(sent - 1)
                    if busy:
                        await asyncio.sleep(0)  # a burst (a replay from the log): let the writers catch up before more
                    if record.terminal or not self.members:
                        return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("a subscription group's stream failed; its members go on by themselves", exc_info=True)
        finally:
            self.close()
            for member in list(self.members.values()):
                member.finish(ended=False)

    def offer(self, member: Member, record: Any, head: str) -> int:
        """Hand the event's frame to one member (graph/core/fanout_keyed.py: by a position per entity)."""
        return member.offer(record.seq, head, record.terminal)

    async def _execute(self, record: Any) -> str | None:
        """The event's ``data`` as JSON text, made once; None when the result has errors."""
        event = self.wrap(record)
        context = self.executor.context_value
        context.refresh_loaders()  # the event's fields are read as of the event
        outcome: Any = self.executor.build_per_event_executor(event).execute_operation(False)
        if not isinstance(outcome, ExecutionResult):
            outcome = await outcome
        result: ExecutionResult = outcome
        if result.errors or result.data is None:
            return None
        shared = context.services.shared_results
        shared.remember_text(result)
        text: str | None = shared.data_text(result.data)
        return text if text is not None else json.dumps(result.data, separators=(",", ":"))


class FanoutGroups:
    """The groups of one gateway, by (sharing group key, entity)."""

    def __init__(self) -> None:
        self.groups: dict[Hashable, Group] = {}

    def join(
        self, seat: Seat, entity: Hashable, stream: Callable[[int], AsyncIterator[Any]], wrap: Callable[[Any], Any], last: int
    ) -> Member | None:
        if seat.template is None or not seat.plain:
            return None
        share_key, executor = seat.template
        key = (share_key, entity)
        group = self.groups.get(key)
        if group is None or group.task.done():
            group = self.groups[key] = Group(self, key, executor, stream, wrap, last)
        return group.join(seat, last)


async def follow(
    context: Any,
    entity: Hashable,
    stream: Callable[[int], AsyncIterator[R]],
    wrap: Callable[[R], T],
    after: int,
) -> AsyncIterator[T]:
    """A subscriber's events of ``entity`` after ``after``: on its own stream until it can join its group's.

    ``stream(last)`` is the entity's gap-free stream of the events after ``last`` (it ends after a
    terminal one); ``wrap`` turns a record into the subscription's type.
    """
    seat = current_seat.get()
    groups: FanoutGroups | None = getattr(context.services, "fanout", None)
    last = after
    while True:
        member: Member | None = None
        async with _closing(stream(last)) as records:
            async for record in records:
                context.refresh_loaders()  # an event's fields are read as of the event
                yield wrap(record)
                last = record.seq
                if record.terminal:
                    return
                if seat is not None and groups is not None:
                    member = groups.join(seat, entity, stream, wrap, last)
                    if member is not None:
                        break
        if member is None:
            return  # the stream ended by itself
        try:
            ended = await member.done
        finally:
            member.leave()
        if ended:
            return
        last = member.last
        member.seat.template = None  # it joins again only after strawberry has run an event for it again
