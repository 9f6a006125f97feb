"""Translate CVAT list-query parameters into safe SQL over a read-model table.

This module holds the list-endpoint query language of CVAT's REST API -- the JSON-Logic
``filter``, the free-text ``search``, the ``sort`` order and the per-field "simple filters"
(``?name=...&task_id=...``) -- and turns it into ``psycopg.sql`` compositions: a WHERE body with
``%s`` placeholders plus the list of values to bind, and an ORDER BY body.  No request value is
ever formatted into SQL text; field expressions come only from the server-side ``ListSpec``.

Behaviour follows CVAT's ``cvat/apps/engine/filters.py`` and the DRF backends it extends:

* ``filter`` (``JsonLogicFilter``): operations ``and``, ``or`` (non-empty lists), ``!``, ``!!``,
  bare ``{"var": f}`` (= "f is not null"), ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``,
  ``{"<=": [lo, {"var": f}, hi]}`` (inclusive range), ``{"in": [{"var": f}, [v, ...]]}``
  (membership) and ``{"in": ["text", {"var": f}]}`` (case-sensitive substring, like Django's
  ``__contains``).  ``== null`` means IS NULL; ``!=`` and ``!`` keep NULL rows, as Django's
  ``~Q`` does.  Empty, malformed or unknown input is rejected with a 400-style message.
* ``search`` (DRF ``SearchFilter``): terms split on whitespace and commas (quoted phrases kept
  whole); every term must match at least one search field, case-insensitively, as a substring.
* simple filters (``SimpleFilter``, a django-filter ``FilterSet``): exact equality, the value
  is stripped and an empty value means "no filter"; a non-integer for an int field is an error.
* ``sort`` (DRF ``OrderingFilter`` with ``ordering_param = "sort"``): comma-separated names, a
  leading ``-`` for descending; names outside ``ordering_fields`` are silently dropped (the
  default order is used if none remain) unless ``ListSpec.strict_sort`` is set.  We always add a
  final tiebreak on ``id`` so paging is stable.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, NamedTuple

from psycopg import sql

Kind = Literal["int", "text", "bool", "datetime"]

FILTER_PARAM = "filter"
SEARCH_PARAM = "search"
SORT_PARAM = "sort"
RESERVED_PARAMS = frozenset({FILTER_PARAM, SEARCH_PARAM, SORT_PARAM})

_SQL_TYPES: Mapping[str, str] = {
    "int": "bigint",
    "text": "text",
    "bool": "boolean",
    "datetime": "timestamptz",
}
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
_INT_RE = re.compile(r"[+-]?[0-9]+")
_TRUE_WORDS = frozenset({"true", "t", "1"})
_FALSE_WORDS = frozenset({"false", "f", "0"})
_MAX_DEPTH = 64
_KIND_WORDS: Mapping[str, str] = {
    "int": "an integer",
    "text": "a string",
    "bool": "a boolean",
    "datetime": "an ISO 8601 date/time",
}
_COMPARISONS: Mapping[str, str] = {"<": "<", "<=": "<=", ">": ">", ">=": ">="}
_MIRRORED: Mapping[str, str] = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


@dataclass(frozen=True)
class Field:
    """A filterable/sortable column: an SQL expression and the kind of value it holds.

    ``expr`` may yield the value as text (e.g. ``doc->>'size'``); it is cast to the SQL type of
    ``kind`` (bigint, text, boolean, timestamptz) wherever it is compared or ordered.  Pass
    ``cast=False`` when ``expr`` already has a type of that kind (e.g. an ``integer`` column), so
    that indexes on the bare expression stay usable.
    """

    expr: sql.Composable
    kind: Kind
    cast: bool = True

    def typed(self) -> sql.Composable:
        """The expression as a value of its kind: cast unless ``cast`` is False."""
        if not self.cast:
            return self.expr
        return sql.SQL("CAST({} AS {})").format(self.expr, sql.SQL(_SQL_TYPES[self.kind]))


class ListQueryError(ValueError):
    """Bad filter/sort/search input; str(err) is a message fit for a 400 body.

    ``.field`` names the query parameter at fault (``'filter'``, ``'sort'``, ``'search'`` or a
    simple filter such as ``'task_id'``).  CVAT answers these as ``["filter: <message>"]`` for
    the JSON filter and ``{"task_id": ["<message>"]}`` for simple filters; ``.detail`` gives the
    former spelling.
    """

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field

    @property
    def detail(self) -> str:
        """The message prefixed with the parameter name, as CVAT words filter errors."""
        return f"{self.field}: {self}"


@dataclass(frozen=True)
class ListSpec:
    """What one list endpoint allows: its fields and which of them each parameter may use."""

    fields: Mapping[str, Field]
    search_fields: Sequence[str]
    simple_filters: Sequence[str]
    ordering_fields: Sequence[str]
    default_order: str = "-id"
    strict_sort: bool = False

    def __post_init__(self) -> None:
        for name, fld in self.fields.items():
            if fld.kind not in _SQL_TYPES:
                raise ValueError(f"field {name!r} has unknown kind {fld.kind!r}")
        for group in ("search_fields", "simple_filters", "ordering_fields"):
            unknown = [n for n in getattr(self, group) if n not in self.fields]
            if unknown:
                raise ValueError(f"{group} name unknown fields: {unknown}")
        reserved = RESERVED_PARAMS.intersection(self.simple_filters)
        if reserved:
            raise ValueError(f"query parameters {sorted(reserved)} are reserved")
        default = _parse_sort(self.default_order)
        if not default or any(name not in self.fields for name, _ in default):
            raise ValueError(f"bad default_order {self.default_order!r}")


class _Clause(NamedTuple):
    """A piece of SQL with ``%s`` placeholders and the values they take, in order."""

    text: sql.Composable
    values: tuple[object, ...]


# --------------------------------------------------------------------------- public entry points


def build_where(spec: ListSpec, params: Mapping[str, str]) -> tuple[sql.Composable, list[object]]:
    """WHERE body (``TRUE`` when nothing applies) and its values for the request's params."""
    clauses = [*_simple_filter_clauses(spec, params), *_search_clauses(spec, params)]
    raw_filter = params.get(FILTER_PARAM)
    if raw_filter:
        clauses.append(_filter_clause(spec, raw_filter))
    if not clauses:
        return sql.SQL("TRUE"), []
    joined = _join(clauses, "AND")
    return joined.text, list(joined.values)


