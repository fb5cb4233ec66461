"""Grid the FP8/INT8 batched-step share (``low_precision_step_scale``) against the throughput
rows of the speed reference set, with the validation's own predictions.

    python tools/fit_step_scale.py [0.2,0.25,...]

Fit set: the FP8 TensorRT-LLM 0.9 throughput rows (static batching); held out: the other
throughput rows (TensorRT-LLM 1.0 and NIM, continuous batching). Prints the median and mean
absolute error of each set, and of all throughput rows, for every value of the grid
(data/calibration.yaml, speed.serving, records the result).
"""

from __future__ import annotations

import dataclasses
import statistics
import sys

from eksplain.calibration import Calibration, load_calibration
from eksplain.validation import speed
from eksplain.validation.report import Case, load_cases

GRID = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)


def with_scale(cal: Calibration, scale: float) -> Calibration:
    """``cal`` with the default family's ``low_precision_step_scale`` replaced."""
    serving = tuple((family, dataclasses.replace(eff, low_precision_step_scale=scale)
                     if family == "default" else eff) for family, eff in cal.speed.serving)
    return dataclasses.replace(cal, speed=dataclasses.replace(cal.speed, serving=serving))


def errors(cal: Calibration, cases: list[Case]) -> list[float]:
    return [abs(speed.predict(c, cal) / c.value - 1) for c in cases]


def main(grid: tuple[float, ...]) -> None:
    rows = [c for c in load_cases("speed") if c.kind == "serving" and not c.exclude
            and c.quantity == "output_tokens_per_s"]
    fit = [c for c in rows if "v09" in c.id and c.setup.get("quantization") == "fp8"]
    held = [c for c in rows if "v09" not in c.id]
    base = load_calibration()
    for scale in grid:
        cal = with_scale(base, scale)
        parts = []
        for name, cases in (("fit", fit), ("held out", held), ("all", rows)):
            e = errors(cal, cases)
            parts.append(f"{name} (n={len(e)}) median {statistics.median(e):.1%} "
                         f"mean {statistics.mean(e):.1%}")
        print(f"low_precision_step_scale {scale:g}: " + "; ".join(parts))


if __name__ == "__main__":
    main(tuple(float(x) for x in sys.argv[1].split(",")) if len(sys.argv) > 1 else GRID)
