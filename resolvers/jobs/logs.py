"""Live logs: a job's last lines, then every new line as the job writes it, until the job ends.

Everything goes through the connectors' incremental ``read_log`` (bytes from an offset, bounded
per call), so what one subscription costs is bounded whatever the job prints:

* each poll reads at most ``READ_BUDGET`` bytes; a job writing faster than that is skipped ahead
  to its end, and the skipped bytes are named in a marker line;
* a line is kept to its first ``MAX_LINE_BYTES`` bytes (the rest counted, not held) and marked;
* lines beyond ``lines_per_second`` (a token bucket, one second of burst) are dropped and counted,
  and the batch says so in a marker line (``dropped``, ``truncated``).

The first batch is the tail (up to ``tail_lines`` lines from the last ``MAX_TAIL_BYTES``), sent even
when empty so that a client knows the stream is open. The stream waits for a queued job to reach
its center, and ends once the job has ended and its output is read to the end.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from connectors.base import LogChunk
from connectors.errors import ConnectorError, JobNotFound
from resolvers.centers.registry import Center, CenterRegistry
from resolvers.common.errors import CenterFault
from resolvers.jobs.states import TERMINAL_STATES
from store import jobs as job_store
from store.bus import InMemoryBus, Subscription
from store.db import Database
from store.tables import JobRow

BLOCK = 64 * 1024
READ_BUDGET = 4 * BLOCK
MAX_TAIL_BYTES = 1024 * 1024
MAX_LINE_BYTES = 16 * 1024
CUT_MARK = " […]"
#: a quiet stream still looks at the job this often (covers news the bus lost)
RECHECK_SECONDS = 5.0


def marker(text: str) -> str:
    """A line the gateway adds to a job's output: never mistaken for the job's own."""
    return f"[aicn: {text}]"


@dataclass(frozen=True)
class LogBatch:
    lines: list[str]
    truncated: bool = False
    dropped: int = 0


@dataclass
class LineSplitter:
    """Bytes in, whole lines out; a line longer than ``limit`` bytes keeps its head and is marked."""

    limit: int = MAX_LINE_BYTES
    _head: bytearray = field(default_factory=bytearray)
    _overflow: int = 0

    def feed(self, data: bytes) -> tuple[list[str], bool]:
        """The lines ``data`` completes, and whether any of them was cut."""
        lines: list[str] = []
        cut = False
        pieces = data.split(b"\n")
        for piece in pieces[:-1]:
            self._keep(piece)
            line, was_cut = self._take()
            lines.append(line)
            cut = cut or was_cut
        self._keep(pieces[-1])
        return lines, cut

    def flush(self) -> tuple[str | None, bool]:
        """The last line, unterminated, once the output has ended."""
        if not self._head and not self._overflow:
            return None, False
        return self._take()

    def _keep(self, piece: bytes) -> None:
        room = self.limit - len(self._head)
        self._head += piece[: max(0, room)]
        self._overflow += max(0, len(piece) - max(0, room))

    def _take(self) -> tuple[str, bool]:
        text = self._head.decode("utf-8", "replace").rstrip("\r")
        cut = self._overflow > 0
        if cut:
            text += f"{CUT_MARK} {marker(f'{self._overflow} more bytes of this line not shown')}"
        self._head.clear()
        self._overflow = 0
        return text, cut


class LineRate:
    """A token bucket of lines: ``per_second`` a second, one second's worth of burst."""

    def __init__(self, per_second: int) -> None:
        self.per_second = per_second
        self._tokens = float(per_second)
        self._at = time.monotonic()

    def admit(self, lines: list[str]) -> tuple[list[str], int]:
        now = time.monotonic()
        self._tokens = min(float(self.per_second), self._tokens + (now - self._at) * self.per_second)
        self._at = now
        allowed = min(len(lines), int(self._tokens))
        self._tokens -= allowed
        return lines[:allowed], len(lines) - allowed


class JobLogStream:
    def __init__(
        self, db: Database, bus: InMemoryBus, registry: CenterRegistry, *, lines_per_second: int, poll_seconds: float = 0.25
    ) -> None:
        self.db = db
        self.bus = bus
        self.registry = registry
        self.lines_per_second = lines_per_second
        self.poll_seconds = poll_seconds

    async def _current(self, job: JobRow) -> JobRow:
        async with self.db.read() as session:
            return (await job_store.jobs_by_ids(session, [job.id])).get(job.id) or job

    async def _wait(self, job: JobRow, live: Subscription, timeout: float, checked: float) -> tuple[JobRow, float]:
        """Wait at most ``timeout`` for news of the job: the job as it is now after news, or when a look is due anyway."""
        message = await live.get(timeout=timeout)
        if message is not None or live.overflowed or time.monotonic() - checked >= RECHECK_SECONDS:
            live.overflowed = False
            return await self._current(job), time.monotonic()
        return job, checked

    async def _read(self, center: Center, external_id: str, offset: int, max_bytes: int) -> LogChunk:
        return await self.registry.call(center, lambda connector: connector.read_log(external_id, offset, max_bytes))

    async def follow(self, job: JobRow, tail_lines: int) -> AsyncIterator[LogBatch]:
        async with self.bus.subscribe(f"job:{job.id}") as live:
            checked = time.monotonic()
            while job.external_id is None or job.center_id is None:  # queued at the gateway: wait for its center
                if job.state in TERMINAL_STATES:
                    yield LogBatch([])
                    return
                job, checked = await self._wait(job, live, RECHECK_SECONDS, checked)
            center = self.registry.get(job.center_id)
            if center is None:
                yield LogBatch([marker("the job's center is no longer configured")], truncated=True)
                return
            try:
                async for batch in self._stream(job, center, job.external_id, tail_lines, live):
                    yield batch
            except JobNotFound:
                yield LogBatch([marker("the center no longer holds this job's output")], truncated=True)
            except ConnectorError as error:  # a center kind that cannot read its jobs' output incrementally
                yield LogBatch([marker(error.message)], truncated=True)

    async def _stream(self, job: JobRow, center: Center, external_id: str, tail_lines: int, live: Subscription) -> AsyncIterator[LogBatch]:
        """The tail, then each poll's lines, until the job has ended and its output is read to the end."""
        follower = _Follower(self, center, external_id)
        checked = time.monotonic()
        while True:
            try:
                tail = await follower.tail(tail_lines)
                break
            except CenterFault as fault:
                notice = follower.trouble(fault)
                if notice is not None:
                    yield notice
                job, checked = await self._wait(job, live, follower.pause, checked)
        yield tail
        while True:
            ended = job.state in TERMINAL_STATES
            batch, exhausted = await follower.poll(final=ended)
            if batch is not None:
                yield batch
            if ended and exhausted and follower.center_answers:
                return
            if not exhausted:
                continue  # more is waiting: read on at once (the budget and the rate cap bound it)
            job, checked = await self._wait(job, live, follower.pause, checked)


