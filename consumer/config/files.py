"""Where settings come from besides defaults: the YAML file, the environment, secret files.

Each is checked before pydantic sees it, so what cannot work is refused naming the key
and never echoing a value: a file too large or nested too deep to parse safely (a
50 MB list took minutes and gigabytes; thousands of levels overflowed the stack),
duplicate keys (YAML keeps the last one silently), and environment variables or secret
files that look like ours but name no setting (a typo would otherwise be ignored).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from consumer.errors import ConfigError

__all__ = [
    "ENV_PREFIX",
    "check_environment",
    "check_secret_files",
    "read_secret_files",
    "read_yaml",
]

ENV_PREFIX = "COVER_CONSUMER__"
MAX_FILE_BYTES = 1 << 20  # a config is kilobytes
MAX_DEPTH = 32  # the settings are four levels deep


def read_yaml(path: Path) -> dict[str, Any]:
    """The file's top-level mapping; {} for an empty file."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError(f"config file {path} is {size} bytes; at most {MAX_FILE_BYTES}")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file is not UTF-8: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        _check_depth(text)
        data = yaml.load(text, Loader=_UniqueKeys)  # a SafeLoader
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML in {path}: {_describe(exc)}") from None
    except _Refused as exc:
        raise ConfigError(f"invalid YAML in {path}: {exc}") from None
    if data is None:  # an empty file means "all defaults"
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, not {type(data).__name__}")
    return data


def check_environment(
    environ: Mapping[str, str], settings: type[BaseModel], own: Iterable[str]
) -> None:
    """Refuse ``COVER_CONSUMER*`` variables that set nothing: a section or key misspelt,
    or one underscore instead of two after the prefix. ``own`` are the program's other
    variables (the config file's path, the secrets directory)."""
    known = {name.upper() for name in own}
    paths = set(_paths(settings))
    for name in environ:
        upper = name.upper()
        if not upper.startswith("COVER_CONSUMER") or upper in known:
            continue
        if not upper.startswith(ENV_PREFIX):
            suggestion = ENV_PREFIX + upper.removeprefix("COVER_CONSUMER").lstrip("_")
            raise ConfigError(
                f"environment variable {name}: not a setting; settings take the prefix "
                f"{ENV_PREFIX} (two underscores), e.g. {suggestion}"
            )
        _known_path(f"environment variable {name}", upper[len(ENV_PREFIX) :], paths)


def check_secret_files(directory: Path, settings: type[BaseModel]) -> None:
    """Refuse files in the secrets directory shaped like a setting that set nothing
    (``kafka__sasl_pasword``). Others are left alone: Kubernetes' own entries (``..data``)
    and keys the Secret holds for someone else (KEDA's ``keda-tls``)."""
    if not directory.is_dir():
        return
    paths = set(_paths(settings))
    for entry in directory.iterdir():
        if "__" in entry.name and not entry.name.startswith("."):
            _known_path(f"secret file {entry}", entry.name.upper(), paths)


def read_secret_files(
    directory: Path, files: Iterable[Path], settings: type[BaseModel]
) -> dict[str, str]:
    """The texts of the secret ``files`` by name, stripped, as pydantic-settings reads them.

    Its reader raised UnicodeDecodeError (a traceback, exit 1) on any binary file, even
    one the Secret holds for someone else (a keystore): a file naming a setting that is
    not UTF-8 or cannot be read is refused naming it, any other is skipped."""
    paths = set(_paths(settings))
    texts: dict[str, str] = {}
    for file in files:
        name = str(file.relative_to(directory))
        try:
            texts[name] = file.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError:
            if name.upper() in paths:
                raise ConfigError(f"secret file {file}: not UTF-8") from None
        except OSError as exc:
            if name.upper() in paths:
                raise ConfigError(f"secret file {file}: cannot read: {exc.strerror}") from None
    return texts


def _known_path(source: str, name: str, paths: set[str]) -> None:
    if name in paths:
        return
    dotted = name.lower().replace("__", ".")
    close = difflib.get_close_matches(name, sorted(paths), n=1)
    hint = f"; did you mean {close[0].lower().replace('__', '.')}?" if close else ""
    raise ConfigError(f"{source}: there is no setting {dotted}{hint}")


def _paths(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Every settable name, upper case, levels joined by ``__``: sections as a whole (JSON)
    and each of their keys."""
    for field_name, field in model.model_fields.items():
        path = f"{prefix}{field_name.upper()}"
        yield path
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            yield from _paths(kind, f"{path}__")


def _check_depth(text: str) -> None:
    """Walk the parser's events (no recursion) before composing (which recurses)."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                mark = event.start_mark
                raise _Refused(
                    f"nested deeper than {MAX_DEPTH} levels at line {mark.line + 1}"
                    if mark
                    else f"nested deeper than {MAX_DEPTH} levels"
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


class _Refused(Exception):
    """A file refused before or while parsing (depth, duplicate key): no value quoted."""


class _UniqueKeys(yaml.SafeLoader):
    """The safe loader, refusing a key that appears twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<:` merges may be overridden: that is their point
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str) and key in seen:
                raise _Refused(
                    f"duplicate key {key!r} at line {key_node.start_mark.line + 1}: "
                    "YAML would silently keep only the last"
                )
            seen.add(key if isinstance(key, str) else id(key_node))
        return super().construct_mapping(node, deep)


def _describe(exc: yaml.YAMLError) -> str:
    # Parser attributes, not str(exc): that quotes the source line, maybe a secret.
    if not isinstance(exc, yaml.MarkedYAMLError):
        return "malformed YAML"
    # PyYAML quotes the offending token in ``problem`` (an alias, a tag): blank it out.
    text = re.sub(r"'[^']*'", "'...'", exc.problem or "malformed YAML")
    if exc.problem_mark is not None:
        mark = exc.problem_mark
        text = f"line {mark.line + 1}, column {mark.column + 1}: {text}"
    if exc.context and exc.context_mark is not None:
        text += f" ({exc.context}, from line {exc.context_mark.line + 1})"
    return text
