"""Class-set files given to the importers (--classes FILE).

Two shapes:
  - JSON in ClassSet.to_dict's shape ({"names": [...], "display": [...], "polarity": {...},
    "wheel": [...], "kind": ...}), optionally with "aliases": {"sad": "sadness"};
  - plain text, one class per line in model order, optionally followed by aliases:
        amusement
        sadness = sad, sorrow
    blank lines and lines starting with # are skipped.
Aliases are other names a dataset writes for a class (ArtPhoto's file prefix 'sad'); they
map names while importing and are not part of the class set the dataset declares.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from emotion_core.importers import (DataImportError, json_array_items, line_finder, load_json, read_text,
                                    text_lines)
from emotion_core.labels import ClassSet

Aliases = dict[str, str]


def read_class_file(path: str | os.PathLike) -> tuple[ClassSet, Aliases]:
    """(class set, aliases) of a classes file; DataImportError names the file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataImportError(f"{path}: classes file not found")
    text = read_text(path, path.name)
    if text.lstrip().startswith("{"):
        return _from_json(text, path.name)
    return _from_text(path)


def _from_text(path: Path) -> tuple[ClassSet, Aliases]:
    names, aliases, first_line = [], {}, {}
    for line_no, line in text_lines(path, path.name):
        if line.startswith("#"):
            continue
        name, _, alias_text = (part.strip().lower() for part in line.partition("="))
        if not name:
            raise DataImportError(f"{path.name} line {line_no}: no class name before '='")
        for key in [name] + [a.strip() for a in alias_text.split(",") if a.strip()]:
            if key in first_line:
                raise DataImportError(f"{path.name} line {line_no}: duplicate class name {key!r} "
                                      f"(first on line {first_line[key]})")
            first_line[key] = line_no
            if key != name:
                aliases[key] = name
        names.append(name)
    return _class_set(lambda: ClassSet(tuple(names)), path.name), aliases


def _from_json(text: str, shown: str) -> tuple[ClassSet, Aliases]:
    data = load_json(text, shown)
    if not isinstance(data, dict) or not isinstance(data.get("names"), list):
        raise DataImportError(f"{shown} line 1: expected an object with a 'names' list")
    _refuse_duplicate_json_names(text, shown)
    classes = _class_set(lambda: ClassSet.from_dict(data), shown)
    raw_aliases = data.get("aliases") or {}
    if not isinstance(raw_aliases, dict):
        raise DataImportError(f"{shown}: 'aliases' must map other names to class names")
    aliases = {}
    for alias, target in raw_aliases.items():
        key = str(alias).strip().lower()
        if key in classes.names:
            raise DataImportError(f"{shown}: alias {alias!r} is already a class name")
        try:
            aliases[key] = classes.parse(str(target))
        except ValueError as err:
            raise DataImportError(f"{shown}: alias {alias!r}: {err}") from None
    return classes, aliases


def _refuse_duplicate_json_names(text: str, shown: str) -> None:
    """The line of the second occurrence of a repeated name in the 'names' list."""
    start = re.search(r'"names"\s*:\s*\[', text)
    if start is None:
        return  # 'names' written with escapes; ClassSet still refuses duplicates, without a line
    line_of, seen = line_finder(text), {}
    for offset, name in json_array_items(text, start.end() - 1):
        key = str(name).strip().lower()
        if key in seen:
            raise DataImportError(f"{shown} line {line_of(offset)}: duplicate class name {key!r} "
                                  f"(first on line {seen[key]})")
        seen[key] = line_of(offset)


def _class_set(build, shown: str) -> ClassSet:
    try:
        return build()
    except (ValueError, TypeError) as err:
        raise DataImportError(f"{shown}: {err}") from None
