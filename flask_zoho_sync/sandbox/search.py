"""`GET /{module}/search`: Zoho's search by criteria, email, phone or word (reference §2.9).

Host apps' tests look records up through the sandbox the way their code does in Zoho, so the
rules a caller trips over are kept: one of ``criteria``, ``email``, ``phone`` or ``word`` is
required, a criteria that does not parse (or names a field or operator Zoho would refuse) is
``INVALID_QUERY``, nothing found is a bodiless 204, and no more than 2,000 records can be
paged through. Records come back whole, ``$``-keys included, as the search answer shows them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .fields import FieldSpec
from .query import QueryError, _int_param
from .records import is_converted, render_full_record
from .state import SandboxState
from .zoho_time import ZohoTimeRefused, format_date, parse_date, parse_datetime

MAX_RESULTS = 2000
MAX_PER_PAGE = 200
MAX_CRITERIA = 10
MAX_IN_VALUES = 100
SEARCH_PARAMS = ("criteria", "email", "phone", "word")

_TEXT = ("text", "textarea", "email", "phone", "website")
_ORDERED = ("equals", "not_equal", "greater_equal", "greater_than", "less_equal", "less_than")
#: The operators each field type takes in a criteria (the search page's table).
OPERATORS: dict[str, tuple[str, ...]] = {
    "text": ("equals", "not_equal", "starts_with", "in"),
    "email": ("equals", "not_equal", "starts_with", "in"),
    "phone": ("equals", "not_equal", "starts_with", "in"),
    "website": ("equals", "not_equal", "starts_with", "in"),
    "textarea": ("equals", "not_equal", "starts_with"),
    "picklist": ("equals", "not_equal", "in"),
    "multiselectpicklist": ("equals", "not_equal", "in", "starts_with"),
    "ownerlookup": ("equals", "not_equal", "in"),
    "lookup": ("equals", "not_equal", "in"),
    "boolean": ("equals", "not_equal"),
    "date": (*_ORDERED, "between", "in"),
    "datetime": (*_ORDERED, "between", "in"),
    "integer": (*_ORDERED, "between", "in"),
    "bigint": (*_ORDERED, "between", "in"),
    "double": (*_ORDERED, "between", "in"),
    "currency": (*_ORDERED, "between", "in"),
}


def _invalid_query(reason: str, **details: Any) -> QueryError:
    return QueryError("INVALID_QUERY", "invalid query formed", {"reason": reason, **details})


@dataclass
class Condition:
    spec: FieldSpec
    operator: str
    values: list[Any]


@dataclass
class Group:
    operator: str  # "and" | "or"
    parts: list[Condition | Group]


class _Parser:
    """``((Last_Name:equals:Burns\\,B)and(First_Name:starts_with:M))``: groups in
    parentheses joined by ``and``/``or``; a backslash escapes ``,``, ``(``, ``)`` and itself
    inside a value."""

    def __init__(self, text: str, specs: dict[str, FieldSpec]) -> None:
        self.text = text
        self.at = 0
        self.specs = specs
        self.count = 0

    def parse(self) -> Condition | Group:
        node = self._expression()
        if self.at != len(self.text):
            raise _invalid_query("unexpected text after the criteria", position=self.at)
        return node

    def _expression(self) -> Condition | Group:
        parts = [self._term()]
        joiner: str | None = None
        while (word := self._joiner()) is not None:
            if joiner is not None and word != joiner:
                raise _invalid_query("mixing and/or needs parentheses", position=self.at)
            joiner = word
            self.at += len(word)
            parts.append(self._term())
        return parts[0] if joiner is None else Group(joiner, parts)

    def _joiner(self) -> str | None:
        """``and`` or ``or`` (in any case) at the cursor, else None."""
        ahead = self.text[self.at : self.at + 3].lower()
        if ahead == "and":
            return "and"
        return "or" if ahead.startswith("or") else None

    def _term(self) -> Condition | Group:
        if not self.text.startswith("(", self.at):
            raise _invalid_query("a criteria must be in parentheses", position=self.at)
        self.at += 1
        nested = self.text.startswith("(", self.at)
        node = self._expression() if nested else self._condition()
        if not self.text.startswith(")", self.at):
            raise _invalid_query("unbalanced parentheses", position=self.at)
        self.at += 1
        return node

    def _condition(self) -> Condition:
        self.count += 1
        if self.count > MAX_CRITERIA:
            raise QueryError("LIMIT_EXCEEDED", "criteria limit exceeded", {"limit": MAX_CRITERIA})
        api_name = self._until(":")
        operator = self._until(":")
        raw_values = self._values()
        spec = self.specs.get(api_name)
        if spec is None:
            raise _invalid_query("the field is not available for search", api_name=api_name)
        allowed = OPERATORS.get(spec.data_type, ())
        if operator not in allowed:
            raise _invalid_query("invalid operator found", api_name=api_name, operator=operator)
        if operator not in ("in", "between") and len(raw_values) != 1:
            raise _invalid_query("invalid value given", api_name=api_name, operator=operator)
        if operator == "between" and len(raw_values) != 2:
            raise _invalid_query("between takes two values", api_name=api_name)
        if operator == "in" and len(raw_values) > MAX_IN_VALUES:
            raise QueryError("LIMIT_EXCEEDED", "in takes at most 100 values", {"limit": 100})
        values = [_typed(spec, operator, value) for value in raw_values]
        return Condition(spec, operator, values)

    def _until(self, stop: str) -> str:
        end = self.text.find(stop, self.at)
        if end < 0:
            raise _invalid_query("a criteria is api_name:operator:value", position=self.at)
        part = self.text[self.at : end]
        self.at = end + 1
        return part

    def _values(self) -> list[str]:
        values: list[str] = []
        current: list[str] = []
        while self.at < len(self.text):
            char = self.text[self.at]
            if char == "\\" and self.at + 1 < len(self.text):
                current.append(self.text[self.at + 1])
                self.at += 2
                continue
            if char == ")":
                break
            if char == "(":
                raise _invalid_query("a ( in a value must be escaped", position=self.at)
            if char == ",":
                values.append("".join(current))
                current = []
            else:
                current.append(char)
            self.at += 1
        values.append("".join(current))
        return values


def criteria_value(kind: str, text: str, *, integer_kinds: tuple[str, ...]) -> Any:
    """A criteria value (search's or COQL's) read as its field's type, text lower-cased
    (both compare case-blind); raises ``ValueError`` for a value of another type."""
    try:
        if kind in integer_kinds:
            return int(text)
        if kind in ("double", "currency"):
            return float(text)
        if kind == "boolean":
            if text.lower() not in ("true", "false"):
                raise ValueError(text)
            return text.lower() == "true"
        if kind == "date":
            return format_date(parse_date(text))
        if kind == "datetime":
            return parse_datetime(text)
    except ZohoTimeRefused as refused:
        raise ValueError(text) from refused
    return text.lower()


def _typed(spec: FieldSpec, operator: str, value: str) -> Any:
    """A criteria value read as its field's type; a value of the wrong type is refused."""
    try:
        typed = criteria_value(spec.data_type, value, integer_kinds=("integer", "bigint"))
    except ValueError:
        raise _invalid_query(
            "the value does not match the field's data type",
            api_name=spec.api_name,
            expected_data_type=spec.data_type,
        ) from None
    if operator == "starts_with" and value == "":
        raise _invalid_query("invalid value given", api_name=spec.api_name)
    return typed


