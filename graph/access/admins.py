"""The admin check every administrators-only field makes, beside the gate's scope check."""

from __future__ import annotations

from strawberry.types import Info

from graph.core.context import Context
from resolvers.common.errors import BadRequest


def require_admin(info: Info[Context, None]) -> None:
    # the gate refuses these fields already; this keeps them safe wherever they are called from
    if not info.context.viewer.is_admin:
        raise BadRequest("this needs the admin scope", "FORBIDDEN")
