"""Execute a subscription event's selection once for every subscriber that would get the same answer.

Many subscribers often follow the same job with the same operation (a dashboard open in many
browsers). Each keeps its own stream (its own tenant checks when it subscribes, its own
``after``, its own replay), but when two of them reach the same event, the selection is run
once and both get the same result, and the same serialized bytes (Hasura multiplexes live
queries this way).

Two executions share only when their answer cannot differ: the same event (an event carries
a ``share_tag``: its entity and sequence number), the same operation text and name, the same
variables (but those used only in the root field's arguments, such as ``after``, which choose
the events and never shape an event's answer), and the same viewer (account, admin switch and
scopes). A result is kept a few seconds: long enough to serve subscribers that receive the
event together, short enough that a subscriber replaying old events later reads them anew.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from graphql import ExecutionResult, FieldNode, OperationDefinitionNode, VariableNode, visit
from graphql.language import Visitor

from graph.core.fanout import current_seat
from graph.core.plain import PlainExecutor
from resolvers.common import metrics

#: how long an event's result is kept for the other subscribers that reach it
KEEP_SECONDS = 5.0
#: how many results are kept at most (the oldest go first)
KEEP_RESULTS = 4096


class SharedResults:
    """Results by (group key, event tag): the first subscriber to reach an event executes it,
    the others wait for that execution and take its result."""

    def __init__(self, keep_seconds: float = KEEP_SECONDS, keep_results: int = KEEP_RESULTS) -> None:
        self.keep_seconds = keep_seconds
        self.keep_results = keep_results
        self._entries: OrderedDict[Hashable, tuple[float, asyncio.Future[ExecutionResult]]] = OrderedDict()
        #: the JSON text of a shared result's data, by the result's identity (kept with the result)
        self._texts: dict[int, tuple[ExecutionResult, str]] = {}

    async def run(self, key: Hashable, execute: Callable[[], Any]) -> ExecutionResult:
        now = time.monotonic()
        self._expire(now)
        entry = self._entries.get(key)
        if entry is not None:
            metrics.subscription_shared.inc()
            return await asyncio.shield(entry[1])
        future: asyncio.Future[ExecutionResult] = asyncio.get_running_loop().create_future()
        self._entries[key] = (now, future)
        metrics.subscription_executions.inc()
        try:
            result: ExecutionResult = execute()
            if isinstance(result, Awaitable):
                result = await result
        except BaseException as error:
            self._entries.pop(key, None)
            future.set_exception(error)
            future.exception()  # retrieved: the waiters get it, no "never retrieved" warning
            raise
        future.set_result(result)
        return result

    def data_text(self, data: Any) -> str | None:
        """The JSON text of a shared result's ``data`` (made once), or None when ``data`` is not one."""
        entry = self._texts.get(id(data))
        if entry is None or entry[0].data is not data:
            return None
        return entry[1]

    def remember_text(self, result: ExecutionResult) -> None:
        if result.data is not None and id(result.data) not in self._texts:
            self._texts[id(result.data)] = (result, json.dumps(result.data, separators=(",", ":")))

    def _expire(self, now: float) -> None:
        while self._entries:
            key, (at, future) = next(iter(self._entries.items()))
            if now - at < self.keep_seconds and len(self._entries) <= self.keep_results:
                return
            del self._entries[key]
            if future.done() and not future.exception():
                self._texts.pop(id(future.result().data), None)


#: the variables that only choose events, by (operation text, operation name)
_ROOT_VARIABLES: dict[tuple[str, str | None], frozenset[str]] = {}


def group_key(executor: Any) -> Hashable | None:
    """What an event's answer depends on besides the event; None for an operation that is not shared."""
    operation: OperationDefinitionNode = executor.operation
    source = operation.loc.source.body if operation.loc is not None else None
    viewer = getattr(executor.context_value, "viewer", None)
    if source is None or viewer is None:
        return None
    operation_name = operation.name.value if operation.name is not None else None
    chooses_events = _ROOT_VARIABLES.get((source, operation_name))
    if chooses_events is None:  # once per operation text, not once per subscriber and event
        if len(_ROOT_VARIABLES) >= KEEP_RESULTS:
            _ROOT_VARIABLES.clear()
        chooses_events = _ROOT_VARIABLES[(source, operation_name)] = _root_argument_variables(operation)
    variables = tuple(sorted((name, repr(value)) for name, value in executor.variable_values.coerced.items() if name not in chooses_events))
    return (source, operation_name, variables, viewer.account_id, viewer.is_admin, viewer.scopes)


def _root_argument_variables(operation: OperationDefinitionNode) -> frozenset[str]:
    """Variables used only in the root fields' arguments (they choose the events, not their answers)."""
    in_root_arguments: dict[str, int] = {}
    for selection in operation.selection_set.selections:
        if isinstance(selection, FieldNode):
            for argument in selection.arguments or ():
                if isinstance(argument.value, VariableNode):
                    name = argument.value.name.value
                    in_root_arguments[name] = in_root_arguments.get(name, 0) + 1
    if not in_root_arguments:
        return frozenset()
    counts: dict[str, int] = {}

    class Count(Visitor):
        def enter_variable(self, node: VariableNode, *_: Any) -> None:
            counts[node.name.value] = counts.get(node.name.value, 0) + 1

    visit(operation.selection_set, Count())
    return frozenset(name for name, uses in in_root_arguments.items() if counts.get(name, 0) == uses)


class SharingExecutor(PlainExecutor):
    """strawberry's executor (completing plain subtrees in one pass, graph/core/plain.py), running a shareable subscription event once per group (see above)."""

    def execute_operation(self, serially: bool | None = None) -> Any:
        tag = getattr(self.root_value, "share_tag", None)
        if tag is None:
            return super().execute_operation(serially)
        key = group_key(self)
        results = getattr(getattr(self.context_value, "services", None), "shared_results", None)
        if key is None or not isinstance(results, SharedResults):
            return super().execute_operation(serially)
        seat = current_seat.get()
        if seat is not None:  # the subscriber may join its group's stream with this executor (graph/core/fanout.py)
            seat.template = (key, self)
        parent = super().execute_operation

        async def shared() -> ExecutionResult:
            result = await results.run((key, tag), lambda: parent(serially))
            results.remember_text(result)
            return result

        return shared()
