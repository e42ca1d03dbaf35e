"""The base of every typed message between the hub and a site agent.

A contract type is a frozen dataclass. Both sides use the same class: the sender builds it (its
fields are checked then), sends ``to_dict()`` as JSON, and the receiver rebuilds it with
``from_dict()``, which checks every field's type and names the first wrong one
(``spec.model.weights.sha256: expected text, got 3``). Nothing else parses these payloads.

Versioning: ``CONTRACT_VERSION`` is written into every work spec. A receiver refuses a spec of
a newer major version with a message that says which side to update; fields it does not know
are ignored, so the hub can add an optional field without breaking older agents.
"""

from __future__ import annotations

import dataclasses
import numbers
import types
from typing import Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

CONTRACT_VERSION = 1

# What each task's specs and results carry in their ``task`` field: classification (one label per
# image) and segmentation (a label per pixel: ``label_names`` then name the mask's values, with
# "background" first). Slides come next; an agent that meets a task it does not know refuses the
# work with a clear reason.
Task = Literal["classification", "segmentation"]
TASKS: tuple[str, ...] = get_args(Task)


def contract_task(value: str) -> Task:
    """``value`` as a Task, or ContractError naming the tasks there are."""
    if value not in TASKS:
        raise ContractError("task", f"expected one of {', '.join(TASKS)}, got {value!r}")
    return value  # type: ignore[return-value]  # checked just above


C = TypeVar("C", bound="Contract")

# A JSON object as it travels: what ``from_dict`` reads and ``to_dict`` writes. Open by nature;
# the contract types are what give it a shape.
JsonObject = dict[str, Any]

_NAMES = {str: "text", int: "an integer", float: "a number", bool: "true or false"}


class ContractError(ValueError):
    """A payload that does not match its contract; ``str()`` names the field and the problem."""

    def __init__(self, path: str, problem: str) -> None:
        self.path, self.problem = path, problem
        super().__init__(f"{path}: {problem}" if path else problem)


@dataclasses.dataclass(frozen=True)
class Contract:
    """Mixin for frozen dataclasses that travel as JSON between the hub and an agent."""

    # Subclasses that are work specs set this: their dict carries the contract's version.
    versioned: ClassVar[bool] = False

    def __post_init__(self) -> None:
        # Building a message checks it too, so a wrong value fails where it is made.
        _check_object(type(self), {f.name: getattr(self, f.name) for f in _fields(self)}, "")
        self.validate()

    def validate(self) -> None:
        """Checks across fields (override); raise ContractError naming the field."""

    def to_dict(self) -> JsonObject:
        """JSON-ready; an optional field left at None is left out (the receiver reads it as None)."""
        out = {
            f.name: _to_json(getattr(self, f.name))
            for f in _fields(self)
            if not (getattr(self, f.name) is None and f.default is None)
        }
        if self.versioned:
            out["contract_version"] = CONTRACT_VERSION
        return out

    @classmethod
    def from_dict(cls: type[C], raw: Any, *, path: str = "") -> C:
        """Rebuild from JSON, checking every field; raises ContractError naming the field."""
        if not isinstance(raw, dict):
            raise ContractError(path, f"expected an object, got {_describe(raw)}")
        if cls.versioned:
            version = raw.get("contract_version", CONTRACT_VERSION)
            if not isinstance(version, int) or version > CONTRACT_VERSION:
                raise ContractError(
                    _join(path, "contract_version"),
                    f"this side understands version {CONTRACT_VERSION} of the hub-agent contract "
                    f"and was sent version {version!r}: update the site agent",
                )
        hints = _hints(cls)
        values: JsonObject = {}
        for field in _fields(cls):
            where = _join(path, field.name)
            if field.name not in raw:
                if (
                    field.default is dataclasses.MISSING
                    and field.default_factory is dataclasses.MISSING
                ):
                    raise ContractError(where, "is missing")
                continue
            values[field.name] = _from_json(hints[field.name], raw[field.name], where)
        try:
            return cls(**values)
        except ContractError as exc:
            raise ContractError(_join(path, exc.path), exc.problem) from None


def _fields(obj: Any) -> tuple[dataclasses.Field[Any], ...]:
    return tuple(f for f in dataclasses.fields(obj) if f.init)


_HINTS: dict[type, dict[str, Any]] = {}  # a class's field types by name (not JSON)


def _hints(cls: type) -> JsonObject:
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls)
    return _HINTS[cls]


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path and name else path or name


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return "an object" if isinstance(value, dict) else "a list"
    return repr(value)[:60]


def _to_json(value: Any) -> Any:
    if isinstance(value, Contract):
        return value.to_dict()
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):  # numpy's integers too
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    return value


def _check_object(cls: type, values: JsonObject, path: str) -> None:
    hints = _hints(cls)
    for name, value in values.items():
        _from_json(hints[name], value, _join(path, name), build=False)


def _from_json(hint: Any, value: Any, path: str, *, build: bool = True) -> Any:
    origin = get_origin(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _from_json(option, value, path, build=build)
            except ContractError as exc:
                errors.append(exc)
        raise (
            errors[0] if len(errors) == 1 else ContractError(path, f"unexpected {_describe(value)}")
        )
    if origin is Literal:
        allowed = get_args(hint)
        if value not in allowed:
            raise ContractError(
                path, f"expected one of {', '.join(map(repr, allowed))}, got {_describe(value)}"
            )
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ContractError(path, f"expected a list, got {_describe(value)}")
        (item,) = get_args(hint)
        return [_from_json(item, v, f"{path}[{i}]", build=build) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ContractError(path, f"expected an object, got {_describe(value)}")
        key_type, item = get_args(hint)
        out = {}
        for k, v in value.items():
            if not isinstance(k, key_type):
                raise ContractError(path, f"keys must be {_NAMES.get(key_type, key_type)}")
            out[k] = _from_json(item, v, _join(path, str(k)), build=build)
        return out
    if isinstance(hint, type) and issubclass(hint, Contract):
        if isinstance(value, hint):
            return value
        if not build:
            raise ContractError(path, f"expected {hint.__name__}, got {_describe(value)}")
        return hint.from_dict(value, path=path)
    if hint is float:  # numpy's numbers count (the numbers ABCs), booleans do not
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ContractError(path, f"expected a number, got {_describe(value)}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ContractError(path, f"expected an integer, got {_describe(value)}")
        return int(value)
    if hint in (str, bool):
        if not isinstance(value, hint):
            raise ContractError(path, f"expected {_NAMES[hint]}, got {_describe(value)}")
        return value
    if hint is type(None):
        if value is not None:
            raise ContractError(path, f"expected null, got {_describe(value)}")
        return None
    raise TypeError(f"{path}: the contract cannot carry {hint!r}")  # a bug in a contract type


def require(condition: bool, path: str, problem: str) -> None:
    """For ``validate()``: raise ContractError(path, problem) unless ``condition``."""
    if not condition:
        raise ContractError(path, problem)


__all__ = [
    "CONTRACT_VERSION",
    "TASKS",
    "Contract",
    "ContractError",
    "Task",
    "require",
]
