"""The one error tree of eksplain.

    EksplainError            base; every error carries a ``hint`` (how to fix it)
     ├── InputError          an invalid request (bad value, impossible parallelism)
     ├── CatalogError        a model, accelerator or instance name is unknown ("did you mean")
     ├── InfeasibleError     the request is valid but cannot be satisfied (does not fit, no plan)
     └── RenderError         manifests could not be built or failed validation

Front ends map every ``EksplainError`` to a clean message and exit code 2; anything else
is a bug and may surface as a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "CatalogError",
    "EksplainError",
    "InfeasibleError",
    "InputError",
    "RenderError",
    "suggest",
]


class EksplainError(Exception):
    """Base class: a message saying what is wrong, and a hint saying how to fix it."""

    def __init__(self, message: str, hint: str = "", suggestions: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.suggestions = tuple(suggestions)

    def __str__(self) -> str:
        text = self.message
        if self.suggestions:
            text += " Did you mean: " + ", ".join(self.suggestions) + "?"
        if self.hint:
            text += f" ({self.hint})"
        return text


class InputError(EksplainError):
    """Invalid input: a value out of range, an impossible combination of options."""


class CatalogError(EksplainError):
    """An unknown name: model, accelerator, instance type, region."""


class InfeasibleError(EksplainError):
    """A valid request that no configuration can satisfy."""


class RenderError(EksplainError):
    """Manifests could not be rendered or did not validate."""


def suggest(name: str, choices: Iterable[str], limit: int = 3) -> list[str]:
    """Return up to ``limit`` close matches for ``name`` among ``choices`` (case-insensitive)."""
    by_lower: dict[str, str] = {}
    for choice in choices:
        by_lower.setdefault(choice.lower(), choice)
    matches = difflib.get_close_matches(name.lower(), list(by_lower), n=limit, cutoff=0.6)
    if not matches:
        matches = [low for low in by_lower if name.lower() in low][:limit]
    return [by_lower[m] for m in matches]
