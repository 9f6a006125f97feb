"""projections.list_query against a real PostgreSQL: which ids come back, in which order."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping

import psycopg
import pytest
from psycopg import sql

from projections.list_query import (
    Field,
    ListQueryError,
    ListSpec,
    build_order,
    build_where,
)

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _doc(name, owner, size, active, created, project_id):
    return {
        "name": name,
        "owner": owner,
        "size": size,
        "active": active,
        "created": created,
        "project_id": project_id,
    }


ROWS = {
    1: _doc("Cats alpha", "admin", 10, True, "2024-01-01T00:00:00Z", 1),
    2: _doc("dogs beta", "user1", 5, False, "2024-02-01T00:00:00Z", 1),
    3: _doc("Cats gamma", None, 20, True, "2024-03-01T00:00:00Z", 2),
    4: _doc("bird_delta 100%", "admin", 5, False, "2024-04-01T00:00:00Z", None),
    5: _doc("fish", "User1", 9, True, "2024-05-01T12:30:00+02:00", 2),
    6: _doc("ADMIN notes", "user2", None, None, "2024-06-01T00:00:00Z", 3),
}
ALL_DESC = [6, 5, 4, 3, 2, 1]


def _json_field(key: str, kind) -> Field:
    return Field(sql.SQL("(doc->>{})").format(sql.Literal(key)), kind)


SPEC = ListSpec(
    fields={
        "id": Field(sql.Identifier("id"), "int", cast=False),
        "name": _json_field("name", "text"),
        "owner": _json_field("owner", "text"),
        "size": _json_field("size", "int"),
        "active": _json_field("active", "bool"),
        "created": _json_field("created", "datetime"),
        "project_id": _json_field("project_id", "int"),
    },
    search_fields=("name", "owner"),
    simple_filters=("name", "owner", "project_id", "active", "created"),
    ordering_fields=("id", "name", "owner", "size", "created", "project_id"),
)


@pytest.fixture(scope="module")
def conn() -> Iterator[psycopg.Connection]:
    url = os.environ.get("PALIMPSEST_TEST_DATABASE_URL")
    try:
        connection = psycopg.connect(url or DEFAULT_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as err:
        if url:
            raise
        pytest.skip(f"no PostgreSQL at {DEFAULT_URL}: {err}")
    with connection:
        connection.execute("CREATE TEMP TABLE items (id int PRIMARY KEY, doc jsonb NOT NULL)")
        with connection.cursor() as cur:
            cur.executemany(
                "INSERT INTO items (id, doc) VALUES (%s, %s::jsonb)",
                [(i, json.dumps(d)) for i, d in ROWS.items()],
            )
        yield connection


def query(conn: psycopg.Connection, params: Mapping[str, str], spec: ListSpec = SPEC) -> list:
    where, values = build_where(spec, params)
    order = build_order(spec, params)
    statement = sql.SQL("SELECT id FROM items WHERE {} ORDER BY {}").format(where, order)
    return [row[0] for row in conn.execute(statement, values)]


def filtered(conn: psycopg.Connection, rule: object, **params: str) -> list:
    return query(conn, {"filter": json.dumps(rule), **params})


def var(name: str) -> dict:
    return {"var": name}


# ------------------------------------------------------------------------------ no parameters


def test_no_params_gives_true_and_default_order(conn):
    where, values = build_where(SPEC, {})
    assert where.as_string(conn) == "TRUE" and values == []
    assert query(conn, {}) == ALL_DESC


def test_empty_filter_param_is_ignored(conn):
    assert query(conn, {"filter": ""}) == ALL_DESC


# ------------------------------------------------------------------------------- JSON-Logic ops


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"==": [var("name"), "fish"]}, [5]),
        ({"==": [var("name"), "FISH"]}, []),  # == is exact, case-sensitive
        ({"==": [var("size"), 5]}, [4, 2]),
        ({"==": [var("size"), "5"]}, [4, 2]),  # numeric strings coerce like Django does
        ({"==": [var("active"), True]}, [5, 3, 1]),
        ({"==": [var("created"), "2024-05-01T10:30:00Z"]}, [5]),  # same instant as +02:00
        ({"==": [var("owner"), None]}, [3]),
        ({"!=": [var("owner"), None]}, [6, 5, 4, 2, 1]),
        ({"!=": [var("owner"), "admin"]}, [6, 5, 3, 2]),  # keeps the NULL owner, like ~Q
        ({"<": [var("size"), 9]}, [4, 2]),
        ({"<=": [var("size"), 9]}, [5, 4, 2]),
        ({">": [var("size"), 9]}, [3, 1]),  # compared as ints: 10 > 9
        ({">=": [var("size"), 10]}, [3, 1]),
        ({">": [var("created"), "2024-04-15"]}, [6, 5]),
        ({"<": [8, var("size")]}, [5, 3, 1]),  # value first: mirrored
        ({"<=": [5, var("size"), 10]}, [5, 4, 2, 1]),  # inclusive range
        ({"<": [5, var("size"), 10]}, [5]),  # exclusive range
        ({"in": [var("project_id"), [1, 3]]}, [6, 2, 1]),
        ({"in": [var("owner"), ["user1", "user2", None]]}, [6, 2]),
        ({"in": [var("project_id"), []]}, []),
        ({"in": ["Cats", var("name")]}, [3, 1]),  # contains, case-sensitive
        ({"in": ["cats", var("name")]}, []),
        ({"in": ["100%", var("name")]}, [4]),  # LIKE wildcards are literal
        ({"in": ["_", var("name")]}, [4]),
        ({"in": [0, var("size")]}, [3, 1]),  # non-text fields are searched as text
        ({"var": "project_id"}, [6, 5, 3, 2, 1]),
        ({"!!": {"var": "owner"}}, [6, 5, 4, 2, 1]),
        ({"!!": [{"var": "owner"}]}, [6, 5, 4, 2, 1]),
        ({"!": {"var": "project_id"}}, [4]),
        ({"!": [{"==": [var("active"), True]}]}, [6, 4, 2]),  # NULL 'active' counts as not true
    ],
)
def test_operator(conn, rule, expected):
    assert filtered(conn, rule) == expected


def test_and_or_not_nested(conn):
    rule = {
        "or": [
            {"and": [{"==": [var("owner"), "admin"]}, {">": [var("size"), 6]}]},
            {"!": {"or": [{"<": [var("size"), 20]}, {"==": [var("active"), False]}]}},
        ]
    }
    # row 1: admin & 10; row 3: size 20 and active; row 6: size NULL, active NULL
    assert filtered(conn, rule) == [6, 3, 1]


def test_single_child_and(conn):
    assert filtered(conn, {"and": [{"==": [var("project_id"), 2]}]}) == [5, 3]


def test_cvat_ui_style_filter(conn):
    rule = {"and": [{"==": [var("owner"), "admin"]}, {"in": ["bird", var("name")]}]}
    assert filtered(conn, rule) == [4]


def test_values_are_parameters_not_sql(conn):
    evil = "x'); DROP TABLE items; --"
    where, values = build_where(
        SPEC, {"filter": json.dumps({"==": [var("name"), evil]}), "search": evil, "name": evil}
    )
    assert evil not in where.as_string(conn)
    assert evil in values
    assert query(conn, {"filter": json.dumps({"==": [var("name"), evil]})}) == []
    assert query(conn, {}) == ALL_DESC  # table still there


# ------------------------------------------------------------------------------------- search


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("cats", [3, 1]),  # case-insensitive contains
        ("ADMIN", [6, 4, 1]),  # matches name or owner
        ("user1", [5, 2]),  # 'User1' too
        ("cats alpha", [1]),  # every term must match
        ("cats,gamma", [3]),  # commas split too
        ('"cats alpha"', [1]),  # quoted phrase is one term
        ('"s a"', [1]),
        ("100%", [4]),  # wildcard characters are literal
        ("_", [4]),
        ("zebra", []),
        ("   ", ALL_DESC),
    ],
)
def test_search(conn, search, expected):
    assert query(conn, {"search": search}) == expected


def test_search_without_search_fields_is_ignored(conn):
    spec = ListSpec(fields=SPEC.fields, search_fields=(), simple_filters=(), ordering_fields=())
    assert query(conn, {"search": "cats"}, spec) == ALL_DESC


# --------------------------------------------------------------------------------------- sort


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("id", [1, 2, 3, 4, 5, 6]),
        ("-id", ALL_DESC),
        ("size", [2, 4, 5, 1, 3, 6]),  # numeric, NULL last; ties broken by id
        ("-size", [6, 3, 1, 5, 2, 4]),  # NULL first when descending (PostgreSQL default)
        ("created", [1, 2, 3, 4, 5, 6]),
        ("project_id,-size", [1, 2, 3, 5, 6, 4]),
        ("-project_id, name", [4, 6, 3, 5, 1, 2]),
        ("project_id,-id", [2, 1, 5, 3, 6, 4]),
        ("bogus", ALL_DESC),  # unknown terms are dropped, as in DRF
        ("bogus,-size", [6, 3, 1, 5, 2, 4]),
        ("", ALL_DESC),
    ],
)
def test_sort(conn, sort, expected):
    assert query(conn, {"sort": sort}) == expected


def test_sort_always_ends_with_id_tiebreak(conn):
    assert build_order(SPEC, {"sort": "-name"}).as_string(conn).endswith(', "id" ASC')
    assert build_order(SPEC, {"sort": "-id"}).as_string(conn) == '"id" DESC'
    assert query(conn, {"sort": "size", "filter": json.dumps({"==": [var("size"), 5]})}) == [2, 4]


def test_default_order_from_spec(conn):
    spec = ListSpec(
        fields=SPEC.fields,
        search_fields=(),
        simple_filters=(),
        ordering_fields=(),
        default_order="project_id",
    )
    assert query(conn, {}, spec) == [1, 2, 3, 5, 6, 4]


def test_strict_sort_rejects_unknown_terms():
    spec = ListSpec(
        fields=SPEC.fields,
        search_fields=(),
        simple_filters=(),
        ordering_fields=("id",),
        strict_sort=True,
    )
    with pytest.raises(ListQueryError) as info:
        build_order(spec, {"sort": "id,-active"})
    assert info.value.field == "sort" and "'active'" in str(info.value)


# ----------------------------------------------------------------------------- simple filters


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"owner": "admin"}, [4, 1]),
        ({"owner": "Admin"}, []),  # exact, case-sensitive (django-filter 'exact')
        ({"name": " fish "}, [5]),  # surrounding whitespace is stripped
        ({"project_id": "2"}, [5, 3]),
        ({"project_id": ""}, ALL_DESC),  # empty value: no filter
        ({"active": "False"}, [4, 2]),
        ({"active": "1"}, [5, 3, 1]),
        ({"created": "2024-03-01T00:00:00Z"}, [3]),
        ({"owner": "admin", "project_id": "1"}, [1]),
        ({"owner": "admin", "search": "bird"}, [4]),
        ({"page": "2", "org": ""}, ALL_DESC),  # not simple filters: ignored here
        ({"project_id": "2", "filter": json.dumps({">": [var("size"), 9]}), "sort": "id"}, [3]),
    ],
)
def test_simple_filters(conn, params, expected):
    assert query(conn, params) == expected


# -------------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    ("params", "field", "fragment"),
    [
        ({"filter": "{not json"}, "filter", "can't parse filter expression"),
        ({"filter": "{}"}, "filter", "shouldn't be empty"),
        ({"filter": "[]"}, "filter", "shouldn't be empty"),
        ({"filter": "5"}, "filter", "expected a non-empty JSON object"),
        ({"filter": '[{"var": "id"}]'}, "filter", "expected a non-empty JSON object"),
        ({"filter": '{"==": [{"var": "id"}, 1], "var": "id"}'}, "filter", "one operation"),
        ({"filter": '{"like": [{"var": "name"}, "x"]}'}, "filter", "operation 'like'"),
        ({"filter": '{"==": [{"var": "secret"}, 1]}'}, "filter", "term 'secret'"),
        ({"filter": '{"var": "secret"}'}, "filter", "term 'secret'"),
        ({"filter": '{"in": ["x", {"var": "secret"}]}'}, "filter", "term 'secret'"),
        ({"filter": '{"==": [{"var": "size"}, "abc"]}'}, "filter", "expects an integer"),
        ({"filter": '{"==": [{"var": "size"}, 1.5]}'}, "filter", "term 'size'"),
        ({"filter": '{"==": [{"var": "size"}, 99999999999999999999]}'}, "filter", "'size'"),
        ({"filter": '{"==": [{"var": "active"}, "maybe"]}'}, "filter", "term 'active'"),
        ({"filter": '{"<": [{"var": "created"}, "yesterday"]}'}, "filter", "term 'created'"),
        ({"filter": '{"==": [{"var": "name"}, true]}'}, "filter", "term 'name'"),
        ({"filter": '{"<": [{"var": "size"}, null]}'}, "filter", "with null"),
        ({"filter": '{"==": [{"var": "size"}]}'}, "filter", "operation '=='"),
        ({"filter": '{"==": [{"var": "size"}, {"var": "id"}]}'}, "filter", "operation '=='"),
        ({"filter": '{"==": [1, 2]}'}, "filter", "operation '=='"),
        ({"filter": '{"<": [1, 2]}'}, "filter", "operation '<'"),
        ({"filter": '{"and": {"var": "id"}}'}, "filter", "requires a non-empty list"),
        ({"filter": '{"or": []}'}, "filter", "requires a non-empty list"),
        ({"filter": '{"!": "id"}'}, "filter", "operation '!'"),
        ({"filter": '{"in": [{"var": "id"}, 3]}'}, "filter", "operation 'in'"),
        ({"filter": '{"in": [{"var": "id"}, [[1]]]}'}, "filter", "requires a list of values"),
        ({"filter": '{"in": [true, {"var": "name"}]}'}, "filter", "operation 'in'"),
        ({"filter": '{"==": [{"var": "name"}, "a\\u0000b"]}'}, "filter", "Null characters"),
        ({"filter": '{"!": ' * 100 + '{"var": "id"}' + "}" * 100}, "filter", "too deeply"),
        ({"filter": "[" * 100_000 + "]" * 100_000}, "filter", ""),
        ({"filter": '{"like": ' + "[" * 500 + "]" * 500 + "}"}, "filter", "operation 'like'"),
        ({"search": "a\x00b"}, "search", "Null characters"),
        ({"project_id": "abc"}, "project_id", "Enter a number."),
        ({"project_id": "1.0"}, "project_id", "Enter a number."),
        ({"project_id": "1_000"}, "project_id", "Enter a number."),
        ({"active": "yes please"}, "active", "Enter true or false."),
        ({"created": "soon"}, "created", "Enter a valid date/time."),
        ({"owner": "ad\x00min"}, "owner", "Null characters"),
    ],
)
def test_bad_input(params, field, fragment):
    with pytest.raises(ListQueryError) as info:
        build_where(SPEC, params)
    assert info.value.field == field
    assert fragment in str(info.value)
    assert info.value.detail.startswith(f"{field}: ")
    assert isinstance(info.value, ValueError)


def test_bad_spec_is_a_programming_error():
    fields = SPEC.fields
    with pytest.raises(ValueError, match="unknown fields"):
        ListSpec(fields=fields, search_fields=("nope",), simple_filters=(), ordering_fields=())
    with pytest.raises(ValueError, match="reserved"):
        ListSpec(
            fields={**fields, "sort": fields["name"]},
            search_fields=(),
            simple_filters=("sort",),
            ordering_fields=(),
        )
    with pytest.raises(ValueError, match="default_order"):
        ListSpec(
            fields=fields,
            search_fields=(),
            simple_filters=(),
            ordering_fields=(),
            default_order="-nope",
        )


def test_spec_without_id_field_still_breaks_ties_on_id_column(conn):
    fields = {k: v for k, v in SPEC.fields.items() if k != "id"}
    spec = ListSpec(
        fields=fields,
        search_fields=(),
        simple_filters=(),
        ordering_fields=("size",),
        default_order="size",
    )
    assert build_order(spec, {}).as_string(conn).endswith(', "id" ASC')
    assert query(conn, {"sort": "-size"}, spec) == [6, 3, 1, 5, 2, 4]


def test_cast_field_compares_and_orders_by_kind(conn):
    fields = {**SPEC.fields, "id": Field(sql.Identifier("id"), "int")}
    spec = ListSpec(
        fields=fields, search_fields=(), simple_filters=("id",), ordering_fields=("id",)
    )
    assert build_order(spec, {"sort": "id"}).as_string(conn) == 'CAST("id" AS bigint) ASC'
    assert query(conn, {"id": "3"}, spec) == [3]
    assert query(conn, {"sort": "id"}, spec) == [1, 2, 3, 4, 5, 6]
