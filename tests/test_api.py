"""The public Python API: a checked __all__, and the facade used the way the README shows."""

import inspect

import eksplain
from eksplain import api


def test_all_is_complete_and_importable() -> None:
    for name in eksplain.__all__:
        assert hasattr(eksplain, name), name
    public = {n for n in dir(eksplain)
              if not n.startswith("_") and not inspect.ismodule(getattr(eksplain, n))}
    assert public <= set(eksplain.__all__)
    for name in api.__all__:
        assert hasattr(api, name), name


def test_readme_snippet() -> None:
    est = eksplain.estimate(eksplain.EstimateRequest(
        model="meta-llama/Llama-3.1-8B", hardware="l40s", batch=16, seq_len=8192,
    ))
    assert est.fits
    assert est.kv is not None
    assert est.kv.max_concurrency > 16
    assert est.memory.total_bytes < est.memory.capacity_bytes
