"""Turn parsed YAML into typed dataclasses, failing on unknown or ill-typed keys.

Written once for every config section: the dataclass *is* the schema, so adding a field
to a section is the whole change needed to make it configurable and validated.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pipeline.core.errors import InputError


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if origin is not None:
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in get_args(tp))}]"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def quoted(value: Any, limit: int = 80) -> str:
    """`value` as an error message quotes it: its repr, cut at `limit` characters with its full
    length after, so a 1 MB value in avel.yaml makes a one-line message, not a 1 MB one."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} chars)"


def _convert(value: Any, tp: Any, key: str, file: str) -> Any:
    def fail(expected: str | None = None) -> typing.NoReturn:
        raise InputError(f"expected {expected or _type_name(tp)}, got {type(value).__name__} "
                         f"{quoted(value)}", file=file, field=key)

    if tp is Any:
        return value
    origin = get_origin(tp)
    if origin is Literal:
        if value in get_args(tp):
            return value
        fail()
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key, file)
            except InputError:
                continue
        fail()
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            fail()
        return build(tp, value, file=file, prefix=key)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            fail()
        (item_tp, *_) = get_args(tp) or (Any,)
        items = [_convert(v, item_tp, f"{key}[{i}]", file) for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            fail()
        k_tp, v_tp = get_args(tp) or (Any, Any)
        return {_convert(k, k_tp, key, file): _convert(v, v_tp, f"{key}.{k}", file)
                for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        fail()
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        fail()
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an integer beyond any float
                fail("a finite number")
            if not math.isfinite(number):  # YAML .nan, .inf, 1e999: no setting means them
                fail("a finite number")
            # -0.0 is 0.0: a `< 0` check passes -0.0 and a `<= 0` one refuses it, as for 0
            return number + 0.0
        fail()
    if tp is str:
        if isinstance(value, str):
            return value
        fail()
    if isinstance(value, tp):
        return value
    fail()


def build(cls: type, data: dict[str, Any], *, file: str | Path = "<config>", prefix: str = "") -> Any:
    """Instantiate dataclass `cls` from `data`; every error names the file and dotted key."""
    file = str(file)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else str(name)
        if name not in fields:
            known = ", ".join(sorted(fields))
            raise InputError(f"unknown key (known keys: {known})", file=file,
                             field=key if len(key) <= 80 else f"{key[:80]}… ({len(key)} chars)")
        kwargs[name] = _convert(value, hints[name], key, file)
    missing = [n for n, f in fields.items() if n not in kwargs
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        key = f"{prefix}.{missing[0]}" if prefix else missing[0]
        raise InputError("required key is missing", file=file, field=key)
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except ValueError as exc:
            # a message opening with one of the section's keys names that key as the field
            first = str(exc).split(" ", 1)[0].rstrip(":,")
            field = f"{prefix}.{first}" if prefix and first in fields else prefix or None
            raise InputError(str(exc), file=file, field=field) from None
    return obj


def to_dict(obj: Any) -> Any:
    """Plain-data form of a config (for YAML dumps and hashing)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
