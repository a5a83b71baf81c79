"""The trace contract (toolkit/trace.py, one base for every concept's trace): exact save/load round trips,
invariant checks, clear errors on bad files, and every registered kind reachable from Trace.load."""

from __future__ import annotations

import dataclasses
import json
import zipfile

import numpy as np
import pytest

from toolkit.attention import AttentionTrace
from toolkit.grpo.trace import GrpoCompletion, GrpoGroup, GrpoStep, GrpoTrace
from toolkit.moe.trace import MoeTrace
from toolkit.rope import RopeTrace
from toolkit.trace import SCHEMA_VERSION, Trace, TraceError, kinds, make_meta

rng = np.random.default_rng(0)


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def attention_trace(causal=True) -> AttentionTrace:
    L, H, T, d = 2, 3, 4, 8
    scores = rng.normal(size=(L, H, T, T))
    if causal:
        scores = np.where(np.tril(np.ones((T, T), bool)), scores, -np.inf)
    return AttentionTrace(
        tokens=["The", " cat", " sat", "."],
        weights=_softmax(scores).astype(np.float32),
        kv_head=np.array([0, 0, 1]),
        causal=causal,
        meta=make_meta("test", seed=0),
        q=rng.normal(size=(L, H, T, d)).astype(np.float32),
    )


def rope_trace() -> RopeTrace:
    L, H, T, d = 1, 2, 3, 4
    inv = 1.0 / (10000 ** (np.arange(0, d, 2) / d))
    pos = np.arange(T)
    ang = pos[:, None] * inv[None]  # (T, d/2)
    cos, sin = np.cos(np.concatenate([ang, ang], -1)), np.sin(np.concatenate([ang, ang], -1))

    def rot(x):  # half-split layout, as transformers' rotate_half
        x1, x2 = x[..., : d // 2], x[..., d // 2 :]
        return x * cos + np.concatenate([-x2, x1], -1) * sin

    q, k = rng.normal(size=(L, H, T, d)), rng.normal(size=(L, 1, T, d))
    return RopeTrace(
        tokens=["a", "b", "c"],
        q_pre=q,
        q_post=rot(q),
        k_pre=k,
        k_post=rot(k),
        positions=pos,
        inv_freq=inv,
        meta=make_meta("test"),
    )


def moe_trace() -> MoeTrace:
    L, T, E, k = 2, 5, 4, 2
    logits = rng.normal(size=(L, T, E)).astype(np.float32)
    probs = _softmax(logits)
    experts = np.argsort(-probs, -1)[..., :k]
    gates = np.take_along_axis(probs, experts, -1)
    counts = np.stack([np.bincount(experts[l].ravel(), minlength=E) for l in range(L)]) / (T * k)
    return MoeTrace(
        tokens=list("abcde"),
        router_logits=logits,
        probs=probs,
        experts=experts,
        gates=gates,
        expert_load=counts,
        importance=probs.mean(1),
        balance_loss=np.array([1.1, 1.2]),
        top_k=k,
    )


def grpo_trace() -> GrpoTrace:
    r = np.array([[1.0, 0.0, 1.0, 0.0]])
    comps = [
        GrpoCompletion(
            text=t,
            token_ids=[i],
            tokens=[t],
            rewards={"exact": v},
            reward=v,
            advantage=v - 0.5,
            logprob=[-0.1],
            old_logprob=[-0.1],
            ref_logprob=[-0.1],
            ratio=[1.0],
            kl=[0.0],
            entropy=[1.0],
            clipped_low=[False],
            clipped_high=[False],
        )
        for i, (t, v) in enumerate(zip(["4", "5", "4", "3"], [1.0, 0.0, 1.0, 0.0]))
    ]
    step = GrpoStep(
        step=0,
        loss=0.0,
        metrics={"reward": 0.5},
        updates=[],
        time={"total": 0.1},
        groups=[GrpoGroup(prompt="2+2?", answer="4", mean=0.5, std=0.57735, zero_std=False, completions=comps)],
    )
    return GrpoTrace(
        rewards=r, advantages=(r - r.mean(1, keepdims=True)), metrics={"reward": [0.5]}, steps=[step], config={"G": 4}
    )


MAKERS = [attention_trace, rope_trace, moe_trace, grpo_trace]


def _equal(a, b):
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y), f.name
        else:
            assert x == y, f.name


