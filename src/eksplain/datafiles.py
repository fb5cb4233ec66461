"""Reading the packaged data files (the core's only I/O): text, CSV and YAML by package path."""

from __future__ import annotations

import csv
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import yaml

__all__ = ["data_files", "read_csv", "read_yaml"]

# libyaml's parser is about ten times faster than the pure-Python one; the catalogue's start-up
# time depends on it. Both give the same values.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _path(name: str) -> Traversable:
    node = resources.files("eksplain.data")
    for part in name.split("/"):
        node = node.joinpath(part)
    return node


def read_yaml(name: str) -> Any:
    """A YAML file under ``eksplain/data`` (``models/llama.yaml``)."""
    return yaml.load(_path(name).read_text(encoding="utf-8"), Loader=_LOADER)


def read_csv(name: str) -> list[dict[str, str]]:
    """A CSV file under ``eksplain/data`` as a list of rows."""
    return list(csv.DictReader(_path(name).read_text(encoding="utf-8").splitlines()))


def data_files(folder: str, prefix: str = "", suffix: str = ".yaml") -> list[str]:
    """Names (``folder/file``) of the files in a data folder, sorted."""
    names = sorted(p.name for p in _path(folder).iterdir())
    return [f"{folder}/{n}" for n in names if n.startswith(prefix) and n.endswith(suffix)]
