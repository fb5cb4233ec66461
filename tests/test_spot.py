"""eksplain.spot: the notice and the per-node-hour interruption rate from advisor bands."""

from __future__ import annotations

import math

import pytest

from eksplain import spot


def test_notice_is_two_minutes() -> None:
    assert spot.SPOT_NOTICE_S == 120


@pytest.mark.parametrize(("instance_type", "fraction"), [
    ("p4d.24xlarge", 0.10),   # 5-10% band, upper edge
    ("p5.48xlarge", 0.20),    # 10-20%
    ("g6.12xlarge", 0.05),    # <5%
    ("g5.48xlarge", 0.20),    # 15-20%
])
def test_rate_is_monthly_share_as_poisson_rate(instance_type: str, fraction: float) -> None:
    # survival over a 730-hour month = exp(-rate x 730) = 1 - f
    rate = spot.interruption_rate_per_hour(instance_type)
    assert math.exp(-rate * 730) == pytest.approx(1 - fraction, rel=1e-12)


def test_family_without_published_band_gets_the_stated_default() -> None:
    band = spot.spot_band("trn1.32xlarge")
    assert not band.published
    assert band.family == "trn1"
    assert "unverified" in band.source
    assert spot.interruption_rate_per_hour("trn1.32xlarge") == pytest.approx(-math.log(0.8) / 730)


def test_midpoint_edge() -> None:
    assert spot.band_fraction("10-15%", "midpoint") == pytest.approx(0.125)
    assert spot.band_fraction("10-15%") == pytest.approx(0.15)