def _stored(state: SandboxState, spec: FieldSpec, record: dict[str, Any]) -> list[Any]:
    """The record's value(s) in the form criteria values are read into."""
    value = record.get(spec.api_name)
    if value in (None, "", []):
        return []
    kind = spec.data_type
    if kind == "datetime":
        return [parse_datetime(value)]
    if kind in ("integer", "bigint"):
        return [int(value)]
    if kind == "ownerlookup":
        ref = state.user_ref(value)
        return [str(ref["id"]).lower(), str(ref["name"]).lower()] if ref else []
    if kind == "lookup" and isinstance(value, dict):
        return [str(v).lower() for v in (value.get("id"), value.get("name")) if v]
    if isinstance(value, list):
        return [str(item).lower() for item in value]
    if isinstance(value, bool | int | float):
        return [value]
    return [str(value).lower()]


def _holds(state: SandboxState, condition: Condition, record: dict[str, Any]) -> bool:
    have = _stored(state, condition.spec, record)
    op, wanted = condition.operator, condition.values
    text_like = condition.spec.data_type in _TEXT
    if op == "equals":
        # Zoho's search "equals" on text behaves like contains (search page, note on equals).
        if text_like:
            return any(wanted[0] in h for h in have)
        return wanted[0] in have
    if op == "not_equal":
        return bool(have) and wanted[0] not in have
    if op == "starts_with":
        return any(isinstance(h, str) and h.startswith(wanted[0]) for h in have)
    if op == "in":
        return any(h in wanted for h in have)
    if not have:
        return False
    value = have[0]
    if op == "between":
        return wanted[0] <= value <= wanted[1]
    if op == "greater_than":
        return value > wanted[0]
    if op == "greater_equal":
        return value >= wanted[0]
    if op == "less_than":
        return value < wanted[0]
    return value <= wanted[0]  # less_equal


