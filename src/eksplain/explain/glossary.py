"""The glossary: eksplain's vocabulary, as data (``data/glossary.yaml``), and lookup by what
people type (keys, terms, aliases, any case, with "did you mean")."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from eksplain.datafiles import read_yaml
from eksplain.errors import CatalogError, suggest

__all__ = ["GlossaryEntry", "find_term", "load_glossary", "normalise"]


@dataclass(frozen=True)
class GlossaryEntry:
    key: str
    term: str
    aliases: tuple[str, ...]
    definition: str
    infrastructure: str
    eksplain: str
    related: tuple[str, ...]


def normalise(text: str) -> str:
    """Lowercase, with runs of spaces, hyphens, underscores and slashes made one space."""
    return re.sub(r"[\s\-_/]+", " ", text.strip().lower())


@functools.cache
def load_glossary() -> tuple[GlossaryEntry, ...]:
    return tuple(
        GlossaryEntry(
            key=str(row["key"]), term=str(row["term"]),
            aliases=tuple(str(a) for a in row.get("aliases") or ()),
            definition=str(row["definition"]).strip(),
            infrastructure=str(row["infrastructure"]).strip(),
            eksplain=str(row["eksplain"]).strip(),
            related=tuple(str(r) for r in row.get("related") or ()),
        )
        for row in read_yaml("glossary.yaml")
    )


def _names(entry: GlossaryEntry) -> set[str]:
    bare = re.sub(r"\s*\(.*?\)", "", entry.term)
    return {normalise(n) for n in (entry.key, entry.term, bare, *entry.aliases)}


def find_term(entries: tuple[GlossaryEntry, ...], text: str) -> GlossaryEntry:
    """The entry a user means by ``text``: key, term or alias, in any case and spacing."""
    wanted = normalise(text)
    for entry in entries:
        if wanted in _names(entry):
            return entry
    names = sorted({n for e in entries for n in _names(e)})
    raise CatalogError(
        f"Unknown term {text!r}.", hint="run `eksplain glossary` to list every term",
        suggestions=suggest(wanted, names),
    )