def build_order(spec: ListSpec, params: Mapping[str, str]) -> sql.Composable:
    """ORDER BY body for ``?sort=`` (or the spec's default), ending with a tiebreak on id."""
    terms = _requested_sort(spec, params.get(SORT_PARAM) or "")
    if not terms:
        terms = _parse_sort(spec.default_order)
    parts = [_order_item(spec.fields[name], desc) for name, desc in terms]
    if all(name != "id" for name, _ in terms):
        parts.append(_order_item(_id_field(spec), False))
    return sql.SQL(", ").join(parts)


# --------------------------------------------------------------------------------- shared helpers


def _join(clauses: Sequence[_Clause], op: Literal["AND", "OR"]) -> _Clause:
    if len(clauses) == 1:
        return clauses[0]
    text = sql.SQL(f" {op} ").join(sql.SQL("({})").format(c.text) for c in clauses)
    return _Clause(text, tuple(v for c in clauses for v in c.values))


def _show(value: object, limit: int = 120) -> str:
    """A short JSON rendering of (part of) the user's input for error messages."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (RecursionError, ValueError):
        text = "<unprintable>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_no_nul(text: str, *, field: str) -> str:
    if "\x00" in text:
        raise ListQueryError("Null characters are not allowed.", field=field)
    return text


def _like_pattern(text: str) -> str:
    """``%text%`` with LIKE's metacharacters escaped (backslash is LIKE's default escape)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _parse_int(text: str) -> int | None:
    text = text.strip()
    if not _INT_RE.fullmatch(text):
        return None
    value = int(text)
    return value if _INT_MIN <= value <= _INT_MAX else None


def _parse_bool(text: str) -> bool | None:
    word = text.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    return None


