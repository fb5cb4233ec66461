"""Spot capacity: the interruption notice and how often a node is reclaimed, per node-hour.

The AWS Spot Instance Advisor publishes, per instance type and region, a band for the share
``f`` of Spot capacity reclaimed in the trailing month (<5%, 5-10%, 10-15%, 15-20%, >20%).
Taking interruptions as a Poisson process with a constant rate ``lambda`` per node-hour, the
chance that a node survives a month of ``H`` = 730 hours is ``exp(-lambda H)``, so

    lambda = -ln(1 - f) / H          (interruptions per node-hour)

with ``f`` the band's upper edge (the conservative choice; data/spot.yaml says why). The
notice is the two minutes AWS gives before it stops or terminates a Spot Instance. Every
figure lives in ``data/spot.yaml`` with its source and date.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Literal

from eksplain.datafiles import read_yaml

__all__ = [
    "SPOT_NOTICE_S", "SpotBand", "band_fraction", "instance_family", "interruption_rate_per_hour",
    "spot_band",
]

SPOT_NOTICE_S = 120
"""Seconds between the Spot interruption notice and the interruption (AWS EC2 user guide,
spot-instance-termination-notices: 'issued two minutes before Amazon EC2 stops or terminates')."""


@dataclass(frozen=True)
class SpotBand:
    """The advisor band a family is in, where it was read, and whether it is a stand-in."""

    family: str
    band: str
    source: str
    observed: str
    published: bool


@functools.cache
def _data() -> dict[str, Any]:
    data: dict[str, Any] = read_yaml("spot.yaml")
    return data


def instance_family(instance_type: str) -> str:
    """The EC2 family of an instance type: ``p5.48xlarge`` -> ``p5``."""
    return instance_type.split(".", 1)[0].lower()


def spot_band(instance_type: str) -> SpotBand:
    """The published band of ``instance_type``'s family, or the stated default when none is."""
    family = instance_family(instance_type)
    for row in _data()["families"]:
        if row["family"] == family:
            return SpotBand(family, str(row["band"]), str(row["source"]),
                            str(row["observed"]), True)
    default = _data()["default"]
    return SpotBand(family, str(default["band"]), str(default["note"]), "", False)


def band_fraction(band: str, edge: Literal["upper", "midpoint"] = "upper") -> float:
    """Share of capacity reclaimed per month that stands for ``band`` ('10-15%' -> 0.15)."""
    row = _data()["advisor"]["bands"][band]
    lower, upper = float(row["lower"]), float(row["upper"])
    return upper if edge == "upper" else (lower + upper) / 2


def interruption_rate_per_hour(instance_type: str) -> float:
    """Spot interruptions per node-hour of ``instance_type``: -ln(1 - f) / 730, with f the upper
    edge of its family's advisor band (module docstring)."""
    advisor = _data()["advisor"]
    fraction = band_fraction(spot_band(instance_type).band, advisor["edge"])
    return -math.log1p(-fraction) / float(advisor["hours_per_month"])