def _matches(state: SandboxState, node: Condition | Group, record: dict[str, Any]) -> bool:
    if isinstance(node, Condition):
        return _holds(state, node, record)
    results = (_matches(state, part, record) for part in node.parts)
    return all(results) if node.operator == "and" else any(results)


def _digits(text: str) -> str:
    return "".join(char for char in text if char.isdigit())


def _predicate(state: SandboxState, module: str, args: dict[str, str]):
    """What a record must satisfy, from whichever one search parameter was given."""
    given = [name for name in SEARCH_PARAMS if args.get(name)]
    if not given:
        raise QueryError(
            "EXPECTED_PARAM_MISSING",
            "mandatory param missing",
            {"expected_params": list(SEARCH_PARAMS)},
        )
    if len(given) > 1:
        raise QueryError(
            "AMBIGUITY_DURING_PROCESSING",
            "only one of criteria, email, phone and word may be given",
            {"ambiguity_due_to": given},
        )
    name, raw = given[0], args[given[0]].strip()
    specs = state.field_map(module)
    if name == "criteria":
        tree = _Parser(raw, specs).parse()
        return lambda record: _matches(state, tree, record)
    if len(raw) < 2:
        raise QueryError(
            "INVALID_DATA",
            "the search value must have at least two characters",
            {"param_name": name},
        )
    if name == "email":
        wanted = raw.lower()
        names = [s.api_name for s in specs.values() if s.data_type == "email"]
        return lambda record: any(str(record.get(n) or "").lower() == wanted for n in names)
    if name == "phone":
        wanted = _digits(raw) or raw
        names = [s.api_name for s in specs.values() if s.data_type == "phone"]
        return lambda record: any(
            wanted in (_digits(str(record.get(n) or "")) or "\0") for n in names
        )
    word = raw.lower()
    names = [s.api_name for s in specs.values() if s.data_type in _TEXT]
    return lambda record: any(word in str(record.get(n) or "").lower() for n in names)


def search_records(state: SandboxState, module: str, args: dict[str, str]) -> dict[str, Any] | None:
    """The answer's body, or None for "nothing matches" (204); ``QueryError`` otherwise."""
    predicate = _predicate(state, module, args)
    converted = (args.get("converted") or "false").lower()
    if converted not in ("false", "true", "both"):
        raise QueryError("INVALID_DATA", "invalid data", {"param_name": "converted"})
    per_page = _int_param(args, "per_page", MAX_PER_PAGE, MAX_PER_PAGE)
    page = _int_param(args, "page", 1, None)
    start = (page - 1) * per_page
    if start >= MAX_RESULTS:
        raise QueryError(
            "LIMIT_REACHED", "Maximum response iteration limit reached", {"limit": MAX_RESULTS}
        )
    found = [
        record
        for record in state.data["records"][module].values()
        if (converted == "both" or is_converted(record) == (converted == "true"))
        and predicate(record)
    ]
    found.sort(key=lambda record: record["id"], reverse=True)
    reachable = found[:MAX_RESULTS]
    chunk = reachable[start : start + per_page]
    if not chunk:
        return None
    info = {
        "per_page": per_page,
        "count": len(chunk),
        "sort_by": "id",
        "page": page,
        "sort_order": "desc",
        "more_records": len(reachable) > start + len(chunk),
    }
    return {"data": [render_full_record(state, module, r) for r in chunk], "info": info}
