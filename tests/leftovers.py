"""A connector that remembers what it submitted, so a failing test leaves no job behind on a shared center."""

from __future__ import annotations

from connectors.base import Connector, JobSpec, StatusQuery, Submission


class RemembersSubmissions(Connector):
    """Mix in before a connector kind: ``class Cleaning(RemembersSubmissions, SlurmConnector)``."""

    submitted: list[str]

    async def submit(self, spec: JobSpec) -> Submission:
        submission = await super().submit(spec)
        self.submitted.append(submission.external_id)
        return submission

    async def cancel_leftovers(self) -> None:
        answer = await self.status([StatusQuery(job_id) for job_id in self.submitted])
        for job_id, status in answer.items():
            if not status.state.terminal:
                await self.cancel(job_id)
