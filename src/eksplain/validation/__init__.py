"""The reference set: eksplain's predictions against published measurements.

    run() -> Report           every memory and speed case, predicted, with its signed error
    render_markdown(report)   the table docs/accuracy.md holds
    report_dict(report)       the same as JSON (``eksplain validate --json``)

Cases live in ``data/reference/memory*.yaml`` and ``speed*.yaml``, each with its source and an
exact quote. Cases the estimators cannot express are listed as excluded, with the reason; cases
eksplain misses for a known reason carry it (``known_miss``), and tests hold the rest to their
tolerance.
"""

from __future__ import annotations

from eksplain.calibration import load_calibration
from eksplain.validation import memory, speed
from eksplain.validation.report import (
    Case,
    Outcome,
    Report,
    evaluate,
    load_cases,
    render_markdown,
    report_dict,
)

__all__ = ["TOLERANCES", "Case", "Outcome", "Report", "load_cases", "render_markdown",
           "report_dict", "run"]

TOLERANCES = {**memory.TOLERANCES, **speed.TOLERANCES}


def run() -> Report:
    """Predict every reference case, memory then speed."""
    cal = load_calibration()
    outcomes = [evaluate(c, lambda c: memory.predict(c, cal), memory.TOLERANCES)
                for c in load_cases("memory")]
    outcomes += [evaluate(c, lambda c: speed.predict(c, cal), speed.TOLERANCES)
                 for c in load_cases("speed")]
    return Report(tuple(outcomes))
