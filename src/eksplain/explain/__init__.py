"""The explain use case: a glossary term, defined, and quantified for the user's own workload.

    explain(term, model=None, hardware=None) -> Explanation
    glossary() -> every entry

Definitions live in ``data/glossary.yaml`` (the project's own words); quantified impacts are
computed by the same estimators ``estimate`` and ``plan`` use (``explain.impacts``). Without a
model, a default workload (Llama-3.1-8B on an H100) is used and stated.
"""

from __future__ import annotations

from dataclasses import dataclass

from eksplain.catalog import resolve_model
from eksplain.errors import EksplainError
from eksplain.explain.glossary import GlossaryEntry, find_term, load_glossary
from eksplain.explain.impacts import IMPACTS, Impact, Workload, fewest_devices
from eksplain.hardware import load_catalog, resolve_hardware
from eksplain.search import DECISION_TERMS

__all__ = [
    "DEFAULT_HARDWARE", "DEFAULT_MODEL", "Explanation", "GlossaryEntry", "explain", "glossary",
    "used_by",
]

DEFAULT_MODEL = "meta-llama/Llama-3.1-8B"
DEFAULT_HARDWARE = "h100"
DEFAULT_MODELS = {"embedding": "BAAI/bge-large-en-v1.5", "bert": "BAAI/bge-large-en-v1.5"}


@dataclass(frozen=True)
class Explanation:
    entry: GlossaryEntry
    workload: Workload | None
    impact: Impact | None
    impact_error: str  # why a quantified impact could not be computed for this workload
    used_by: tuple[str, ...]


def used_by(key: str) -> tuple[str, ...]:
    """Where eksplain uses a term: plan decisions, quantified explanations."""
    places = []
    if key in DECISION_TERMS:
        places.append("plan: the decisions it explains")
    if key in IMPACTS:
        places.append(f"explain: {IMPACTS[key].__name__.replace('_', ' ')} figures")
    return tuple(places)


def glossary() -> tuple[GlossaryEntry, ...]:
    return load_glossary()


def explain(term: str, model: str | None = None, hardware: str | None = None,
            input_tokens: int = 512, output_tokens: int = 256) -> Explanation:
    """The entry for ``term``, with its impact on the workload (or the default one)."""
    entry = find_term(load_glossary(), term)
    impact_fn = IMPACTS.get(entry.key)
    if impact_fn is None:
        return Explanation(entry, None, None, "", used_by(entry.key))
    name = model or DEFAULT_MODELS.get(entry.key, DEFAULT_MODEL)
    resolved = resolve_model(name)
    resolve_hardware(load_catalog(), hardware or DEFAULT_HARDWARE, None)  # bad names fail early
    if not resolved.architecture.causal:  # an encoder reads its input and generates nothing
        input_tokens = min(input_tokens, resolved.architecture.max_context)
        output_tokens = 0
    workload = Workload(
        model=resolved, model_name=name, hardware=hardware or DEFAULT_HARDWARE,
        default=model is None and hardware is None, input_tokens=input_tokens,
        output_tokens=output_tokens,
    )
    try:
        workload = fewest_devices(workload)
        impact: Impact | None = impact_fn(workload)
        error = ""
    except EksplainError as exc:
        impact, error = None, str(exc)
    return Explanation(entry, workload, impact, error, used_by(entry.key))
