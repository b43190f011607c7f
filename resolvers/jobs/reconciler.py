"""One reconciler per center: turns what the center reports into job events.

Each round asks the center about all of its unfinished jobs in one call, plans the
changes per job against the recorded state, and writes them through the ledger: the changes
of every job (a start, progress, and an ending job's last lines) in one transaction for the
round, so a busy center's round costs one lock, one fence check and one commit, not one of each
per job; then the ends (each meters, registers outputs, enqueues webhooks), ``ENDS_TOGETHER`` to
a transaction, so a job's last progress line never waits for other jobs' ends.
A job the center reports as it was recorded costs no transaction. A job the center no longer
knows is failed as LOST once it has been missing for a grace period, so nothing stays RUNNING forever.

On a center without time limits of its own (``Connector.time_limits_by_gateway``: RAY) the
reconciler is the time limit: a job still running past ``maxDurationMinutes`` after it was
first seen running is stopped through the connector's ``cancel`` and ended FAILED with a
TIME_LIMIT reason in the same ledger write that meters it, once.

One job's write that fails (the database refuses a value the center reported) costs that job
its round only: it is logged with the job's id and counted, and the center's other jobs go on
(a joint write that fails is written again one transaction per job).
Under replicas every write is fenced by the center's lease (``fence``), and a hand-over waits
for the round in progress to end (``drain``).

A center with no unfinished job is not read again until the reconciler is told of one: every job
reaches a center through a hand-over, and a hand-over tells the center's reconciler on whichever
replica runs it (``handed``; from another replica over the bus), a take-over of the lease starts
with a full round, and activity at the center wakes it (``wake``). Fifty idle centers would
otherwise cost the event loop 25 reads a second, landing inside the requests it serves. The sweep
for interrupted hand-overs (every ``SWEEP_INTERVAL_SECONDS``) reads the center's unfinished jobs
anyway: one it finds with a submission starts a full round, the safety net for a tell that was
lost (a replica killed between recording a submission and publishing it, a Redis blip).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import datetime, timedelta

from connectors.base import CenterJobState, JobStatus, StatusQuery
from connectors.errors import ConnectorError, JobNotFound
from resolvers.centers.registry import Center, CenterRegistry
from resolvers.common.background import Alarm, stop_task
from resolvers.common.errors import CenterFault
from resolvers.common.leases import Fence
from resolvers.common.metrics import reconcile_job_failures
from resolvers.jobs.ledger import Change, JobLedger, plan_changes, plan_lead_up
from resolvers.jobs.service import JobService
from resolvers.jobs.states import TERMINAL_STATES, JobState
from store import jobs as job_store
from store.db import Database
from store.tables import JobRow
from store.types import utcnow

log = logging.getLogger(__name__)

#: a job as a round sees it: a glance, or its whole row when the round needed more (or wrote it)
Seen = job_store.JobGlance | JobRow
#: what a center's answer changes of a job (``plan_changes``, or ``plan_lead_up`` before an end)
Planner = Callable[[Seen, JobStatus], Change]

#: how many jobs' ends are written in one transaction (a longer one would hold SQLite's write lock
#: long enough to be felt by submissions)
ENDS_TOGETHER = 25
#: how often a center that tells of its jobs' changes itself (``Connector.follows_jobs``) is polled all the same
FOLLOWED_POLL_SECONDS = 2.0
#: how often a running reconciler looks for hand-overs that another replica's death interrupted
SWEEP_INTERVAL_SECONDS = 15.0
#: a job placed on the center this long ago and still not submitted (nor staging) was left by a dead replica
INTERRUPTED_AFTER = timedelta(seconds=60)
TIME_LIMIT_REASON = "TIME_LIMIT: the job ran past its maxDurationMinutes and was stopped by the gateway"


class Reconciler:
    def __init__(
        self,
        db: Database,
        registry: CenterRegistry,
        ledger: JobLedger,
        jobs: JobService,
        center: Center,
        *,
        vanished_grace: timedelta = timedelta(seconds=30),
    ) -> None:
        self.db = db
        self.registry = registry
        self.ledger = ledger
        self.jobs = jobs
        self.center = center
        self._task: asyncio.Task[None] | None = None
        self.vanished_grace = vanished_grace
        self._missing_since: dict[int, datetime] = {}
        self._alarm = Alarm()
        #: external ids the center told of since the last round: looked at before the next poll is due
        self._told: set[str] = set()
        #: jobs just handed over here, by external id, as the hand-over wrote them: looked at with no read
        self._handed: dict[str, job_store.JobGlance] = {}
        self._full = True  # the next round looks at every job (a start, activity at the center)
        self._poll_soon = False  # a job was handed over: the next full round is due a poll interval on at most
        #: the center's lease (replicas): no write once another replica holds it
        self.fence: Fence | None = None
        self._draining = False
        #: full rounds made since the start (one follows the start's recovery at once)
        self.full_rounds = 0

    def start(self) -> None:
        self._draining = False
        self._task = asyncio.create_task(self._run(), name=f"reconciler-{self.center.name}")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def drain(self) -> None:
        """Stop at the next clean point: after the round in progress (a hand-over to another replica)."""
        task = self._task
        if task is None:
            return
        self._draining = True
        self._alarm.ring()
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():  # our caller gave up waiting: stop it outright
                await self.stop()
                raise
        self._task = None

    def wake(self) -> None:
        """Something happened at the center: a full round now, not after an idle wait."""
        self._full = True
        self._alarm.ring()

    def handed(self, external_id: str, glance: job_store.JobGlance | None = None) -> None:
        """A job was just handed to this center: look at it now (not at every job: hand-overs come
        as fast as submissions), and poll at the busy pace from now on, not the idle one. With the
        glance the hand-over wrote (on this replica), the look costs no read of the job."""
        self._poll_soon = True
        if glance is None or glance.external_id != external_id:
            self.told([external_id])
            return
        self._handed[external_id] = glance
        self._alarm.ring()

    def told(self, external_ids: Collection[str]) -> None:
        """The center has just told of these jobs (a progress line, a change of state): look at them now."""
        self._told.update(external_ids)
        self._alarm.ring()

    async def _run(self) -> None:
        await self.recover()
        loop = asyncio.get_running_loop()
        due = loop.time()  # when the next full round (the poll) is due; never while the center has no job
        swept = loop.time()
        while not self._draining:
            try:
                if loop.time() - swept >= SWEEP_INTERVAL_SECONDS:
                    swept = loop.time()
                    if await self.recover(unchanged_for=INTERRUPTED_AFTER) and due == math.inf:
                        due = loop.time()  # a submission nobody told of: the safety net
                if self._full or loop.time() >= due:
                    self._full = False
                    self._told.clear()  # a full round looks at every job anyway
                    self._handed.clear()
                    busy = await self.reconcile_once()
                    self.full_rounds += 1
                    # with nothing to watch, no poll: a hand-over, a wake or the sweep says when there is
                    due = loop.time() + self._poll_interval() if busy else math.inf
                elif self._told or self._handed:
                    told, handed = self._told, self._handed
                    self._told, self._handed = set(), {}
                    # a job both handed and told of since is read: the center may have moved it on
                    await self.reconcile_once(only=told, glanced=[glance for key, glance in handed.items() if key not in told])
                if self._poll_soon:
                    self._poll_soon = False
                    due = min(due, loop.time() + self.center.poll_interval_seconds)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reconciling center %s failed", self.center.name)
                due = min(due, loop.time() + self._poll_interval())  # tried again at the poll's pace
            if not self._told and not self._handed and not self._full and not self._draining:
                await self._alarm.sleep(max(0.0, min(due, swept + SWEEP_INTERVAL_SECONDS) - loop.time()))

    def _poll_interval(self) -> float:
        """A center that tells of its jobs' every change as it happens (``follows_jobs``) is polled as a
        safety net only: a full round over a busy center's every job, every poll interval, is what
        would hold back the rounds over the jobs it has just told of."""
        interval = self.center.poll_interval_seconds
        if self.center.connector.on_jobs_changed is not None and self.center.connector.follows_jobs:
            return max(interval, FOLLOWED_POLL_SECONDS)
        return interval

    async def recover(self, unchanged_for: timedelta | None = None) -> bool:
        """After a gateway start (or a take-over of this center): finish handing over submissions
        a crash interrupted. With ``unchanged_for``, only those that have not changed for so long
        (the replica that handed them over died; a hand-over in progress or a staging writes events):
        submitting is keyed by the job's reference, so one finished meanwhile is not submitted twice.
        True when the center has an unfinished job it took (one to watch)."""
        async with self.db.read() as session:
            jobs = await job_store.unfinished_glances(session, self.center.id)
        cutoff = utcnow() - unchanged_for if unchanged_for is not None else None
        for job in jobs:
            if job.external_id is None and (cutoff is None or job.updated_at < cutoff):
                await self.jobs.resubmit(job.id)
        return any(job.external_id is not None for job in jobs)

    async def reconcile_once(self, only: Collection[str] | None = None, glanced: Sequence[job_store.JobGlance] = ()) -> bool:
        """One round (over the jobs in ``only`` and ``glanced`` when given); False when the center has no
        unfinished job to watch. ``glanced``: jobs glanced at already (as their hand-over wrote them), not read.

        A round glances at its jobs (a busy center's thousands of queued ones, every poll): the
        writes plan against the rows they lock, so the whole row is read only for what needs more
        than a glance (an output to measure, a cancel to send on, a time limit to keep)."""
        glances = list(glanced)
        if only is None or only:
            async with self.db.read() as session:
                glances += [glance for glance in await job_store.unfinished_glances(session, self.center.id, only) if glance.external_id]
        if not glances:
            return False
        queries = [StatusQuery(glance.external_id, glance.progress_count) for glance in glances if glance.external_id]
        try:
            answer = await self.registry.call(self.center, lambda connector: connector.status(queries))
        except CenterFault:
            return True  # the center's health records it; try again next round
        answered = [(glance, answer.get(glance.external_id or "")) for glance in glances]
        rows = await self._rows_of([glance.id for glance, status in answered if status is not None and self._needs_row(glance, status)])
        together: list[tuple[Seen, JobStatus, Planner]] = []
        ended: list[tuple[Seen, JobStatus]] = []
        for glance, status in answered:
            with self._own_failure(glance):
                if status is None:
                    if only is None:  # a job is only missing when a full round misses it
                        await self._handle_missing(glance)
                    continue
                self._missing_since.pop(glance.id, None)
                job = rows.get(glance.id, glance)
                if status.state.terminal:
                    ended.append((job, status))
                    if any(report.ordinal > job.progress_count for report in status.progress):
                        together.append((job, status, plan_lead_up))  # its last lines go out before its end
                else:
                    together.append((job, status, plan_changes))
        # every job's progress first, in one transaction, not held back by the ends
        await self._apply_together(together)
        await self._apply_ends(ended)
        return True

    def _needs_row(self, glance: job_store.JobGlance, status: JobStatus) -> bool:
        """Whether the center's answer calls for more of the job than a glance: its outputs to measure
        (it succeeded), a cancel to send on (it is CANCELLING) or a time limit kept by the gateway."""
        if status.state == CenterJobState.SUCCEEDED:
            return self.ledger.outputs is not None
        if glance.state == JobState.CANCELLING:
            return not status.state.terminal
        return status.state is CenterJobState.RUNNING and self.center.connector.time_limits_by_gateway

    async def _rows_of(self, job_ids: Sequence[int]) -> dict[int, JobRow]:
        """The lean rows of those jobs still unfinished, by id, in one read."""
        rows: dict[int, JobRow] = {}
        if job_ids:
            async with self.db.read() as session:
                for start in range(0, len(job_ids), job_store.MAX_IDS_IN_QUERY):
                    chunk = job_ids[start : start + job_store.MAX_IDS_IN_QUERY]
                    rows.update((row.id, row) for row in await job_store.unfinished_jobs_by_id(session, self.center.id, chunk))
        return rows

    @contextlib.contextmanager
    def _own_failure(self, job: Seen) -> Iterator[None]:
        """One job's failure costs that job its round only: logged with its id and counted."""
        try:
            yield
        except asyncio.CancelledError:
            raise
        except Exception:
            reconcile_job_failures.labels(center=self.center.name).inc()
            log.exception(
                "reconciling job %s on center %s failed; its other jobs go on, it is tried again next round", job.id, self.center.name
            )

    async def _apply_together(self, pairs: list[tuple[Seen, JobStatus, Planner]]) -> None:
        """The round's jobs still going at the center (progress, a start) and the lead-up to the ends
        (each planned by its ``Planner``), written in one transaction: a busy center's round costs one
        commit, not one per job. Should that transaction fail, each job is written in one of its own,
        so that a job whose write the database refuses costs only itself."""
        planned = [(job, status, plan) for job, status, plan in pairs if plan(job, status)]
        updated: dict[int, Seen | None] = {job.id: job for job, _, _ in pairs}
        for start in range(0, len(planned), job_store.MAX_IDS_IN_QUERY):
            chunk = planned[start : start + job_store.MAX_IDS_IN_QUERY]
            planners = {job.id: functools.partial(_plan_against, job, status, plan) for job, status, plan in chunk}
            try:
                updated.update(await self.ledger.apply_many(planners, self.fence))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.info("a round's joint write on center %s failed; writing its jobs one by one", self.center.name, exc_info=True)
                for job, _status, _plan in chunk:
                    with self._own_failure(job):
                        updated[job.id], _ = await self.ledger.apply(job.id, planners[job.id], self.fence)
        for job, status, _plan in pairs:
            current = updated.get(job.id)
            if current is not None:
                with self._own_failure(job):
                    await self._follow_up(current, status)

    async def _apply_ends(self, ended: list[tuple[Seen, JobStatus]]) -> None:
        """The round's ends (each meters, registers outputs, enqueues webhooks), ``ENDS_TOGETHER`` to a
        transaction: a hundred jobs ending at once cost a few commits, not a hundred rounds of a
        dozen statements, each waiting for the one before (and the next round's progress for all)."""
        for job, status in ended:
            if status.state == CenterJobState.SUCCEEDED and self.ledger.outputs is not None and isinstance(job, JobRow):
                with self._own_failure(job):
                    await self.ledger.outputs.prime(job)  # measured outside the transaction
        for start in range(0, len(ended), ENDS_TOGETHER):
            await self._apply_together([(job, status, plan_changes) for job, status in ended[start : start + ENDS_TOGETHER]])

    async def _follow_up(self, updated: Seen, status: JobStatus) -> None:
        """After a job's write: a cancel to send on, or a time limit the gateway keeps (a job that
        needs either was read whole: ``_needs_row``)."""
        if not isinstance(updated, JobRow):
            return
        if updated.state == JobState.CANCELLING and not status.state.terminal:
            await self.jobs.send_cancel(updated)
        elif status.state is CenterJobState.RUNNING and self._past_its_limit(updated):
            await self._stop_at_time_limit(updated)

    def _past_its_limit(self, job: JobRow) -> bool:
        if not self.center.connector.time_limits_by_gateway or job.state != JobState.RUNNING or job.started_at is None:
            return False
        limit = timedelta(minutes=float(job.request.max_duration_minutes))
        return utcnow() - job.started_at >= limit

    async def _stop_at_time_limit(self, job: JobRow) -> None:
        """Stop the job on its center; once the center took the stop, end it TIME_LIMIT (metered)."""
        external_id = job.external_id or ""
        try:
            await self.registry.call(self.center, lambda connector: connector.cancel(external_id))
        except JobNotFound:
            pass  # nothing left to stop
        except (CenterFault, ConnectorError):
            return  # still running there: asked again next round
        log.info("job %s on center %s ran past its time limit: stopped", job.id, self.center.name)

        def end(current: JobRow) -> Change:
            change = Change()
            if current.state != JobState.RUNNING:  # ended, or cancelled by its owner, meanwhile
                return change
            change.columns.update(failure_reason=TIME_LIMIT_REASON, finished_at=utcnow(), exit_code=None)
            change.state(JobState.FAILED, TIME_LIMIT_REASON)
            return change

        await self.ledger.apply(job.id, end, self.fence)

    async def _handle_missing(self, job: Seen) -> None:
        first_seen = self._missing_since.setdefault(job.id, utcnow())
        if utcnow() - first_seen < self.vanished_grace:
            return
        reason = "LOST: the center no longer knows this job and never reported its end"

        def lose(current: JobRow) -> Change:
            change = Change()
            if current.state in TERMINAL_STATES:
                return change
            change.columns.update(failure_reason=reason, finished_at=utcnow())
            change.state(JobState.FAILED, reason)
            return change

        await self.ledger.apply(job.id, lose, self.fence)
        self._missing_since.pop(job.id, None)


def _plan_against(asked: Seen, status: JobStatus, plan: Planner, current: JobRow) -> Change:
    """What the center said is of the submission we asked about: not of a row changed since."""
    return plan(current, status) if current.external_id == asked.external_id else Change()
