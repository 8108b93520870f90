"""Loading the directory: YAML in, a validated :class:`Directory` out, or one
``file:line: field: message`` line per problem."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from config.directory.schema import DEFER_REFERENCES, Directory, Loc


class DirectoryError(ValueError):
    """The directory file is unusable; the message names file, line and field."""


def load_directory(path: Path) -> Directory:
    """Load and validate a directory file.

    Raises:
        DirectoryError: with file, line and field of each problem.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DirectoryError(f"{path}: cannot read: {exc.strerror}") from exc
    return parse_directory(text, str(path))


def parse_directory(text: str, source: str = "<directory>") -> Directory:
    """Validate directory YAML text; see :func:`load_directory`."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise DirectoryError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, dict):
        raise DirectoryError(f"{source}: the directory must be a mapping with 'programmes'")
    try:
        directory = Directory.model_validate(data, context={DEFER_REFERENCES: True})
    except ValidationError as exc:
        problems = [(tuple(err["loc"]), err["msg"]) for err in exc.errors()]
        raise DirectoryError(_describe(node, source, problems)) from None
    problems = directory.reference_problems()
    if problems:
        raise DirectoryError(_describe(node, source, problems))
    return directory


def _describe(node: Any, source: str, problems: Iterable[tuple[Loc, str]]) -> str:
    """One ``source:line: field.path: message`` line per problem."""
    lines = []
    for loc, message in problems:
        path = ".".join(str(p) for p in loc) or "(top level)"
        lines.append(f"{source}:{_line_of(node, loc)}: {path}: {message}")
    return "\n".join(lines)


def _line_of(node: Any, loc: Iterable[Any]) -> int:
    """Best line number (1-based) for a pydantic error location in a YAML node tree."""
    current = node
    line = (node.start_mark.line + 1) if node is not None else 1
    for part in loc:
        if isinstance(current, yaml.MappingNode):
            match = next((v for k, v in current.value if k.value == str(part)), None)
            if match is None:
                break
            current = match
        elif isinstance(current, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(current.value):
                break
            current = current.value[part]
        else:
            break
        line = current.start_mark.line + 1
    return line
