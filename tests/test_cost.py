"""Dollars, checkpoints and failures, each worked by hand."""

import math

import pytest

import eksplain
from eksplain.checkpoint import (
    StorageOption,
    checkpoint_plan,
    failure_rate,
    find_storage,
    load_storage,
    read_seconds,
    storage_usd_per_month,
)
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


# g6e.xlarge: 2.5 Gbps of network (instances.csv, Karpenter's table) = 2.5e9 / 8 = 312.5 MB/s.
G6E_XLARGE_BYTES_PER_S = 2.5e9 / 8


@pytest.mark.parametrize("storage", ["s3", "efs", "fsx-lustre"])
def test_checkpoint_throughput_is_capped_by_the_node_network(storage: str) -> None:
    # Per client (storage.yaml): S3 10 GB/s write, 10.625 GB/s read; EFS 1.573 GB/s; EBS gp3
    # 2.097 GB/s; FSx 150 GB/s, and its file system for two 10 TB checkpoints gives
    # 2e13 / 2^40 TiB x 125 MB/s per TiB = 2.27 GB/s. All exceed what one g6e.xlarge moves,
    # 312.5 MB/s: 10 TB is written and read back in 1e13 / 312.5e6 = 32,000 s each.
    option = find_storage(load_storage(), storage)
    g6e = find_instance(CATALOG, "g6e.xlarge")
    check = checkpoint_plan(10**13, 1, 1, option, 0.001, g6e)
    assert check.write_s == pytest.approx(32_000)
    assert check.restore_s == pytest.approx(32_000)


def test_ebs_is_capped_by_the_instance_ebs_bandwidth() -> None:
    # g6e.xlarge has 5,000 Mbps of dedicated EBS bandwidth (instances.csv ebs_mbps, Karpenter's
    # table) = 625 MB/s, under gp3's 2.097 GB/s per volume: 1e13 / 625e6 = 16,000 s.
    gp3 = find_storage(load_storage(), "ebs-gp3")
    g6e = find_instance(CATALOG, "g6e.xlarge")
    assert checkpoint_plan(10**13, 1, 1, gp3, 0.001, g6e).write_s == pytest.approx(16_000)


def test_checkpoint_cap_is_per_node_and_local_disks_are_not_capped() -> None:
    # Two g6e.xlarge nodes write 100 GB to S3 at 2 x 312.5 MB/s: 1e11 / 625e6 = 160 s.
    s3 = find_storage(load_storage(), "s3")
    g6e = find_instance(CATALOG, "g6e.xlarge")
    assert checkpoint_plan(10**11, 2, 2, s3, 0.001, g6e).write_s == pytest.approx(160)
    # Instance-store NVMe is inside the node: 16 GB/s (p4d RAID 0, storage.yaml) whatever the
    # network: 1e11 / 16e9 = 6.25 s.
    nvme = find_storage(load_storage(), "instance-nvme")
    assert checkpoint_plan(10**11, 1, 1, nvme, 0.001, g6e).write_s == pytest.approx(6.25)


def test_training_estimate_caps_checkpoints_by_the_instance() -> None:
    # Llama-3.2-1B: 1,235,814,400 parameters x 14 bytes = 17,301,401,600 B of checkpoint, written
    # to S3 from one g6e.xlarge at 312.5 MB/s: 17,301,401,600 / 312.5e6 = 55.36 s (not the
    # 1.73 s that S3's 10 GB/s per client alone would give).
    est = eksplain.estimate(eksplain.EstimateRequest(
        model="llama-3.2-1b", hardware="g6e.xlarge", task="training", storage="s3"))
    assert est.checkpoint is not None
    assert est.checkpoint.size_bytes == 17_301_401_600
    assert est.checkpoint.write_s == pytest.approx(17_301_401_600 / G6E_XLARGE_BYTES_PER_S)


def test_fsx_is_sized_and_billed_at_its_minimum() -> None:
    # FSx for Lustre SSD starts at 1.2 TiB = 1,319,413,953,331 B (storage.yaml min_size_tib):
    # $0.145 per GB-month x 1,319.41 GB = $191.31 a month however small the model, and
    # PERSISTENT_2-125 gives 125 MB/s per TiB x 1.2 TiB = 150 MB/s for the whole file system,
    # so 16e9 bytes of weights load in 16e9 / 150e6 = 106.7 s, not at the 150 GB/s client peak.
    fsx = find_storage(load_storage(), "fsx-lustre")
    p5 = find_instance(CATALOG, "p5.4xlarge")
    assert storage_usd_per_month(fsx, 16 * 10**9) == pytest.approx(191.31, abs=0.01)
    assert read_seconds(fsx, 16 * 10**9, p5) == pytest.approx(106.67, abs=0.01)
    # S3 is billed by the byte: 16 GB x $0.023 = $0.368.
    s3 = find_storage(load_storage(), "s3")
    assert storage_usd_per_month(s3, 16 * 10**9) == pytest.approx(0.368)
