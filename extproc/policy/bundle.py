"""Reading Rego modules and data documents from disk into an immutable ``PolicyBundle``.

A bundle is read once per snapshot build, so requests never touch the file system and
every engine (embedded per thread, the OPA fixture, ``routeiq policy test``) loads the
very same sources. Data documents (YAML or JSON) are deep-merged at the root of
``data``; two documents that set the same leaf differently are refused rather than
silently overriding each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from extproc.config.errors import ConfigError
from extproc.config.safe_yaml import check_tree, load_yaml, read_bounded

REGO_SUFFIX = ".rego"
TEST_SUFFIX = "_test.rego"
DATA_SUFFIXES = (".yaml", ".yml", ".json")


class PolicyConfigError(ConfigError):
    """A policy module, data document or engine cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class PolicyBundle:
    """Rego sources and merged data, as loaded from the spec's paths.

    ``modules`` are ``(path, source)`` pairs (the path is used in error messages);
    ``tests`` holds the ``*_test.rego`` modules, loaded only to run tests.
    """

    modules: tuple[tuple[str, str], ...]
    tests: tuple[tuple[str, str], ...]
    data: Mapping[str, Any]

    @property
    def data_json(self) -> str:
        return orjson.dumps(self.data).decode()


def _expand(paths: Iterable[str], base_dir: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Files named by ``paths`` (files, or directories searched recursively), sorted."""
    found: list[Path] = []
    for entry in paths:
        path = Path(entry)
        path = path if path.is_absolute() else base_dir / path
        if path.is_dir():
            found.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(suffixes))
            )
        elif path.is_file():
            found.append(path)
        else:
            raise PolicyConfigError(f"policy path '{entry}' does not exist (looked in {path})")
    return found


def _merge(into: dict[str, Any], doc: Mapping[str, Any], origin: str, where: str = "data") -> None:
    for key, value in doc.items():
        here = f"{where}.{key}"
        if key not in into:
            into[key] = value
        elif isinstance(into[key], dict) and isinstance(value, Mapping):
            merged = dict(into[key])
            _merge(merged, value, origin, here)
            into[key] = merged
        elif into[key] != value:
            raise PolicyConfigError(f"{origin}: '{here}' is already set by another data document")


def _load_json(raw: bytes, path: Path) -> Any:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise PolicyConfigError(f"{path}: invalid JSON: {exc}") from None
    check_tree(doc, str(path))  # the engines read at most 128 levels; orjson encodes 255
    return doc


def _load_yaml(raw: bytes, path: Path) -> Any:
    try:
        return load_yaml(raw, str(path))
    except ConfigError as exc:
        raise PolicyConfigError(str(exc)) from None


def load_data_file(path: Path) -> Mapping[str, Any]:
    """One YAML or JSON data document; its top level must be an object.

    Size, nesting depth and YAML alias expansion are bounded (``safe_yaml``): any file
    content is a ``PolicyConfigError``, never another exception.
    """
    try:
        raw = read_bounded(path)
    except ConfigError as exc:
        raise PolicyConfigError(f"cannot read data document: {exc}") from None
    doc = _load_json(raw, path) if path.suffix == ".json" else _load_yaml(raw, path)
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise PolicyConfigError(f"{path}: a data document must be an object at the top level")
    return doc


def load_bundle(modules: Iterable[str], data: Iterable[str], base_dir: Path) -> PolicyBundle:
    """Read every module and data document the spec names; raise ``PolicyConfigError``."""
    sources: list[tuple[str, str]] = []
    tests: list[tuple[str, str]] = []
    for path in _expand(modules, base_dir, (REGO_SUFFIX,)):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyConfigError(f"cannot read Rego module {path}: {exc}") from None
        (tests if path.name.endswith(TEST_SUFFIX) else sources).append((str(path), text))
    if not sources and not tests:
        raise PolicyConfigError(f"no .rego modules found in {list(modules)}")
    merged: dict[str, Any] = {}
    for path in _expand(data, base_dir, DATA_SUFFIXES):
        _merge(merged, load_data_file(path), str(path))
    return PolicyBundle(tuple(sources), tuple(tests), merged)
