"""The gate's memo of a parsed document: one measure and one scope walk per document, never a stale answer."""

from __future__ import annotations

from graphql import get_operation_ast, parse

from graph.core.permissions import required_scopes
from graph.gate.cost import measure
from graph.gate.memo import SHAPES_PER_DOCUMENT, DocumentMemo
from graph.schema import schema as served
from tests.unit.graph.gate.small_schema import SCHEMA

PAGE = "query($n: Int = 3) { jobs(first: $n) { edges { node { owner { name } } } } }"


def _parsed(text: str):  # type: ignore[no-untyped-def]
    document = parse(text)
    operation = get_operation_ast(document)
    assert operation is not None
    return document, operation


def test_the_same_document_is_measured_once_and_answers_as_measure_does() -> None:
    memo = DocumentMemo()
    document, operation = _parsed("{ jobs(first: 5) { edges { node { owner { name } } } } }")
    first = memo.shape(SCHEMA, document, operation, None)
    assert first == measure(SCHEMA, document, operation, None)
    assert memo.shape(SCHEMA, document, operation, {}) is first
    # the same text parsed again is another document: measured for itself
    again, again_operation = _parsed("{ jobs(first: 5) { edges { node { owner { name } } } } }")
    assert memo.shape(SCHEMA, again, again_operation, None) is not first


def test_a_measure_with_variables_is_kept_for_the_page_sizes_it_read() -> None:
    memo = DocumentMemo()
    document, operation = _parsed(PAGE)
    default = memo.shape(SCHEMA, document, operation, None)
    assert default == measure(SCHEMA, document, operation, None)
    fifty = memo.shape(SCHEMA, document, operation, {"n": 50})
    assert fifty.cost == 1 + 50 * 2 and fifty.variables_read == {"n"}
    assert memo.shape(SCHEMA, document, operation, {"n": 1}).cost == 1 + 1 * 2
    assert memo.shape(SCHEMA, document, operation, {"n": 50}) is fifty
    assert memo.shape(SCHEMA, document, operation, None) is default


def test_variables_the_measure_does_not_read_do_not_change_what_is_kept() -> None:
    memo = DocumentMemo()
    document, operation = _parsed("mutation($input: CancelJobInput!) { cancelJob(input: $input) { job { id } } }")
    first = memo.shape(served._schema, document, operation, {"input": {"id": "a"}})
    assert first.variables_read == frozenset()
    assert memo.shape(served._schema, document, operation, {"input": {"id": "b"}}) is first


def test_a_document_paged_through_many_sizes_keeps_a_bounded_number_of_measures() -> None:
    memo = DocumentMemo()
    document, operation = _parsed(PAGE)
    for n in range(1, 100):
        assert memo.shape(SCHEMA, document, operation, {"n": n}).cost == 1 + n * 2
        assert len(memo._learned(SCHEMA, document, operation).shapes) <= SHAPES_PER_DOCUMENT
    assert memo.shape(SCHEMA, document, operation, {"n": 2}).cost == 1 + 2 * 2


def test_each_operation_of_a_document_has_its_own_entry() -> None:
    memo = DocumentMemo()
    document = parse("query A { viewer { name } } query B { jobs(first: 4) { edges { node { id } } } }")
    a, b = get_operation_ast(document, "A"), get_operation_ast(document, "B")
    assert a is not None and b is not None
    assert memo.shape(SCHEMA, document, a, None).cost == 1
    assert memo.shape(SCHEMA, document, b, None).cost == 1 + 4
    assert memo.shape(SCHEMA, document, a, None).root_fields == ("viewer",)


def test_the_oldest_document_leaves_a_full_memo() -> None:
    memo = DocumentMemo(size=2)
    parsed = [_parsed(f"{{ jobs(first: {n}) {{ totalCount }} }}") for n in (1, 2, 3)]
    kept = [memo.shape(SCHEMA, document, operation, None) for document, operation in parsed]
    assert memo.shape(SCHEMA, *parsed[2], None) is kept[2]
    assert memo.shape(SCHEMA, *parsed[1], None) is kept[1]
    assert memo.shape(SCHEMA, *parsed[0], None) is not kept[0]  # evicted, measured anew
    assert memo.shape(SCHEMA, *parsed[0], None) == kept[0]


def test_scopes_are_those_required_scopes_finds_and_kept_beside_the_shape() -> None:
    memo = DocumentMemo()
    document, operation = _parsed('mutation { cancelJob(input: { id: "x" }) { job { id } } }')
    scopes = memo.scopes(served, document, operation)
    assert dict(scopes) == required_scopes(served, document, operation)
    assert scopes  # the mutation needs a scope
    assert memo.scopes(served, document, operation) is scopes
    shape = memo.shape(served._schema, document, operation, None)
    assert memo.scopes(served, document, operation) is scopes and memo.shape(served._schema, document, operation, None) is shape
