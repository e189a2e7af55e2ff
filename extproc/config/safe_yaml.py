"""Reading YAML (and JSON data) that may hold anything, without crashing or hanging.

A config file is the operator's, but the reload watcher reads whatever lands on disk:
a half-written file, a binary blob, a file nested thousands of levels deep (PyYAML's
composer recurses and raises ``RecursionError``), or a "billion laughs" document whose
anchors and aliases expand to billions of nodes once something walks it (pydantic,
orjson, the Rego engines). Every such file becomes a one-line ``ConfigError``:

- size: at most ``MAX_FILE_BYTES`` are read;
- shape: before anything is built, one streaming pass over PyYAML's events (its
  parser is iterative) tracks nesting depth and the *expanded* node count, aliases
  included (each anchor's size and height are remembered), and stops at the first
  limit passed; an alias to an enclosing anchor (a cycle) is refused;
- only then ``yaml.safe_load`` builds the document, within those bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from extproc.config.errors import ConfigError

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 100
MAX_NODES = 1_000_000
_MESSAGE_MAX = 300


def one_line(text: str, limit: int = _MESSAGE_MAX) -> str:
    """``text`` on one line (whitespace runs collapsed), cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def read_bounded(path: Path, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The file's bytes; ``ConfigError`` if it cannot be read or is over ``max_bytes``."""
    try:
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > max_bytes:
        raise ConfigError(f"{path} is larger than {max_bytes} bytes")
    return data


@dataclass(slots=True)
class _Open:
    """A collection being read: its anchor, expanded size so far and height."""

    anchor: str | None
    size: int = 1
    height: int = 1


class _Shape:
    """Depth and expanded size of a YAML stream, fed one event at a time."""

    def __init__(self, source: str, max_depth: int, max_nodes: int) -> None:
        self.source = source
        self.max_depth = max_depth
        self.max_nodes = max_nodes
        self.stack: list[_Open] = []
        self.anchors: dict[str, tuple[int, int]] = {}  # anchor -> (size, height)

    def _too_deep(self) -> ConfigError:
        return ConfigError(f"{self.source} nests more than {self.max_depth} levels deep")

    def _add(self, size: int, height: int) -> None:
        if not self.stack:
            return
        top = self.stack[-1]
        top.size += size
        top.height = max(top.height, height + 1)
        if top.size > self.max_nodes:
            raise ConfigError(
                f"{self.source} expands to more than {self.max_nodes} nodes "
                "(anchors and aliases included)"
            )

    def feed(self, event: yaml.Event) -> None:
        if isinstance(event, yaml.CollectionStartEvent):
            if len(self.stack) >= self.max_depth:
                raise self._too_deep()
            self.stack.append(_Open(event.anchor))
        elif isinstance(event, yaml.CollectionEndEvent):
            done = self.stack.pop()
            if done.anchor is not None:
                self.anchors[done.anchor] = (done.size, done.height)
            self._add(done.size, done.height)
        elif isinstance(event, yaml.ScalarEvent):
            if event.anchor is not None:
                self.anchors[event.anchor] = (1, 0)
            self._add(1, 0)
        elif isinstance(event, yaml.AliasEvent):
            known = self.anchors.get(event.anchor or "")
            if known is None:
                raise ConfigError(
                    f"{self.source}: alias *{event.anchor} names no complete anchor before it "
                    "(undefined, or a cycle)"
                )
            size, height = known
            if len(self.stack) + height > self.max_depth:
                raise self._too_deep()
            self._add(size, height)


def load_yaml(
    text: bytes | str,
    source: str,
    *,
    max_depth: int = MAX_DEPTH,
    max_nodes: int = MAX_NODES,
) -> Any:
    """The one YAML document in ``text``, or a one-line ``ConfigError`` naming ``source``."""
    if len(text) > MAX_FILE_BYTES:
        raise ConfigError(f"{source} is larger than {MAX_FILE_BYTES} bytes")
    shape = _Shape(source, max_depth, max_nodes)
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            shape.feed(event)
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ConfigError(f"{where}: invalid YAML: {one_line(str(exc))}") from None
    except RecursionError:  # cannot happen within max_depth; kept as the last guard
        raise ConfigError(f"{source} nests too deeply to read") from None


def check_tree(doc: Any, source: str, max_depth: int = MAX_DEPTH) -> None:
    """Refuse a decoded JSON document nested deeper than ``max_depth`` (the top object
    is level 1). Iterative, level by level; JSON has no aliases, so it is linear."""
    level: list[Any] = [doc] if isinstance(doc, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > max_depth:
            raise ConfigError(f"{source} nests more than {max_depth} levels deep")
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, dict | list)
        ]
