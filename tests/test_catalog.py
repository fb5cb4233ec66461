"""The bundled catalogue: every entry parses and reproduces its published parameter count."""

from pathlib import Path

import pytest

from eksplain.catalog import ModelEntry, find_model, load_models, resolve_model
from eksplain.errors import CatalogError, InputError
from eksplain.memory import kv_bytes_for_sequence

ENTRIES = load_models()

# Published figures that differ from the exact count of the stored tensors, with the reason.
KNOWN_DIFFERENCES = {
    # The model card's n_parameters (6,053,381,344) is 2.5M above the tensors of the HF config.
    "EleutherAI/gpt-j-6b": 0.001,
}


# Checkpoints that store the tied LM head as a second copy of the embedding: the published
# safetensors count is the unique parameters plus one vocab x hidden matrix.
TIED_HEAD_STORED_TWICE = {"tiiuae/falcon-7b", "tiiuae/falcon-40b"}


def _relative_tolerance(entry: ModelEntry) -> float:
    if entry.model.id in KNOWN_DIFFERENCES:
        return KNOWN_DIFFERENCES[entry.model.id]
    if entry.published_total is not None:
        return 0.0
    # Rounded figures ("1.7B"): half a unit of the last digit shown is up to 1.5%.
    return 0.015


def test_catalogue_is_large_enough_and_sourced() -> None:
    assert len(ENTRIES) >= 60
    for entry in ENTRIES:
        assert entry.model.source, entry.model.id
        assert entry.params_source, entry.model.id
        assert entry.published_total or entry.published_total_approx, entry.model.id


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.model.id)
def test_parameter_count_matches_published(entry: ModelEntry) -> None:
    published = entry.published_total or entry.published_total_approx
    assert published
    total = entry.model.params.total
    if entry.model.id in TIED_HEAD_STORED_TWICE:
        arch = entry.model.architecture
        assert arch.tied_embeddings
        total += arch.vocab_size * arch.hidden_size
    error = abs(total - published) / published
    assert error <= _relative_tolerance(entry), (total, published)


def test_required_families_are_present() -> None:
    types = {e.model.architecture.model_type for e in ENTRIES}
    for required in ("llama", "mistral", "mixtral", "qwen2", "qwen3", "qwen3_moe", "gemma2",
                     "gemma3", "phi3", "deepseek_v3", "gpt2", "bert", "t5", "xlm-roberta"):
        assert required in types, required


def test_lookup_is_case_insensitive_and_knows_aliases() -> None:
    assert find_model(ENTRIES, "META-LLAMA/LLAMA-3.1-8B").model.params.total == 8_030_261_248
    assert find_model(ENTRIES, "llama-3.1-8b").model.params.total == 8_030_261_248


def test_unknown_model_suggests() -> None:
    with pytest.raises(CatalogError) as err:
        find_model(ENTRIES, "meta-llama/Llama-3.1-8")
    assert err.value.suggestions


def test_local_config_dir_and_file(llama_config_dir: Path) -> None:
    assert resolve_model(str(llama_config_dir)).params.total == 8_030_261_248
    assert resolve_model(str(llama_config_dir / "config.json")).params.total == 8_030_261_248


def test_bad_local_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        resolve_model(str(tmp_path))
    with pytest.raises(InputError, match="No such file"):
        resolve_model(str(tmp_path / "missing.json"))


def test_names_are_unique_across_entries() -> None:
    seen: dict[str, str] = {}
    for entry in ENTRIES:
        for name in {entry.model.id.lower(), *entry.aliases}:
            assert name not in seen, (name, seen.get(name), entry.model.id)
            seen[name] = entry.model.id


@pytest.mark.parametrize("name", ["llama-4-scout", "llama-4-maverick"])
def test_llama4_chunked_attention_kv(name: str) -> None:
    # Scout lists no_rope_layers; Maverick's config.json has none, and transformers builds it
    # from no_rope_layer_interval 4 (Llama4TextConfig.__post_init__, v5.24.0), so both have the
    # same attention: 12 NoPE layers (every 4th of 48) attend globally and 36 RoPE layers within
    # chunks of 8,192 tokens. 2 (K, V) x 8 KV heads x 128 x 2 bytes = 4,096 B per token per layer.
    # 128k sequence: (12 x 131,072 + 36 x 8,192) x 4,096 = 7,650,410,496 B = 7.125 GiB.
    arch = find_model(ENTRIES, name).model.architecture
    assert sum(w is None for w in arch.layer_windows) == 12
    assert kv_bytes_for_sequence(arch, 16, 131_072) == 7_650_410_496
