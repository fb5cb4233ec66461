"""The hardware catalogue: complete against the sourced tables, Kubernetes-shaped, queryable."""

import csv
from pathlib import Path

import pytest

from eksplain.errors import CatalogError, InputError
from eksplain.hardware import (
    HardwareCatalog,
    filter_instances,
    find_accelerator,
    find_instance,
    load_catalog,
    offering_for,
    resolve_hardware,
)
from eksplain.units import GIB, MIB


def test_every_reference_accelerator_and_instance_is_in_the_catalogue(
    shared_reference: Path,
) -> None:
    catalog = load_catalog()
    accelerators = {a.id for a in catalog.accelerators}
    instances = {i.name for i in catalog.instances}
    with (shared_reference / "accelerators.csv").open() as handle:
        for row in csv.DictReader(handle):
            assert row["accelerator_id"] in accelerators
    with (shared_reference / "ec2_instances.csv").open() as handle:
        for row in csv.DictReader(handle):
            if row["vcpus"]:  # p6e-gb200 is sold as UltraServers only, with no node facts
                assert row["instance_type"] in instances


def test_every_row_keeps_a_source() -> None:
    catalog = load_catalog()
    assert all(a.source for a in catalog.accelerators)
    assert all(i.source for i in catalog.instances)
    assert all(o.source and o.price_date for o in catalog.offerings)


@pytest.mark.parametrize("family", ["c7i", "m7i", "r7i", "c7g"])
def test_cpu_families_are_present_and_priced(family: str) -> None:
    catalog = load_catalog()
    rows = filter_instances(catalog, family)
    assert rows, family
    assert all(r.accelerator_id is None for r in rows)
    assert all(offering_for(catalog, r.name) is not None for r in rows)


def test_allocatable_follows_the_eks_reservation_formula() -> None:
    # g6e.2xlarge: 8 vCPU. kube-reserved CPU = 60 + 10 + 2 x 5 + 4 x 2.5 = 90 millicores.
    # Memory: 255 MiB + 11 MiB x 110 pods + 100 MiB eviction threshold = 1565 MiB.
    inst = find_instance(load_catalog(), "g6e.2xlarge")
    assert inst.vcpus == 8
    assert inst.overhead.cpu_millicores == 90
    assert inst.overhead.memory_bytes == 1565 * MIB
    assert inst.allocatable.cpu_millicores == 8000 - 90
    assert inst.allocatable.memory_bytes < inst.capacity.memory_bytes <= inst.memory_bytes


def test_extended_resources() -> None:
    catalog = load_catalog()
    p5 = find_instance(catalog, "p5.48xlarge")
    assert p5.capacity.get("nvidia.com/gpu") == 8
    assert p5.capacity.get("vpc.amazonaws.com/efa") == 32
    inf2 = find_instance(catalog, "inf2.48xlarge")
    assert inf2.capacity.get("aws.amazon.com/neuron") == 12


@pytest.mark.parametrize(
    ("name", "accelerator"),
    [("h100", "nvidia-h100-sxm5-80gb"), ("H100-80GB", "nvidia-h100-sxm5-80gb"),
     ("h200-141gb", "nvidia-h200-sxm-141gb"), ("a100-40gb", "nvidia-a100-sxm4-40gb"),
     ("a100-80gb", "nvidia-a100-sxm4-80gb"), ("l40s", "nvidia-l40s"), ("l4", "nvidia-l4"),
     ("a10g", "nvidia-a10g"), ("t4", "nvidia-t4"), ("trainium", "aws-trainium"),
     ("trainium2", "aws-trainium2"), ("inferentia2", "aws-inferentia2")],
)
def test_short_names(name: str, accelerator: str) -> None:
    assert find_accelerator(load_catalog(), name).id == accelerator


def test_instance_type_means_all_its_accelerators() -> None:
    choice = resolve_hardware(load_catalog(), "p5.48xlarge", None)
    assert (choice.accelerator.id, choice.devices) == ("nvidia-h100-sxm5-80gb", 8)
    assert resolve_hardware(load_catalog(), "p5.48xlarge", 2).devices == 2
    assert resolve_hardware(load_catalog(), "p5.48xlarge", 16).devices == 16  # two nodes
    with pytest.raises(InputError, match="partly used"):
        resolve_hardware(load_catalog(), "p5.48xlarge", 12)


def test_unknown_names_suggest() -> None:
    with pytest.raises(CatalogError) as err:
        find_accelerator(load_catalog(), "h10")
    assert err.value.suggestions
    with pytest.raises(CatalogError) as err2:
        find_instance(load_catalog(), "p5.48xlarg")
    assert "p5.48xlarge" in err2.value.suggestions


def test_memory_filter_uses_total_accelerator_memory() -> None:
    rows = filter_instances(load_catalog(), "g6e", 96 * GIB)
    names = {r.name for r in rows}
    assert "g6e.12xlarge" in names  # 4 x 48 GB
    assert "g6e.xlarge" not in names  # 1 x 48 GB


def test_queries_take_the_catalogue_as_data() -> None:
    full = load_catalog()
    small = HardwareCatalog(
        accelerators=tuple(a for a in full.accelerators if a.id == "nvidia-l4"),
        instances=tuple(i for i in full.instances if i.family == "g6")[:2],
        offerings=(),
    )
    assert find_accelerator(small, "l4").id == "nvidia-l4"
    with pytest.raises(CatalogError):
        find_accelerator(small, "h100")
    assert offering_for(small, "g6.xlarge") is None