class _Follower:
    """One subscription's position in one job's output, and what it tells its reader."""

    def __init__(self, stream: JobLogStream, center: Center, external_id: str) -> None:
        self.stream = stream
        self.center = center
        self.external_id = external_id
        self.offset = 0
        self.splitter = LineSplitter()
        self.rate = LineRate(stream.lines_per_second)
        self.pause = stream.poll_seconds
        self._center_trouble: str | None = None

    @property
    def center_answers(self) -> bool:
        return self._center_trouble is None

    def trouble(self, fault: CenterFault) -> LogBatch | None:
        """The center did not answer: ask again, less often; the reader hears of it once."""
        self.pause = min(5.0, self.pause * 2)
        if self._center_trouble is not None:
            return None
        self._center_trouble = fault.message
        return LogBatch([marker(f"{fault.message}; still trying")], truncated=True)

    async def tail(self, lines: int) -> LogBatch:
        """The last ``lines`` lines, read backwards in blocks up to MAX_TAIL_BYTES; the offset is left at the end."""
        chunk = await self.stream._read(self.center, self.external_id, -BLOCK, BLOCK)
        blocks, start, end = [chunk.data], chunk.start, chunk.next_offset
        while lines > 0 and start > 0 and sum(block.count(b"\n") for block in blocks) <= lines and end - start < MAX_TAIL_BYTES:
            size = min(BLOCK, start, MAX_TAIL_BYTES - (end - start))
            earlier = await self.stream._read(self.center, self.external_id, start - size, size)
            if earlier.start != start - size or not earlier.data:
                break  # the center no longer holds what came before
            blocks.insert(0, earlier.data[: start - earlier.start])
            start = earlier.start
        self.offset = end
        data = b"".join(blocks)
        complete, _, pending = data.rpartition(b"\n")
        self.splitter.feed(pending)  # the line the job is writing now: it comes with the rest of it
        if lines <= 0 or (not complete and not data.endswith(b"\n")):
            return LogBatch([])
        every, truncated = LineSplitter().feed(complete + b"\n")
        if start > 0 and len(every) <= lines:  # the first line kept may have begun before what was read
            every[0] = marker("earlier output not shown") + " " + every[0]
            truncated = True
        return LogBatch(every[-lines:], truncated=truncated)

    async def poll(self, *, final: bool) -> tuple[LogBatch | None, bool]:
        """New lines since the last poll (at most READ_BUDGET bytes), and whether the output is read to its end."""
        notes: list[str] = []
        data = bytearray()
        exhausted = False
        offset = self.offset  # kept only once every read of this poll has answered: a failed poll reads again
        try:
            while len(data) < READ_BUDGET:
                chunk = await self.stream._read(self.center, self.external_id, offset, min(BLOCK, READ_BUDGET - len(data)))
                if chunk.start > offset:
                    notes.append(marker(f"{chunk.start - offset} bytes of output skipped: the center no longer holds them"))
                elif chunk.start < offset:
                    notes.append(marker(f"the output was replaced: read again from byte {chunk.start}"))
                offset = chunk.next_offset
                data += chunk.data
                if len(chunk.data) == 0:
                    exhausted = True
                    break
            restart = False
            if not exhausted:  # writing faster than a reader can follow: go on from the end
                latest = await self.stream._read(self.center, self.external_id, -BLOCK, BLOCK)
                if latest.start > offset:
                    notes.append(marker(f"{latest.start - offset} bytes of output skipped: the job writes faster than it can be followed"))
                    offset, restart = latest.start, True
        except CenterFault as fault:
            return self.trouble(fault), True
        self.offset = offset
        if self._center_trouble is not None:
            notes.append(marker(f"center {self.center.name} answers again"))
            self._center_trouble = None
        self.pause = self.stream.poll_seconds
        lines, cut = self.splitter.feed(bytes(data))
        if restart:
            self.splitter = LineSplitter()  # the line it held was cut by the skip
        if final and exhausted:
            last, last_cut = self.splitter.flush()
            if last is not None:
                lines.append(last)
                cut = cut or last_cut
        kept, dropped = self.rate.admit(lines)
        if dropped:
            notes.append(marker(f"{dropped} lines dropped: more than {self.rate.per_second} lines a second"))
        if not kept and not notes:
            return None, exhausted
        return LogBatch(kept + notes, truncated=cut or bool(notes), dropped=dropped), exhausted
