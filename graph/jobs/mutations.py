"""The jobs' mutations: submit and cancel; each takes one `input` and answers a payload with `userErrors`."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from graph.core.context import Context
from graph.core.payloads import UserError, user_errors
from graph.jobs.inputs import CancelJobInput, SubmitJobInput
from graph.jobs.types import Job
from resolvers.jobs.service import SubmitRequest


@strawberry.type
class SubmitJobPayload:
    job: Job | None
    user_errors: list[UserError]
    client_mutation_id: str | None


@strawberry.type
class CancelJobPayload:
    job: Job | None
    user_errors: list[UserError]
    client_mutation_id: str | None


@strawberry.type
class JobMutation:
    @strawberry.mutation(description="Submit a job to a named center, or let the network place it.")
    async def submit_job(self, info: Info[Context, None], input: SubmitJobInput) -> SubmitJobPayload:
        request = SubmitRequest(
            name=input.name,
            command=list(input.command),
            request=input.request.to_request(),
            kind=input.kind,
            environment=input.environment,
            center_id=input.center_id,
            policy=input.policy.value,
            input_dataset_ids=list(input.input_dataset_ids or []),
            output_model_name=input.output_model_name,
            output_dataset_name=input.output_dataset_name,
            idempotency_key=input.idempotency_key,
            priority=input.priority,
            via=info.context.via,
        )
        outcome = await info.context.services.jobs.submit(info.context.viewer, request)
        return SubmitJobPayload(
            job=Job.from_row(outcome.job) if outcome.job else None,
            user_errors=user_errors(outcome.errors),
            client_mutation_id=input.client_mutation_id,
        )

    @strawberry.mutation(description="Cancel a job; it reaches CANCELLED once its center has stopped it.")
    async def cancel_job(self, info: Info[Context, None], input: CancelJobInput) -> CancelJobPayload:
        outcome = await info.context.services.jobs.cancel(info.context.viewer, input.job_id)
        return CancelJobPayload(
            job=Job.from_row(outcome.job) if outcome.job else None,
            user_errors=user_errors(outcome.errors),
            client_mutation_id=input.client_mutation_id,
        )
