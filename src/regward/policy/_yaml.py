"""Safe YAML parsing for policy files, keeping the node tree to map key paths to lines."""

from __future__ import annotations

from typing import Any

import yaml

from regward.policy.errors import PolicyError, PolicyProblem

Loc = tuple[str | int, ...]
"""A key path as a tuple of mapping keys and list indexes, as pydantic reports it."""


class StrictSafeLoader(yaml.SafeLoader):
    """A SafeLoader that rejects duplicate and non-string keys inside one mapping.

    Keys brought in by a merge key (`<<: *anchor`) may be overridden, as YAML intends.
    Non-string keys are rejected because YAML 1.1 reads unquoted `on`, `yes` or `2024-01-01`
    as a boolean or a date, which no policy key is.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"expected a string key, got {type(key).__name__} {key}; quote the key",
                    key_node.start_mark,
                )
            try:
                first = seen.get(key)
            except TypeError:
                # An unhashable key; the base class raises a proper ConstructorError for it.
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}, "
                    f"first defined on line {first.start_mark.line + 1}",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    """Parse one YAML document and return its Python value and its node tree.

    Raises:
        PolicyError: the text is not a single valid YAML document; names the line.
    """
    loader: StrictSafeLoader | None = None
    try:
        # The constructor already reads the text and rejects control characters.
        loader = StrictSafeLoader(text)
        root = loader.get_single_node()
        document = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        detail = exc.problem or exc.context or "unknown problem"
        if exc.context and exc.problem and exc.problem.startswith("but "):
            # The problem continues the context, as in "expected a single document in the
            # stream" + "but found another document".
            detail = f"{exc.context}, {exc.problem}"
        raise PolicyError(source, [PolicyProblem("", f"invalid YAML: {detail}", line)]) from exc
    except yaml.YAMLError as exc:
        # A ReaderError, for a character YAML does not allow; its text ends with a location
        # line that names the internal stream.
        detail = str(exc).splitlines()[0]
        raise PolicyError(source, [PolicyProblem("", f"invalid YAML: {detail}")]) from exc
    finally:
        if loader is not None:
            loader.dispose()
    return document, root


def line_of(root: yaml.Node | None, loc: Loc) -> int | None:
    """Return the 1-based line of the node at `loc`, or of its deepest existing ancestor."""
    node = root
    if node is None:
        return None
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == part:
                    child = value_node
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if 0 <= part < len(node.value):
                child = node.value[part]
        if child is None:
            break
        node = child
    return int(node.start_mark.line) + 1
