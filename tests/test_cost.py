"""Dollars, checkpoints and failures, each worked by hand."""

import math

import pytest

from eksplain.checkpoint import StorageOption, checkpoint_plan, failure_rate
from eksplain.cost import HOURS_PER_MONTH, Throughput, cost, node_plan
from eksplain.errors import InputError
from eksplain.hardware import find_instance, load_catalog

CATALOG = load_catalog()


def test_serving_dollars_by_hand() -> None:
    plan = node_plan(CATALOG, "nvidia-h100-sxm5-80gb", 8, find_instance(CATALOG, "p5.48xlarge"),
                     "us-east-1", "on-demand")
    # p5.48xlarge: $55.04/hour (us-east-1, 2026-07-20); 730 hours a month.
    money = cost(plan, Throughput(output_tokens_per_s=1000), 0.5, 0.10, "us-east-1", "on-demand")
    assert money.usd_per_hour == pytest.approx(55.04)
    assert money.usd_per_month == pytest.approx(55.04 * HOURS_PER_MONTH)
    # 1000 tokens/s at 50% utilization = 1.8M tokens an hour: $55.04 / 1.8 = $30.58 per million.
    assert money.usd_per_million_output_tokens == pytest.approx(55.04 / 1.8)


def test_cheapest_instance_for_an_accelerator() -> None:
    one = node_plan(CATALOG, "nvidia-h100-sxm5-80gb", 1, None, "us-east-1", "on-demand")
    assert (one.instance.name, one.nodes) == ("p5.4xlarge", 1)
    sixteen = node_plan(CATALOG, "nvidia-h100-sxm5-80gb", 16, None, "us-east-1", "on-demand")
    assert (sixteen.instance.name, sixteen.nodes) == ("p5.48xlarge", 2)


def test_unknown_price_is_said_not_invented() -> None:
    plan = node_plan(CATALOG, "aws-trainium2", 16, None, "us-east-1", "on-demand")
    money = cost(plan, Throughput(output_tokens_per_s=100), 1.0, 0.10, "us-east-1", "on-demand")
    assert not money.price_known
    assert money.usd_per_hour is None
    assert "price file" in money.note
    with pytest.raises(InputError):
        cost(plan, Throughput(), 0.0, 0.10, "us-east-1", "on-demand")


def test_young_daly_interval_by_hand() -> None:
    # 1 TB over 2 nodes at 1 GB/s each: written in 500 s, restored in 250 s.
    # 1,000 GPUs at 0.001 failures per GPU-day: one failure a day, MTBF 86,400 s.
    # Interval sqrt(2 x 500 x 86,400) = 9,295 s; lost: 500/9,295 + (9,295/2 + 250)/86,400.
    storage = StorageOption("test", "test", 2e9, 1e9, 0.1, "")
    check = checkpoint_plan(10**12, 1000, 2, storage, 0.001)
    assert check.write_s == pytest.approx(500)
    assert check.restore_s == pytest.approx(250)
    assert check.interval_s == pytest.approx(math.sqrt(2 * 500 * 86_400))
    expected = 500 / check.interval_s + (check.interval_s / 2 + 250) / 86_400
    assert check.overhead_fraction == pytest.approx(expected)
    assert check.storage_usd_per_month == pytest.approx(100)


def test_failure_rate_from_llama3() -> None:
    # Llama 3 405B: 419 unexpected interruptions in 54 days on 16,384 GPUs.
    assert failure_rate() == pytest.approx(419 / (16_384 * 54), rel=1e-3)
