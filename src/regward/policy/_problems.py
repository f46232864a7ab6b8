"""Translation of pydantic validation errors into `PolicyProblem`s with key paths and lines."""

from __future__ import annotations

import difflib
import types
from collections.abc import Sequence
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel
from pydantic_core import ErrorDetails

from regward.policy._wire import PolicyWire
from regward.policy._yaml import Loc, line_of
from regward.policy.errors import PolicyProblem

# Error types raised by the validators of `regward.policy._wire`, whose messages are final.
_OWN_ERROR_TYPES = frozenset(
    {
        "invalid_name",
        "invalid_glob",
        "invalid_tag_pattern",
        "invalid_repository",
        "key_source",
        "trusted_root_source",
        "keyless_identity",
        "authority_source",
        "attestation_condition",
        "invalid_regexp",
        "invalid_duration",
    }
)


def format_key_path(loc: Sequence[str | int]) -> str:
    """Return a key path such as `rules[0].signatures.authorities[1].key` for `loc`."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def _describe_value(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {value}"
    if isinstance(value, str):
        excerpt = value if len(value) <= 60 else value[:57] + "..."
        return f"string {excerpt!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"{type(value).__name__} {value!s}"


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated and `X | None` from a field annotation."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _allowed_keys(loc: Loc) -> list[str]:
    """Return the keys that the wire model at `loc` accepts, or [] when `loc` is no model."""
    current: Any = PolicyWire
    for part in loc:
        if isinstance(part, str) and isinstance(current, type) and issubclass(current, BaseModel):
            matches = [
                info.annotation
                for name, info in current.model_fields.items()
                if (info.alias or name) == part
            ]
            if not matches:
                return []
            current = _unwrap(matches[0])
        elif isinstance(part, int) and get_origin(current) is list:
            current = _unwrap(get_args(current)[0])
        else:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [info.alias or name for name, info in current.model_fields.items()]
    return []


def problem_from_pydantic(error: ErrorDetails, root: yaml.Node | None) -> PolicyProblem:
    """Return the problem that a pydantic error describes, with its key path and line."""
    loc: Loc = tuple(error["loc"])
    kind = error["type"]
    found = error.get("input")
    context = error.get("ctx") or {}
    path = format_key_path(loc)
    line = line_of(root, loc)

    if kind == "missing":
        message = "missing required key"
    elif kind == "extra_forbidden":
        key = str(loc[-1]) if loc else ""
        allowed = _allowed_keys(loc[:-1])
        message = f"unknown key {key!r}"
        suggestion = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        if suggestion:
            message += f" (did you mean {suggestion[0]!r}?)"
        if allowed:
            message += f"; expected one of: {', '.join(allowed)}"
    elif kind == "literal_error":
        message = f"expected {context.get('expected')}, got {_describe_value(found)}"
    elif kind == "string_type":
        message = f"expected a string, got {_describe_value(found)}"
    elif kind == "list_type":
        message = f"expected a list, got {_describe_value(found)}"
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        message = f"expected a mapping, got {_describe_value(found)}"
    elif kind == "too_short":
        message = f"expected at least {context.get('min_length')} entry, got an empty list"
    elif kind == "string_too_short":
        message = "expected a non-empty string, got an empty string"
    elif kind == "string_too_long":
        length = len(found) if isinstance(found, str) else "more"
        message = f"expected at most {context.get('max_length')} characters, got {length}"
    elif kind in _OWN_ERROR_TYPES:
        message = error["msg"]
    else:
        text = error["msg"]
        message = f"{text[:1].lower()}{text[1:]}, got {_describe_value(found)}"
    return PolicyProblem(path, message, line)
