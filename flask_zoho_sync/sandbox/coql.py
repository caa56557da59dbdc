"""`POST /crm/v8/coql`: Zoho's query language, the subset a sync (or a host app) speaks.

The parser is the sandbox's own, written from Zoho's pages (docs/zoho-api-notes.md, "COQL")
and not shared with the client's query builder: a client bug in quoting or paging must meet
a reading of Zoho's rules that did not come from the same hands. What is kept: one select
of plain fields (at most 50, no duplicates) from one module; a WHERE (required, as Zoho's
error list says) of comparisons joined by ``and``/``or`` where more than two need brackets,
with the comparators each field type takes; ORDER BY; ``limit N``, ``limit offset, N`` or
``limit N offset M`` with at most 2,000 records a call and 100,000 reachable by offset.
Joins, aliases and aggregates are refused as an invalid query rather than half-imitated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .fields import FieldSpec
from .query import QueryError
from .records import render_value
from .search import criteria_value
from .state import SandboxState
from .zoho_time import parse_datetime

MAX_LIMIT = 2000
DEFAULT_LIMIT = 200
MAX_SELECT_FIELDS = 50
MAX_IN_VALUES = 50
MAX_CRITERIA = 25
MAX_ORDER_FIELDS = 10
#: Types a select cannot read (Zoho's COQL-Limitations list); territories only in a select.
UNSELECTABLE = ("multiselectlookup", "subform", "fileupload", "imageupload")
NOT_IN_CRITERIA = ("textarea", "territories", *UNSELECTABLE)

_TEXT_OPS = ("=", "!=", "like", "not like", "in", "not in")
_LOOKUP_OPS = ("=", "!=", "in", "not in")
_ORDERED_OPS = ("=", "!=", ">", ">=", "<", "<=", "between", "not between", "in", "not in")
_OPERATORS = {
    **dict.fromkeys(
        ("text", "email", "phone", "website", "picklist", "multiselectpicklist", "profileimage"),
        _TEXT_OPS,
    ),
    **dict.fromkeys(("lookup", "ownerlookup", "layout"), _LOOKUP_OPS),
    **dict.fromkeys(
        ("date", "datetime", "integer", "bigint", "double", "currency", "id"), _ORDERED_OPS
    ),
    "boolean": ("=",),
}
_ID_SPEC = FieldSpec("id", "Record Id", "id", writable=False, system=True)

_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^'\\]|\\.)*')|(?P<number>-?\d+(?:\.\d+)?)(?![\w.])"
    r"|(?P<op>!=|>=|<=|=|>|<)|(?P<punct>[(),])|(?P<word>[A-Za-z_$][\w$.#-]*))"
)


def _syntax_error(near: str, column: int) -> QueryError:
    return QueryError(
        "SYNTAX_ERROR", "invalid query formed", {"line": 1, "column": column, "near": near}
    )


def _invalid(message: str, **details: Any) -> QueryError:
    return QueryError("INVALID_QUERY", message, details)


def _limit_exceeded(message: str, **details: Any) -> QueryError:
    return QueryError("LIMIT_EXCEEDED", message, details)


@dataclass(frozen=True)
class Token:
    kind: str  # string, number, op, punct, word
    text: str
    column: int

    def is_word(self, *words: str) -> bool:
        return self.kind == "word" and self.text.lower() in words


def tokenize(query: str) -> list[Token]:
    """Split ``query`` into tokens; a character no token starts with is a syntax error."""
    tokens: list[Token] = []
    at = 0
    while at < len(query):
        if query[at:].strip() == "":
            break
        match = _TOKEN.match(query, at)
        if match is None or match.end() == at:
            column = len(query) - len(query[at:].lstrip()) + 1
            raise _syntax_error(query[column - 1 : column + 9], column)
        kind = match.lastgroup or "word"
        text = match.group(kind)
        if kind == "string":
            text = re.sub(r"\\(.)", r"\1", text[1:-1])
        tokens.append(Token(kind, text, match.start(kind) + 1))
        at = match.end()
    return tokens


@dataclass
class Comparison:
    spec: FieldSpec
    operator: str
    values: list[Any]


@dataclass
class Junction:
    operator: str  # and / or
    parts: list[Comparison | Junction]


@dataclass
class Select:
    module: str
    fields: list[FieldSpec]
    where: Comparison | Junction | None = None
    order: list[tuple[FieldSpec, bool]] = field(default_factory=list)  # (field, descending)
    limit: int = DEFAULT_LIMIT
    offset: int = 0


class QueryParser:
    """Recursive descent over the tokens; each method consumes one piece of the grammar."""

    def __init__(self, state: SandboxState, query: str) -> None:
        self.state = state
        self.query = query
        self.tokens = tokenize(query)
        self.at = 0
        self.specs: dict[str, FieldSpec] = {}
        self.criteria = 0
        #: The LIMIT the query asks for, known even when the query is refused: Zoho
        #: prices a query by it (credit_costs.coql_credits).
        self.limit_asked = DEFAULT_LIMIT

    # -- token helpers ---------------------------------------------------------------
    def _peek(self) -> Token | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def _next(self, what: str) -> Token:
        token = self._peek()
        if token is None:
            raise _syntax_error(what, len(self.query) + 1)
        self.at += 1
        return token

    def _expect_word(self, *words: str) -> Token:
        token = self._next(words[0])
        if not token.is_word(*words):
            raise _syntax_error(token.text, token.column)
        return token

    def _accept_word(self, *words: str) -> bool:
        token = self._peek()
        if token is not None and token.is_word(*words):
            self.at += 1
            return True
        return False

    def _accept_punct(self, char: str) -> bool:
        token = self._peek()
        if token is not None and token.kind == "punct" and token.text == char:
            self.at += 1
            return True
        return False

    # -- clauses ---------------------------------------------------------------------
    def parse(self) -> Select:
        first = self._peek()
        if first is None or not first.is_word("select"):
            raise QueryError("SYNTAX_ERROR", "invalid query formed", {"clause": "select"})
        self.at += 1
        names = self._select_list()
        if not self._accept_word("from"):
            raise QueryError("SYNTAX_ERROR", "invalid query formed", {"clause": "from"})
        module = self._module()
        selected = [self._field(name, "select") for name in names]
        query = Select(module, selected)
        if not self._accept_word("where"):
            # Zoho's error list: a query without "the where clause" is a syntax error.
            raise QueryError("SYNTAX_ERROR", "invalid query formed", {"clause": "where"})
        query.where = self._condition()
        if self._accept_word("order"):
            self._expect_word("by")
            query.order = self._order_list()
        if self._accept_word("limit"):
            self._limit(query)
        if self._accept_word("offset"):
            query.offset = self._count("offset")
        leftover = self._peek()
        if leftover is not None:
            raise _syntax_error(leftover.text, leftover.column)
        return query

    def _select_list(self) -> list[str]:
        names: list[str] = []
        while True:
            token = self._next("from")
            if token.kind not in ("word", "string") or token.is_word("from"):
                raise _syntax_error(token.text, token.column)
            if token.text in names:
                raise QueryError(
                    "DUPLICATE_DATA", "duplicate data", {"column_name": token.text}, 400
                )
            names.append(token.text)
            if not self._accept_punct(","):
                break
        if len(names) > MAX_SELECT_FIELDS:
            raise _limit_exceeded(
                "select columns limit exceeded", clause="select", limit=MAX_SELECT_FIELDS
            )
        return names

    def _module(self) -> str:
        token = self._next("module")
        if token.kind != "word" or token.text not in self.state.data["records"]:
            raise _invalid("invalid query formed", module=token.text, reason="invalid module")
        self.specs = self.state.field_map(token.text)
        return token.text

    def _field(self, name: str, clause: str) -> FieldSpec:
        spec = _ID_SPEC if name == "id" else self.specs.get(name)
        if spec is None:
            raise _invalid("column given seems to be invalid", column_name=name, clause=clause)
        if spec.data_type in UNSELECTABLE:
            raise _invalid("data type not supported", column_name=name, data_type=spec.data_type)
        return spec

    def _order_list(self) -> list[tuple[FieldSpec, bool]]:
        order: list[tuple[FieldSpec, bool]] = []
        while True:
            token = self._next("field")
            if token.kind not in ("word", "string"):
                raise _syntax_error(token.text, token.column)
            spec = self._field(token.text, "order by")
            if any(seen.api_name == spec.api_name for seen, _ in order):
                raise QueryError("DUPLICATE_DATA", "duplicate data", {"clause": "order by"})
            descending = self._accept_word("desc")
            if not descending:
                self._accept_word("asc")
            order.append((spec, descending))
            if not self._accept_punct(","):
                break
        if len(order) > MAX_ORDER_FIELDS:
            raise _limit_exceeded("order by limit exceeded", clause="order by")
        return order

    def _count(self, clause: str) -> int:
        token = self._next(clause)
        if token.kind != "number" or not token.text.isdigit():
            raise _syntax_error(token.text, token.column)
        return int(token.text)

    def _limit(self, query: Select) -> None:
        first = self._count("limit")
        if self._accept_punct(","):
            query.offset, query.limit = first, self._count("limit")
        else:
            query.limit = first
        self.limit_asked = query.limit
        if query.limit < 1:
            raise _invalid("value given seems to be invalid for the column", clause="limit")
        if query.limit > MAX_LIMIT:
            raise _limit_exceeded("limit exceeded", clause="limit", limit=MAX_LIMIT)

    # -- criteria --------------------------------------------------------------------
    def _condition(self) -> Comparison | Junction:
        """One term, or two joined by and/or: a third needs brackets (Zoho's rule)."""
        left = self._term()
        token = self._peek()
        if token is None or not token.is_word("and", "or"):
            return left
        self.at += 1
        right = self._term()
        after = self._peek()
        if after is not None and after.is_word("and", "or"):
            raise _syntax_error(after.text, after.column)
        return Junction(token.text.lower(), [left, right])

    def _term(self) -> Comparison | Junction:
        if self._accept_punct("("):
            inner = self._condition()
            if not self._accept_punct(")"):
                token = self._peek()
                raise _syntax_error(token.text if token else ")", token.column if token else 0)
            return inner
        return self._comparison()

    def _comparison(self) -> Comparison:
        token = self._next("criteria")
        if token.kind not in ("word", "string"):
            raise _syntax_error(token.text, token.column)
        spec = self._field(token.text, "where")
        self.criteria += 1
        if self.criteria > MAX_CRITERIA:
            raise _limit_exceeded("criteria limit exceeded", clause="where", limit=MAX_CRITERIA)
        if spec.data_type in NOT_IN_CRITERIA:
            raise _invalid(
                "data type not supported", column_name=spec.api_name, data_type=spec.data_type
            )
        operator = self._operator()
        if operator in ("is null", "is not null"):
            return Comparison(spec, operator, [])
        allowed = _OPERATORS.get(spec.data_type, ())
        if operator not in allowed:
            raise _invalid("invalid query formed", column_name=spec.api_name, operator=operator)
        return Comparison(spec, operator, self._operands(spec, operator))

    def _operator(self) -> str:
        token = self._next("operator")
        if token.kind == "op":
            return token.text
        negated = token.is_word("not")
        if negated:
            token = self._next("operator")
        if token.is_word("is") and not negated:
            is_not = self._accept_word("not")
            self._expect_word("null")
            return "is not null" if is_not else "is null"
        if token.is_word("like", "in", "between"):
            return ("not " if negated else "") + token.text.lower()
        raise _syntax_error(token.text, token.column)

    def _operands(self, spec: FieldSpec, operator: str) -> list[Any]:
        if operator.endswith("between"):
            low = self._value(spec)
            self._expect_word("and")
            return [low, self._value(spec)]
        if operator.endswith("in"):
            if not self._accept_punct("("):
                token = self._next("(")
                raise _syntax_error(token.text, token.column)
            values = [self._value(spec)]
            while self._accept_punct(","):
                values.append(self._value(spec))
            if not self._accept_punct(")"):
                token = self._next(")")
                raise _syntax_error(token.text, token.column)
            if len(values) > MAX_IN_VALUES:
                raise _limit_exceeded(
                    "in values limit exceeded", operator=operator, limit=MAX_IN_VALUES
                )
            return values
        if operator.endswith("like"):
            token = self._next("value")
            if token.kind != "string":
                raise _syntax_error(token.text, token.column)
            return [_like_pattern(token.text)]
        return [self._value(spec)]

    def _value(self, spec: FieldSpec) -> Any:
        token = self._next("value")
        if token.kind not in ("string", "number", "word"):
            raise _syntax_error(token.text, token.column)
        return typed_value(spec, token.text)


def _like_pattern(text: str) -> re.Pattern[str]:
    parts = [re.escape(part) for part in text.lower().split("%")]
    return re.compile("^" + ".*".join(parts) + "$", re.DOTALL)


def typed_value(spec: FieldSpec, text: str) -> Any:
    """A criteria value read as its field's type; the wrong type is INVALID_QUERY."""
    kinds = ("integer", "bigint", "id")
    try:
        return criteria_value(spec.data_type, text, integer_kinds=kinds)
    except ValueError:
        raise _invalid(
            "value given seems to be invalid for the column",
            column_name=spec.api_name,
            expected_data_type=spec.data_type,
        ) from None


def parser_for(state: SandboxState, body: Any) -> QueryParser:
    """The parser of a request body's ``select_query``; a body without one is refused as
    Zoho refuses a missing mandatory key."""
    query = body.get("select_query") if isinstance(body, dict) else None
    if not isinstance(query, str) or not query.strip():
        raise QueryError(
            "REQUIRED_PARAM_MISSING",
            "One of the expected parameter is missing",
            {"param_name": "select_query"},
        )
    return QueryParser(state, query.strip())


# ------------------------------------------------------------------------- running
def _stored(state: SandboxState, spec: FieldSpec, record: dict[str, Any]) -> list[Any]:
    """The record's value(s) in the form ``typed_value`` reads criteria values into."""
    if spec.data_type == "id":
        return [int(record["id"])]
    value = record.get(spec.api_name)
    if value in (None, "", []):
        return []
    kind = spec.data_type
    if kind == "datetime":
        return [parse_datetime(value)]
    if kind in ("integer", "bigint"):
        return [int(value)]
    if kind in ("double", "currency"):
        return [float(value)]
    if kind == "boolean":
        return [bool(value)]
    if kind == "ownerlookup":
        ref = state.user_ref(value)
        return [str(ref["id"])] if ref else []
    if isinstance(value, dict):
        return [str(value.get("id"))] if value.get("id") else []
    if kind == "multiselectpicklist" and isinstance(value, list):
        return [";".join(str(item) for item in value).lower()]
    return [str(value).lower()]


def _holds(state: SandboxState, test: Comparison, record: dict[str, Any]) -> bool:
    have = _stored(state, test.spec, record)
    operator, wanted = test.operator, test.values
    if operator == "is null":
        return not have
    if operator == "is not null":
        return bool(have)
    if not have:
        return operator in ("!=", "not in", "not like", "not between")
    value = have[0]
    if operator in ("like", "not like"):
        found = bool(wanted[0].match(str(value)))
        return found if operator == "like" else not found
    if operator in ("in", "not in"):
        return (value in wanted) == (operator == "in")
    if operator in ("between", "not between"):
        inside = wanted[0] <= value <= wanted[1]
        return inside == (operator == "between")
    compare = {
        "=": value == wanted[0],
        "!=": value != wanted[0],
        ">": value > wanted[0],
        ">=": value >= wanted[0],
        "<": value < wanted[0],
        "<=": value <= wanted[0],
    }
    return compare[operator]


def _matches(state: SandboxState, node: Comparison | Junction, record: dict[str, Any]) -> bool:
    if isinstance(node, Comparison):
        return _holds(state, node, record)
    results = (_matches(state, part, record) for part in node.parts)
    return all(results) if node.operator == "and" else any(results)


def _sort_value(state: SandboxState, spec: FieldSpec, record: dict[str, Any]) -> tuple:
    """Nulls first, then the typed value (ids as numbers: Zoho's ids are 19-digit strings
    whose order is numeric, and the default sort is by id)."""
    have = _stored(state, spec, record)
    if not have:
        return (0, 0)
    value = have[0]
    if isinstance(value, datetime):
        return (1, value.timestamp())
    return (1, value)


def run_query(state: SandboxState, query: Select) -> dict[str, Any] | None:
    """The answer body for a parsed query, or None for no records (a bodiless 204).

    Converted leads are included: COQL has no ``converted`` parameter and Zoho's pages do
    not say it hides them (docs/zoho-api-notes.md), so a reader must filter them itself.
    """
    if query.offset + query.limit > state.coql_record_limit:
        raise _limit_exceeded(
            "Max records limit exceeded", clause="offset", limit=state.coql_record_limit
        )
    records = state.data["records"][query.module].values()
    where = query.where
    found = [r for r in records if where is None or _matches(state, where, r)]
    found.sort(key=lambda r: int(r["id"]))
    for spec, descending in reversed(query.order):
        found.sort(key=lambda r, s=spec: _sort_value(state, s, r), reverse=descending)
    page = found[query.offset : query.offset + query.limit]
    if not page:
        return None
    shown = [spec for spec in query.fields if spec.api_name != "id"]
    data = [
        {
            **{
                spec.api_name: render_value(state, spec, record.get(spec.api_name))
                for spec in shown
            },
            "id": record["id"],
        }
        for record in page
    ]
    more = len(found) > query.offset + query.limit
    return {"data": data, "info": {"count": len(data), "more_records": more}}
