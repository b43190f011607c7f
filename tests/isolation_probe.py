"""Probes generated from the live schema: does any entry point let one account see another's data?

``entry_points`` walks the introspected Query, Mutation and Subscription roots and finds
every place an ID can go: an ID argument, a list of IDs, or an ID field anywhere inside an
input object. ``probe`` calls each of them as the attacker twice, once with the victim's
id and once with an id of the same type that does not exist, and reports a leak when the
two answers differ (after masking the id itself, fresh ids and timestamps) or when the
answer mentions any of the victim's ids or names. New root fields are covered without a
line of test code.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import websockets
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    build_client_schema,
    get_introspection_query,
    get_named_type,
    is_abstract_type,
    is_leaf_type,
    is_non_null_type,
    is_required_argument,
)
from graphql.pyutils import Undefined

from tests.client import GraphQLClient

SCALAR_SAMPLES: dict[str, Any] = {
    "String": "x",
    "Int": 1,
    "Float": 1.0,
    "Boolean": False,
    "ID": "eA",
    "JSON": {},
    "BigInt": "1",
    "DateTime": "2024-01-01T00:00:00+00:00",
    "Decimal": "1",
}
SELECTION_DEPTH = 3
SUBSCRIPTION_WINDOW = 0.5
#: a quiet answer is asked again with this window before it counts (a busy machine is slow to answer)
PATIENT_WINDOW = 3.0
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")


@dataclass(frozen=True)
class EntryPoint:
    operation: str  # query, mutation, subscription
    field: str
    argument: str
    slot: tuple[str, ...]  # path inside the argument's input object; () is the argument itself

    def __str__(self) -> str:
        return f"{self.operation} {self.field}({'.'.join((self.argument, *self.slot))})"


@dataclass(frozen=True)
class Leak:
    entry: EntryPoint
    id_type: str
    reason: str


async def fetch_schema(client: GraphQLClient) -> GraphQLSchema:
    response = await client.post(get_introspection_query())
    assert response.status_code == 200, response.text
    return build_client_schema(response.json()["data"])


def _id_slots(type_: GraphQLInputType, path: tuple[str, ...] = (), seen: frozenset[str] = frozenset()) -> Iterator[tuple[str, ...]]:
    named = get_named_type(type_)
    if named.name == "ID":
        yield path
    elif isinstance(named, GraphQLInputObjectType) and named.name not in seen:
        for name, field in named.fields.items():
            yield from _id_slots(field.type, (*path, name), seen | {named.name})


def entry_points(schema: GraphQLSchema) -> list[EntryPoint]:
    found: list[EntryPoint] = []
    for operation, root in (("query", schema.query_type), ("mutation", schema.mutation_type), ("subscription", schema.subscription_type)):
        for field_name, field in (root.fields if root else {}).items():
            for argument_name, argument in field.args.items():
                for slot in _id_slots(argument.type):
                    found.append(EntryPoint(operation, field_name, argument_name, slot))
    return found


def _value(type_: GraphQLInputType, slot: tuple[str, ...] | None, id_value: str, name: str = "") -> Any:
    """A valid value of ``type_``: ``id_value`` at ``slot``, required fields filled, the rest left out.

    Samples should pass the mutation's own checks, so that it goes on to look the id up.
    """
    if isinstance(type_, GraphQLNonNull):
        return _value(type_.of_type, slot, id_value, name)
    if isinstance(type_, GraphQLList):
        return [_value(type_.of_type, slot, id_value, name)]
    if slot == ():
        return id_value
    if isinstance(type_, GraphQLInputObjectType):
        value: dict[str, Any] = {}
        for field_name, field in type_.fields.items():
            if slot and slot[0] == field_name:
                value[field_name] = _value(field.type, slot[1:], id_value, field_name)
            elif is_non_null_type(field.type) and field.default_value is Undefined:
                value[field_name] = _value(field.type, None, id_value, field_name)
        return value
    if isinstance(type_, GraphQLEnumType):
        return next(iter(type_.values))
    if type_.name == "String" and ("uri" in name.lower() or "url" in name.lower()):  # type: ignore[union-attr]
        return "s3://probe/object"
    return SCALAR_SAMPLES.get(type_.name, "x")  # type: ignore[union-attr]


def selection(
    schema: GraphQLSchema, type_: GraphQLOutputType | GraphQLNamedType, depth: int = SELECTION_DEPTH, path: frozenset[str] = frozenset()
) -> str:
    """Every field without required arguments, ``depth`` levels down, no type twice on a path.

    Fields inside type conditions are aliased by type, so that fields of the same name and
    different types on different object types never conflict.
    """
    named = get_named_type(type_)
    if is_leaf_type(named):
        return ""
    if depth == 0 or named.name in path:
        return "{ __typename }"
    if is_abstract_type(named):
        fragments = [
            f"... on {possible.name} {_object_fields(schema, possible, depth, path, alias=True)}"
            for possible in schema.get_possible_types(named)  # type: ignore[arg-type]
        ]
        return "{ __typename " + " ".join(fragments) + " }"
    return _object_fields(schema, named, depth, path, alias=False)  # type: ignore[arg-type]


def _object_fields(schema: GraphQLSchema, named: GraphQLObjectType, depth: int, path: frozenset[str], *, alias: bool) -> str:
    parts = ["__typename"]
    for name, field in named.fields.items():
        if any(is_required_argument(argument) for argument in field.args.values()):
            continue
        inner = selection(schema, field.type, depth - 1, path | {named.name})
        label = f"{named.name}_{name}: {name}" if alias else name
        parts.append(f"{label} {inner}".strip())
    return "{ " + " ".join(parts) + " }"


def operation_for(schema: GraphQLSchema, entry: EntryPoint, id_value: str) -> tuple[str, dict[str, Any]]:
    root = {"query": schema.query_type, "mutation": schema.mutation_type, "subscription": schema.subscription_type}[entry.operation]
    assert root is not None
    field = root.fields[entry.field]
    definitions, arguments, variables = [], [], {}
    for name, argument in field.args.items():
        if name == entry.argument:
            value = _value(argument.type, entry.slot, id_value, name)
        elif is_required_argument(argument):
            value = _value(argument.type, None, id_value, name)
        else:
            continue
        definitions.append(f"${name}: {argument.type}")
        arguments.append(f"{name}: ${name}")
        variables[name] = value
    head = f"{entry.operation} Probe({', '.join(definitions)})" if definitions else f"{entry.operation} Probe"
    call = f"{entry.field}({', '.join(arguments)})" if arguments else entry.field
    return f"{head} {{ {call} {selection(schema, field.type)} }}", variables


async def _http(client: GraphQLClient, query: str, variables: dict[str, Any], _window: float = 0) -> Any:
    response = await client.post(query, variables)
    body = response.json()
    return {"status": response.status_code, "data": body.get("data"), "errors": body.get("errors")}


async def _subscription(client: GraphQLClient, query: str, variables: dict[str, Any], window: float = SUBSCRIPTION_WINDOW) -> Any:
    """What a subscription sends within a short window (a quiet one sends nothing)."""
    messages: list[Any] = []
    async with websockets.connect(client.ws_url, subprotocols=["graphql-transport-ws"]) as socket:
        await socket.send(json.dumps({"type": "connection_init", "payload": {"token": client.token}}))
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        await socket.send(json.dumps({"id": "probe", "type": "subscribe", "payload": {"query": query, "variables": variables}}))
        try:
            while True:
                message = json.loads(await asyncio.wait_for(socket.recv(), window))
                messages.append({key: message.get(key) for key in ("type", "payload")})
                if message["type"] in ("complete", "error"):
                    break
        except TimeoutError:
            pass
    return messages


def _masked(value: Any, used_id: str) -> Any:
    """The answer with the probed id, every other id and every timestamp masked, and no extensions but codes."""
    if isinstance(value, dict):
        masked: dict[str, Any] = {}
        for key, item in value.items():
            if key == "extensions" and isinstance(item, dict):
                item = {"code": item.get("code")}
            if isinstance(item, str) and (key == "id" or key.endswith("Id")):
                masked[key] = "<id>"
            else:
                masked[key] = _masked(item, used_id)
        return masked
    if isinstance(value, list):
        return [_masked(item, used_id) for item in value]
    if isinstance(value, str):
        return "<time>" if _TIME.match(value) else value.replace(used_id, "<probed id>")
    return value


async def probe(
    client: GraphQLClient,
    schema: GraphQLSchema,
    victim_ids: dict[str, str],
    missing_ids: dict[str, str],
    secrets_of_victim: Sequence[str],
) -> tuple[list[Leak], int]:
    """Every entry point with every victim id against a missing id of the same type: (leaks, calls made)."""
    leaks: list[Leak] = []
    calls = 0
    jobs: list[tuple[EntryPoint, str, Any]] = []
    for entry in entry_points(schema):
        for id_type, victim_id in victim_ids.items():
            jobs.append((entry, id_type, victim_id))

    async def run(entry: EntryPoint, id_type: str, victim_id: str) -> None:
        send = _subscription if entry.operation == "subscription" else _http

        async def ask(window: float) -> list[tuple[str, Any]]:
            nonlocal calls
            answers = []
            for used in (victim_id, missing_ids[id_type]):
                query, variables = operation_for(schema, entry, used)
                answers.append((used, await send(client, query, variables, window)))
                calls += 1
            return answers

        answers = await ask(SUBSCRIPTION_WINDOW)
        if entry.operation == "subscription" and [] in (answers[0][1], answers[1][1]) and answers[0][1] != answers[1][1]:
            answers = await ask(PATIENT_WINDOW)
        (victim_used, victim_answer), (missing_used, missing_answer) = answers
        raw = json.dumps(victim_answer).replace(victim_used, "")
        mentioned = [secret for secret in (*victim_ids.values(), *secrets_of_victim) if secret in raw]
        if mentioned:
            leaks.append(Leak(entry, id_type, f"the answer mentions the victim's {mentioned}: {raw[:500]}"))
        elif _masked(victim_answer, victim_used) != _masked(missing_answer, missing_used):
            leaks.append(
                Leak(
                    entry,
                    id_type,
                    f"answers differ:\n  victim's id: {json.dumps(victim_answer)[:500]}\n  missing id: {json.dumps(missing_answer)[:500]}",
                )
            )

    http = [job for job in jobs if job[0].operation != "subscription"]
    for job in http:  # mutations in order, so that one probe cannot disturb another
        await run(*job)
    await asyncio.gather(*(run(*job) for job in jobs if job[0].operation == "subscription"))
    return leaks, calls


async def sweep(client: GraphQLClient, schema: GraphQLSchema) -> str:
    """Every Query root field without required arguments, selected deeply, as one answer text."""
    assert schema.query_type is not None
    answers = []
    for name, field in schema.query_type.fields.items():
        if any(is_required_argument(argument) for argument in field.args.values()):
            continue
        response = await client.post(f"query Sweep {{ {name} {selection(schema, field.type, depth=4)} }}")
        assert response.status_code in (200, 403), (name, response.text[:500])
        answers.append(response.text)
    return "\n".join(answers)