def _parse_datetime(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# --------------------------------------------------------------------------------- simple filters

_PARAM_PARSERS: Mapping[str, tuple[Callable[[str], object | None], str]] = {
    "int": (_parse_int, "Enter a number."),
    "bool": (_parse_bool, "Enter true or false."),
    "datetime": (_parse_datetime, "Enter a valid date/time."),
    "text": (lambda text: text, ""),
}


def _simple_filter_clauses(spec: ListSpec, params: Mapping[str, str]) -> Iterator[_Clause]:
    for name in spec.simple_filters:
        raw = params.get(name)
        if raw is None or not raw.strip():
            continue  # django-filter ignores empty values
        fld = spec.fields[name]
        value = _parse_param(fld.kind, _check_no_nul(raw, field=name).strip(), name)
        yield _Clause(sql.SQL("{} = {}").format(fld.typed(), sql.Placeholder()), (value,))


def _parse_param(kind: str, raw: str, name: str) -> object:
    parse, message = _PARAM_PARSERS[kind]
    value = parse(raw)
    if value is None:
        raise ListQueryError(message, field=name)
    return value


# ------------------------------------------------------------------------------------------ search

# A token runs to the next whitespace, except that quoted runs may contain whitespace; a token
# with an unbalanced quote is taken whole up to the next whitespace.
_SEARCH_TOKEN = re.compile(r"""(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s"'])+(?!\S)|\S+""")


def _search_terms(raw: str) -> list[str]:
    """Split like DRF: on whitespace, keeping quoted phrases whole, then on commas."""
    terms: list[str] = []
    for token in _SEARCH_TOKEN.findall(raw):
        token = token.strip(",")
        if len(token) >= 2 and token[0] in "\"'" and token[-1] == token[0]:
            quote = token[0]
            terms.append(token[1:-1].replace("\\" + quote, quote).replace("\\\\", "\\"))
        else:
            terms.extend(part.strip() for part in token.split(",") if part.strip())
    return [t for t in terms if t]


def _search_clauses(spec: ListSpec, params: Mapping[str, str]) -> Iterator[_Clause]:
    raw = params.get(SEARCH_PARAM) or ""
    terms = _search_terms(_check_no_nul(raw, field=SEARCH_PARAM))
    if not spec.search_fields:
        return
    exprs = [sql.SQL("CAST({} AS text)").format(spec.fields[n].expr) for n in spec.search_fields]
    for term in terms:
        pattern = _like_pattern(term)
        yield _join(
            [
                _Clause(sql.SQL("{} ILIKE {}").format(e, sql.Placeholder()), (pattern,))
                for e in exprs
            ],
            "OR",
        )


# -------------------------------------------------------------------------------------------- sort


def _parse_sort(raw: str) -> list[tuple[str, bool]]:
    """``"-a, b"`` -> ``[("a", True), ("b", False)]``; empty terms are dropped."""
    terms = []
    for term in (t.strip() for t in raw.split(",")):
        desc = term.startswith("-")
        name = term[1:] if desc else term
        if name:
            terms.append((name, desc))
    return terms


def _requested_sort(spec: ListSpec, raw: str) -> list[tuple[str, bool]]:
    terms = _parse_sort(raw)
    unknown = [name for name, _ in terms if name not in spec.ordering_fields]
    if unknown and spec.strict_sort:
        raise ListQueryError(
            f"term '{unknown[0]}' is not supported; available: {list(spec.ordering_fields)}",
            field=SORT_PARAM,
        )
    return [(name, desc) for name, desc in terms if name in spec.ordering_fields]


def _order_item(fld: Field, desc: bool) -> sql.Composable:
    return sql.SQL("{} {}").format(fld.typed(), sql.SQL("DESC" if desc else "ASC"))


def _id_field(spec: ListSpec) -> Field:
    return spec.fields.get("id") or Field(sql.Identifier("id"), "int", cast=False)


# ----------------------------------------------------------------------------- JSON-Logic filter


def _filter_error(message: str) -> ListQueryError:
    return ListQueryError(message, field=FILTER_PARAM)


def _filter_clause(spec: ListSpec, raw: str) -> _Clause:
    try:
        rules = json.loads(raw)
    except json.JSONDecodeError as err:
        raise _filter_error(f"can't parse filter expression: {err}") from err
    except RecursionError as err:
        raise _filter_error("filter expression is nested too deeply") from err
    if not rules:
        raise _filter_error("filter shouldn't be empty")
    return _FilterBuilder(spec.fields).build(rules, 0)


def _var_name(node: object) -> str | None:
    """The field name of a ``{"var": "name"}`` (or ``{"var": ["name"]}``) node, else None."""
    if not isinstance(node, dict) or len(node) != 1 or "var" not in node:
        return None
    name = node["var"]
    if isinstance(name, list) and len(name) == 1:
        name = name[0]
    return name if isinstance(name, str) else None


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


class _FilterBuilder:
    """Walks a parsed JSON-Logic tree and emits one parameterised SQL condition."""

    def __init__(self, fields: Mapping[str, Field]) -> None:
        self._fields = fields
        self._handlers: Mapping[str, Callable[[str, object, int], _Clause]] = {
            "and": self._logical,
            "or": self._logical,
            "!": self._not,
            "!!": self._double_not,
            "var": self._var,
            "==": self._compare,
            "!=": self._compare,
            "<": self._compare,
            "<=": self._compare,
            ">": self._compare,
            ">=": self._compare,
            "in": self._in,
        }

    def build(self, node: object, depth: int) -> _Clause:
        if depth > _MAX_DEPTH:
            raise _filter_error("filter expression is nested too deeply")
        if not isinstance(node, dict) or not node:
            raise _filter_error(f"expected a non-empty JSON object, got {_show(node)}")
        if len(node) != 1:
            raise _filter_error(f"expected one operation per object, got {_show(sorted(node))}")
        ((op, args),) = node.items()
        handler = self._handlers.get(op)
        if handler is None:
            raise self._unsupported(op, args)
        return handler(op, args, depth + 1)

    # --- helpers

    @staticmethod
    def _unsupported(op: str, args: object) -> ListQueryError:
        return _filter_error(f"operation '{op}' with arguments {_show(args)} is not supported")

    def _field(self, name: str) -> Field:
        fld = self._fields.get(name)
        if fld is None:
            raise _filter_error(f"term '{name}' is not supported")
        return fld

    def _value(self, fld: Field, name: str, value: object) -> object:
        """Coerce a JSON value to the field's kind, or raise naming the term."""
        coerced = _coerce_json(fld.kind, value)
        if coerced is None:
            expected = _KIND_WORDS[fld.kind]
            raise _filter_error(f"term '{name}' expects {expected}, got {_show(value)}")
        if isinstance(coerced, str):
            _check_no_nul(coerced, field=FILTER_PARAM)
        return coerced

    # --- operations

    def _logical(self, op: str, args: object, depth: int) -> _Clause:
        if not isinstance(args, list) or not args:
            raise _filter_error(f"operation '{op}' requires a non-empty list, got {_show(args)}")
        parts = [self.build(arg, depth) for arg in args]
        return _join(parts, "AND" if op == "and" else "OR")

    def _operand(self, op: str, args: object, depth: int) -> _Clause:
        """The single operand of ``!``/``!!``: ``{...}`` or JSON-Logic's ``[{...}]``."""
        if isinstance(args, list) and len(args) == 1:
            args = args[0]
        if not isinstance(args, dict):
            raise self._unsupported(op, args)
        return self.build(args, depth)

    def _not(self, op: str, args: object, depth: int) -> _Clause:
        inner = self._operand(op, args, depth)
        # Unknown (NULL) counts as false before negating, as Django's ~Q keeps NULL rows.
        return _Clause(sql.SQL("({}) IS NOT TRUE").format(inner.text), inner.values)

    def _double_not(self, op: str, args: object, depth: int) -> _Clause:
        return self._operand(op, args, depth)

    def _var(self, op: str, args: object, depth: int) -> _Clause:
        name = _var_name({op: args})
        if name is None:
            raise self._unsupported(op, args)
        return _Clause(sql.SQL("{} IS NOT NULL").format(self._field(name).expr), ())

    def _compare(self, op: str, args: object, depth: int) -> _Clause:
        if isinstance(args, list) and len(args) == 3 and op in ("<", "<="):
            return self._between(op, args)
        if not isinstance(args, list) or len(args) != 2:
            raise self._unsupported(op, args)
        name, value, field_op = _var_name(args[0]), args[1], op
        if name is None:  # JSON-Logic also allows the value first: {"<": [5, {"var": f}]}
            name, value, field_op = _var_name(args[1]), args[0], _MIRRORED[op]
        if name is None or not _is_scalar(value):
            raise self._unsupported(op, args)
        return self._compare_field(field_op, name, value)

    def _compare_field(self, op: str, name: str, value: object) -> _Clause:
        fld = self._field(name)
        if value is None:
            if op not in ("==", "!="):
                raise _filter_error(f"operation '{op}' can't compare term '{name}' with null")
            return _Clause(
                sql.SQL("{} IS {}NULL").format(fld.expr, sql.SQL("NOT " if op == "!=" else "")), ()
            )
        operator = {"==": "=", "!=": "IS DISTINCT FROM"}.get(op) or _COMPARISONS[op]
        text = sql.SQL("{} {} {}").format(fld.typed(), sql.SQL(operator), sql.Placeholder())
        return _Clause(text, (self._value(fld, name, value),))

    def _between(self, op: str, args: list[object]) -> _Clause:
        low, var, high = args
        name = _var_name(var)
        if (
            name is None
            or low is None
            or high is None
            or not (_is_scalar(low) and _is_scalar(high))
        ):
            raise self._unsupported(op, args)
        fld = self._field(name)
        low_op = sql.SQL(">=" if op == "<=" else ">")
        high_op = sql.SQL(op)
        text = sql.SQL("{f} {lo} {p} AND {f} {hi} {p}").format(
            f=fld.typed(), lo=low_op, hi=high_op, p=sql.Placeholder()
        )
        return _Clause(text, (self._value(fld, name, low), self._value(fld, name, high)))

    def _in(self, op: str, args: object, depth: int) -> _Clause:
        if not isinstance(args, list) or len(args) != 2:
            raise self._unsupported(op, args)
        member_of, container_var = _var_name(args[0]), _var_name(args[1])
        if member_of is not None and isinstance(args[1], list):
            return self._membership(member_of, args[1])
        if container_var is not None and isinstance(args[0], str | int | float):
            if not isinstance(args[0], bool):
                return self._contains(container_var, str(args[0]))
        raise self._unsupported(op, args)

    def _membership(self, name: str, items: list[object]) -> _Clause:
        fld = self._field(name)
        if not all(_is_scalar(item) for item in items):
            raise _filter_error(f"operation 'in' requires a list of values, got {_show(items)}")
        # Like Django's __in lookup, null members are dropped (they can never match).
        values = [self._value(fld, name, item) for item in items if item is not None]
        text = sql.SQL("{} = ANY(CAST({} AS {}[]))").format(
            fld.typed(), sql.Placeholder(), sql.SQL(_SQL_TYPES[fld.kind])
        )
        return _Clause(text, (values,))

    def _contains(self, name: str, needle: str) -> _Clause:
        fld = self._field(name)
        _check_no_nul(needle, field=FILTER_PARAM)
        # Django's __contains: case-sensitive LIKE over the value rendered as text.
        text = sql.SQL("CAST({} AS text) LIKE {}").format(fld.expr, sql.Placeholder())
        return _Clause(text, (_like_pattern(needle),))


def _coerce_json(kind: str, value: object) -> object | None:
    """A JSON value as the Python value for ``kind``; None when it can't be one."""
    if isinstance(value, bool):
        return value if kind == "bool" else None
    if kind == "int":
        if isinstance(value, int):
            return value if _INT_MIN <= value <= _INT_MAX else None
        if isinstance(value, float):
            return int(value) if math.isfinite(value) and value.is_integer() else None
        return _parse_int(value) if isinstance(value, str) else None
    if kind == "text":
        return str(value) if isinstance(value, str | int | float) else None
    if kind == "bool":
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        return _parse_bool(value) if isinstance(value, str) else None
    return _parse_datetime(value) if isinstance(value, str) else None