@pytest.mark.parametrize("make", MAKERS)
def test_round_trip_is_exact(make, tmp_path):
    trace = make().check()
    path = trace.save(tmp_path / "t.npz")
    _equal(trace, Trace.load(path))
    _equal(trace, type(trace).load(path))


def test_meta_names_model_seed_versions():
    meta = attention_trace().meta
    assert meta["model"] == "test" and meta["seed"] == 0
    assert meta["schema_version"] == SCHEMA_VERSION and meta["toolkit_version"]


def test_optional_arrays_stay_none(tmp_path):
    t = attention_trace()
    back = AttentionTrace.load(t.save(tmp_path / "a.npz"))
    assert back.k is None and back.v is None and back.q.shape == t.q.shape


def test_invariants_are_checked():
    t = attention_trace()
    with pytest.raises(TraceError, match="sum to 1"):
        dataclasses.replace(t, weights=t.weights * 2).check()
    leaky = t.weights.copy()
    leaky[..., 0, 1] = 0.5
    leaky[..., 0, 0] = 0.5
    with pytest.raises(TraceError, match="future"):
        dataclasses.replace(t, weights=leaky).check()
    r = rope_trace()
    with pytest.raises(TraceError, match="norms"):
        dataclasses.replace(r, q_post=r.q_post * 1.5).check()
    m = moe_trace()
    with pytest.raises(TraceError, match="out of range"):
        dataclasses.replace(m, experts=m.experts + 10).check()
    g = grpo_trace()
    with pytest.raises(TraceError, match="one step record"):
        dataclasses.replace(g, steps=[]).check()


def test_corrupt_truncated_and_missing_files(tmp_path):
    path = attention_trace().save(tmp_path / "a.npz")
    data = path.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.npz").write_bytes(b"this is not a trace")
    for bad in ("trunc.npz", "junk.npz"):
        with pytest.raises(TraceError, match="not a readable trace"):
            Trace.load(tmp_path / bad)
    with pytest.raises(TraceError, match="no trace file"):
        Trace.load(tmp_path / "missing.npz")


def _rewrite_header(path, change):
    with np.load(path, allow_pickle=False) as z:
        members = {k: z[k] for k in z.files}
    header = json.loads(bytes(members["__header__"]).decode())
    change(header)
    members["__header__"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(path, **members)


def test_other_schema_version_and_kind_are_refused(tmp_path):
    path = attention_trace().save(tmp_path / "a.npz")
    _rewrite_header(path, lambda h: h.update(schema=SCHEMA_VERSION + 1))
    with pytest.raises(TraceError, match="schema"):
        Trace.load(path)
    path = attention_trace().save(tmp_path / "b.npz")
    with pytest.raises(TraceError, match="not a rope trace"):
        RopeTrace.load(path)
    _rewrite_header(path, lambda h: h.update(kind="banana"))
    with pytest.raises(TraceError, match="unknown trace kind"):
        Trace.load(path)


def test_loading_never_unpickles(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, __header__=np.array([{"kind": "attention"}], dtype=object))
    with pytest.raises(TraceError):
        Trace.load(path)
    assert zipfile.is_zipfile(path)


def test_every_concept_trace_kind_is_registered():
    from toolkit.registry import CONCEPTS

    known = kinds()
    for concept in CONCEPTS.values():
        if concept.has_trace:
            assert any(cls.__module__ == concept.trace_module for cls in known.values()), concept.name
    assert {"attention", "rope", "moe", "grpo"} <= set(known)
