"""The services' mutations: deploy, scale, stop, invoke; each answers a payload with `userErrors`."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from graph.core.context import Context
from graph.core.payloads import UserError, user_errors
from graph.core.scalars import JSON
from graph.services.inputs import DeployModelInput, InvokeServiceInput, ScaleServiceInput, StopServiceInput
from graph.services.types import InferenceService
from resolvers.common.errors import UserErrorData
from resolvers.services.service import DeployRequest, ServiceOutcome


@strawberry.type
class DeployModelPayload:
    service: InferenceService | None
    user_errors: list[UserError]
    client_mutation_id: str | None


@strawberry.type
class ScaleServicePayload:
    service: InferenceService | None
    user_errors: list[UserError]
    client_mutation_id: str | None


@strawberry.type
class StopServicePayload:
    service: InferenceService | None
    user_errors: list[UserError]
    client_mutation_id: str | None


@strawberry.type
class InvokeServicePayload:
    output: JSON | None
    latency_ms: float | None
    user_errors: list[UserError]
    client_mutation_id: str | None


def _service(outcome: ServiceOutcome) -> InferenceService | None:
    return InferenceService.from_row(outcome.service) if outcome.service else None


@strawberry.type
class ServiceMutation:
    @strawberry.mutation(description="Serve a model version on a center (named, or placed by policy like a job).")
    async def deploy_model(self, info: Info[Context, None], input: DeployModelInput) -> DeployModelPayload:
        request = DeployRequest(
            model_id=input.model_id,
            request=input.request.to_request(),
            name=input.name,
            center_id=input.center_id,
            policy=input.policy.value,
            scale=input.scale.to_scale() if input.scale else None,
            command=list(input.command) if input.command is not None else None,
            protocol=input.protocol.value,
            idempotent=input.idempotent,
            deadline_seconds=input.deadline_seconds,
            idempotency_key=input.idempotency_key,
        )
        outcome = await info.context.services.services.deploy(info.context.viewer, request)
        return DeployModelPayload(
            service=_service(outcome), user_errors=user_errors(outcome.errors), client_mutation_id=input.client_mutation_id
        )

    @strawberry.mutation(description="Change a service's replica range and target; works at any time before it stops.")
    async def scale_service(self, info: Info[Context, None], input: ScaleServiceInput) -> ScaleServicePayload:
        outcome = await info.context.services.services.scale(info.context.viewer, input.service_id, input.scale.to_scale())
        return ScaleServicePayload(
            service=_service(outcome), user_errors=user_errors(outcome.errors), client_mutation_id=input.client_mutation_id
        )

    @strawberry.mutation(description="Stop a service: every replica's process tree is stopped; it ends STOPPED.")
    async def stop_service(self, info: Info[Context, None], input: StopServiceInput) -> StopServicePayload:
        outcome = await info.context.services.services.stop(info.context.viewer, input.service_id)
        return StopServicePayload(
            service=_service(outcome), user_errors=user_errors(outcome.errors), client_mutation_id=input.client_mutation_id
        )

    @strawberry.mutation(description="Send one JSON input to the service and answer the model's output.")
    async def invoke_service(self, info: Info[Context, None], input: InvokeServiceInput) -> InvokeServicePayload:
        answer = await info.context.services.services.invoke(info.context.viewer, input.service_id, input.input)
        errors = (
            []
            if answer.ok
            else [
                UserErrorData(
                    answer.message or "",
                    answer.code or "BACKEND_ERROR",
                    ("input",) if answer.code in ("PAYLOAD_TOO_LARGE", "INVALID_INPUT") else ("serviceId",),
                )
            ]
        )
        return InvokeServicePayload(
            output=answer.output if answer.ok else None,
            latency_ms=answer.latency_ms,
            user_errors=user_errors(errors),
            client_mutation_id=input.client_mutation_id,
        )
