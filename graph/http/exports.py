"""Downloads beside the graph: a bill as a FinOps FOCUS CSV at ``GET /bills/{billId}/focus.csv``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from resolvers.access.viewer import READ, Viewer
from resolvers.billing.reads import BillingReads
from resolvers.common.ids import int_key


def export_routes(billing: BillingReads, viewer_of: Callable[[Request], Awaitable[Viewer | None]]) -> list[Route]:
    """``viewer_of`` says who asks, as the GraphQL endpoint would (the bearer token); a caller
    without the read scope gets 401, and a bill the viewer may not see answers exactly like
    a missing one (404)."""

    async def bill_focus_csv(request: Request) -> Response:
        viewer = await viewer_of(request)
        if viewer is None or not viewer.can(READ):
            return JSONResponse(
                {"errors": [{"message": "a token with the read scope is required", "extensions": {"code": "UNAUTHENTICATED"}}]},
                status_code=401,
                headers={"www-authenticate": "Bearer"},
            )
        key = int_key(request.path_params["bill_id"], "Bill")
        bill = (await billing.bills_by_ids([key], viewer.scope)).get(key) if key is not None else None
        if bill is None:
            return JSONResponse({"errors": [{"message": "no such bill", "extensions": {"code": "NOT_FOUND"}}]}, status_code=404)
        filename = f"aicn-bill-{bill.period}-{bill.id}.csv"
        return StreamingResponse(
            billing.focus_csv(bill),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="{filename}"'},
        )

    return [Route("/bills/{bill_id}/focus.csv", bill_focus_csv, methods=["GET"])]
