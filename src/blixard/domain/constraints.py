"""Label constraints (hard: where a job may run) and preferences (soft: where it would
rather run). Pure: no I/O.

A constraint is ``{"label": "zone", "op": "in", "values": ["a", "b"]}`` with ``op`` one of
``eq``, ``ne``, ``in``, ``not_in``, ``exists``, ``not_exists``. A worker whose labels break
one constraint never claims the job. A preference is ``{"label": "zone", "values": ["a"],
"weight": 10}``: a worker's affinity for a job is the sum of the weights of the preferences
its labels meet, and a worker claims the jobs it has the most affinity for first among
those of equal priority. Preferences never make a job wait.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from blixard.domain import validation as v
from blixard.errors import ValidationError

MAX_CONSTRAINTS = 32
MAX_VALUES = 64
MAX_WEIGHT = 1000

_T = TypeVar("_T")


class Op(enum.StrEnum):
    EQ = "eq"
    NE = "ne"
    IN = "in"
    NOT_IN = "not_in"
    EXISTS = "exists"
    NOT_EXISTS = "not_exists"


_NEEDS_VALUES = {Op.EQ: (1, 1), Op.NE: (1, 1), Op.IN: (1, MAX_VALUES), Op.NOT_IN: (1, MAX_VALUES)}


@dataclass(frozen=True, slots=True)
class LabelConstraint:
    label: str
    op: Op
    values: tuple[str, ...] = ()

    def allows(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.label)
        match self.op:
            case Op.EQ | Op.IN:
                return value is not None and value in self.values
            case Op.NE | Op.NOT_IN:
                return value is None or value not in self.values
            case Op.EXISTS:
                return value is not None
            case Op.NOT_EXISTS:
                return value is None

    def describe(self) -> str:
        if self.op is Op.EXISTS:
            return f"label {self.label} set"
        if self.op is Op.NOT_EXISTS:
            return f"label {self.label} unset"
        return f"{self.label} {self.op} {','.join(self.values)}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"label": self.label, "op": str(self.op)}
        if self.values:
            out["values"] = list(self.values)
        return out


@dataclass(frozen=True, slots=True)
class Preference:
    label: str
    values: tuple[str, ...]
    weight: int = 1

    def met_by(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.label)
        return value is not None and value in self.values

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "values": list(self.values), "weight": self.weight}


def allowed(constraints: Iterable[LabelConstraint], labels: Mapping[str, str]) -> bool:
    return all(c.allows(labels) for c in constraints)


def affinity(preferences: Iterable[Preference], labels: Mapping[str, str]) -> int:
    return sum(p.weight for p in preferences if p.met_by(labels))


def _values(field: str, raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list | tuple) or not all(isinstance(x, str) for x in raw):
        raise ValidationError(field, "must be a list of strings")
    for i, value in enumerate(raw):
        if len(value) > v.LABEL_VALUE_MAX:
            raise ValidationError(f"{field}[{i}]", f"at most {v.LABEL_VALUE_MAX} characters")
    return tuple(dict.fromkeys(raw))


def _parse_each(
    field: str,
    raw: Any,
    *,
    parsed: type[_T],
    noun: str,
    fields: tuple[str, ...],
    keys: frozenset[str],
    parse: Callable[[str, Mapping[str, Any]], _T],
) -> tuple[_T, ...]:
    """A JSON list of objects (at most ``MAX_CONSTRAINTS``; ``noun`` names them in the
    error) with only the keys in ``keys``, each parsed by ``parse`` (given its place, e.g.
    ``field[0]``). Items already ``parsed`` pass as they are; None is no items."""
    if raw is None:
        return ()
    if not isinstance(raw, list | tuple):
        raise ValidationError(field, f"must be a list of {{{', '.join(fields)}}}")
    if len(raw) > MAX_CONSTRAINTS:
        raise ValidationError(field, f"at most {MAX_CONSTRAINTS} {noun}")
    out = []
    for i, item in enumerate(raw):
        if isinstance(item, parsed):
            out.append(item)
            continue
        where = f"{field}[{i}]"
        if not isinstance(item, Mapping):
            listed = f"{', '.join(fields[:-1])} and {fields[-1]}"
            raise ValidationError(where, f"must be an object with {listed}")
        unknown = set(item) - keys
        if unknown:
            raise ValidationError(where, f"unknown keys: {', '.join(sorted(unknown))}")
        out.append(parse(where, item))
    return tuple(out)


def parse_constraints(field: str, raw: Any) -> tuple[LabelConstraint, ...]:
    """From JSON (a list of objects); ValidationError names the bad entry."""
    return _parse_each(
        field,
        raw,
        parsed=LabelConstraint,
        noun="constraints",
        fields=("label", "op", "values"),
        keys=frozenset({"label", "op", "values"}),
        parse=_constraint,
    )


def _constraint(where: str, item: Mapping[str, Any]) -> LabelConstraint:
    label = v.check_name(f"{where}.label", item.get("label", ""))
    try:
        op = Op(item.get("op", "eq"))
    except ValueError:
        raise ValidationError(
            f"{where}.op", f"must be one of {', '.join(o.value for o in Op)}"
        ) from None
    values = _values(f"{where}.values", item.get("values", ()))
    low, high = _NEEDS_VALUES.get(op, (0, 0))
    if not low <= len(values) <= high:
        need = "no values" if high == 0 else f"{low}-{high} values"
        raise ValidationError(f"{where}.values", f"op {op} takes {need}")
    return LabelConstraint(label, op, values)


def parse_preferences(field: str, raw: Any) -> tuple[Preference, ...]:
    return _parse_each(
        field,
        raw,
        parsed=Preference,
        noun="preferences",
        fields=("label", "values", "weight"),
        keys=frozenset({"label", "values", "value", "weight"}),
        parse=_preference,
    )


def _preference(where: str, item: Mapping[str, Any]) -> Preference:
    label = v.check_name(f"{where}.label", item.get("label", ""))
    values = _values(f"{where}.values", item.get("values", item.get("value", ())))
    if not values:
        raise ValidationError(f"{where}.values", "at least one value")
    weight = item.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, int):
        raise ValidationError(f"{where}.weight", "must be an integer")
    v.check_range(f"{where}.weight", weight, 1, MAX_WEIGHT)
    return Preference(label, values, weight)


def constraints_to_json(items: Sequence[LabelConstraint]) -> list[dict[str, Any]]:
    return [c.to_dict() for c in items]


def preferences_to_json(items: Sequence[Preference]) -> list[dict[str, Any]]:
    return [p.to_dict() for p in items]


_PARSED: dict[str, tuple[tuple[LabelConstraint, ...], tuple[Preference, ...]]] = {}


def parsed_json(
    constraints_json: str, preferences_json: str
) -> tuple[tuple[LabelConstraint, ...], tuple[Preference, ...]]:
    """Stored (already validated) JSON back to objects, memoised: a claim reads the same
    few shapes over and over."""
    key = constraints_json + "\x00" + preferences_json
    found = _PARSED.get(key)
    if found is None:
        found = (
            parse_constraints("constraints", orjson.loads(constraints_json)),
            parse_preferences("preferences", orjson.loads(preferences_json)),
        )
        if len(_PARSED) < 1024:
            _PARSED[key] = found
    return found
