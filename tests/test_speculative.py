"""Speculative decoding and distillation: prompt lookup and greedy acceptance on known inputs, greedy output
identical to plain greedy decoding and to transformers' assisted generation (prompt lookup and a draft model), the
rejection-sampling rule checked statistically on a small vocabulary, the distillation loss against
torch.nn.functional.kl_div, the distilled draft against peft's merge, the recorded results, slides and demo."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from architectures import ARCHITECTURES, tiny

from lecture.deck import deck_slides
from toolkit import speculative as spec
from toolkit.speculative import decode, distill
from toolkit.speculative import figures as plots

# ---- pure functions ----------------------------------------------------------------------------------------------


def test_prompt_lookup_follows_transformers():
    ids = [5, 6, 7, 8, 9, 1, 5, 6]
    assert spec.lookup(ids, 3) == [7, 8, 9]  # bigram (5, 6) seen at the start
    assert spec.lookup(ids, 10) == [7, 8, 9, 1, 5, 6]  # cut at the end of the context
    assert spec.lookup([1, 2, 3, 4], 3) == []  # nothing repeats
    assert spec.lookup([4, 2, 9, 4, 7, 9, 4], 2, ngram=2) == [7, 9]  # (9, 4) at 2..3 is followed by 7, 9
    assert spec.lookup([4, 1, 4, 2, 4], 2, ngram=1) == [1, 4]  # unigram 4: the first match, left to right


def test_prompt_lookup_equals_transformers_candidate_generator():
    from transformers import GenerationConfig
    from transformers.generation.candidate_generator import PromptLookupCandidateGenerator

    rng = np.random.default_rng(0)
    for _ in range(50):
        ids = rng.integers(0, 6, size=rng.integers(3, 30)).tolist()
        gen = PromptLookupCandidateGenerator(num_output_tokens=4, max_matching_ngram_size=2, max_length=1000)
        cand, _ = gen.get_candidates(torch.tensor([ids]))
        assert spec.lookup(ids, 4, ngram=2) == cand[0, len(ids) :].tolist()
    assert GenerationConfig  # imported for its side effects in older versions


def test_greedy_acceptance():
    assert spec.accept_greedy([3, 4, 5], [3, 4, 9, 1]) == 2
    assert spec.accept_greedy([3, 4, 5], [3, 4, 5, 1]) == 3
    assert spec.accept_greedy([3, 4, 5], [0, 4, 5, 1]) == 0
    assert spec.accept_greedy([], [7]) == 0


def test_residual_and_expected_tokens():
    p, q = np.array([0.5, 0.3, 0.2]), np.array([0.2, 0.6, 0.2])
    np.testing.assert_allclose(spec.residual(p, q), [1.0, 0.0, 0.0])
    np.testing.assert_allclose(spec.expected_tokens(0.5, 3), (1 - 0.5**4) / 0.5)
    assert float(spec.expected_tokens(1.0, 4)) == 5 and float(spec.expected_tokens(0.0, 4)) == 1
    assert float(spec.speedup(0.8, 4, 0.0)) == pytest.approx(float(spec.expected_tokens(0.8, 4)))


def _chi2_pvalue(counts: np.ndarray, probs: np.ndarray) -> float:
    expected = probs * counts.sum()
    stat = float(((counts - expected) ** 2 / expected).sum())
    df = len(counts) - 1
    return float(torch.special.gammaincc(torch.tensor(df / 2, dtype=torch.float64), torch.tensor(stat / 2)))


def _speculative_samples(P, Q, n_tokens, k, trials, rng, rule):
    """Sequences of n_tokens from toy Markov 'models': target P and draft Q (vocab x vocab transition tables)."""
    V = len(P)
    out = np.zeros(V**n_tokens, dtype=np.int64)
    for _ in range(trials):
        seq = [0]
        while len(seq) - 1 < n_tokens:
            draft, qs, ctx = [], [], seq[-1]
            for _ in range(k):
                x = int(rng.choice(V, p=Q[ctx]))
                draft.append(x)
                qs.append(Q[ctx])
                ctx = x
            ps = np.stack([P[seq[-1]]] + [P[x] for x in draft])
            n, tok, _ = rule(draft, np.stack(qs), ps, rng)
            seq += draft[:n] + [tok]
        index = 0
        for x in seq[1 : n_tokens + 1]:
            index = index * V + x
        out[index] += 1
    return out


def test_rejection_sampling_output_follows_the_target():
    """Leviathan et al.'s rule: sequences drawn with a poor draft have the target's distribution (chi-square on
    all 27 three-token sequences of a 3-token vocabulary); accepting every draft token would not."""
    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.ones(3), size=3)
    Q = rng.dirichlet(np.ones(3), size=3)
    exact = np.einsum("a,ab,bc->abc", P[0], P, P).reshape(-1)  # p(x1, x2, x3 | start 0)
    counts = _speculative_samples(P, Q, 3, 2, 6000, rng, spec.verify_sample)
    assert _chi2_pvalue(counts, exact) > 1e-3

    def accept_all(draft, q, p, rng):
        return len(draft), int(rng.choice(len(p[-1]), p=p[-1])), None

    wrong = _speculative_samples(P, Q, 3, 2, 6000, rng, accept_all)
    assert _chi2_pvalue(wrong, exact) < 1e-6  # the test can tell a wrong rule apart


def test_distillation_loss_equals_torch_kl_div(smol):
    ids = torch.tensor([smol.tokenizer("The capital of France is Paris.")["input_ids"]])
    with torch.no_grad():
        teacher = smol.model(input_ids=ids).logits[0]  # (T, vocab)
        student = spec.truncated(smol, 4)(input_ids=ids).logits[0]
    for t in (1.0, 2.0, 4.0):
        ref = (
            F.kl_div(
                F.log_softmax(student / t, -1), F.log_softmax(teacher / t, -1), log_target=True, reduction="batchmean"
            )
            * t
            * t
        )
        assert float(spec.distillation_loss(student, teacher, t)) == pytest.approx(float(ref), rel=1e-5)
    assert float(spec.distillation_loss(teacher, teacher, 2.0)) == pytest.approx(0.0, abs=1e-5)
    # at T = 1: KL = cross-entropy to the teacher's distribution - the teacher's entropy
    p = torch.softmax(teacher, -1)
    ce = -(p * torch.log_softmax(student, -1)).sum(-1).mean()
    ent = -(p * torch.log_softmax(teacher, -1)).sum(-1).mean()
    assert float(spec.distillation_loss(student, teacher)) == pytest.approx(float(ce - ent), rel=1e-4)


# ---- decoding: identical outputs --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prompts(smol):
    return [spec.prompt_ids(smol, p) for p in spec.PROMPTS[:2]]


@pytest.mark.slow
def test_greedy_speculative_equals_plain_greedy_and_transformers(smol, prompts):
    draft, k = spec.truncated(smol, 4), 3
    for ids in prompts:
        plain = decode.greedy(smol.model, ids, 32)
        hf = smol.model.generate(torch.tensor([ids]), max_new_tokens=32, do_sample=False)[0, len(ids) :].tolist()
        assert plain.new == hf
        lookup = decode.speculative(smol.model, decode.LookupDraft(2), ids, 32, k)
        layers = decode.speculative(smol.model, decode.ModelDraft(draft), ids, 32, k)
        assert lookup.new == hf and layers.new == hf
        assert len(lookup.steps) < len(hf)  # prompt lookup saved target passes on these prompts
        hf_lookup = smol.model.generate(
            torch.tensor([ids]), max_new_tokens=32, do_sample=False, prompt_lookup_num_tokens=k
        )
        hf_assisted = smol.model.generate(
            torch.tensor([ids]), max_new_tokens=32, do_sample=False, assistant_model=draft
        )
        assert hf_lookup[0, len(ids) :].tolist() == hf and hf_assisted[0, len(ids) :].tolist() == hf


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_speculative_equals_greedy_on_tiny_architectures(name):
    loaded = tiny(name)
    ids = loaded.tokenizer("a b a b a b a b")["input_ids"]
    plain = decode.greedy(loaded.model, ids, 16)
    for draft in (decode.LookupDraft(1), decode.ModelDraft(spec.truncated(loaded, 1))):
        assert decode.speculative(loaded.model, draft, ids, 16, 3).new == plain.new


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_a_checked_run_from_one_prefill_on_tiny_architectures(name):
    """The plain greedy check starts from a copy of the speculative run's prefill: sliding windows and recurrent
    states included (cutting the speculative cache back to the prompt left a window with the wrong positions)."""
    loaded = tiny(name)
    trace = spec.capture(loaded, "a b a b a b a b a b", draft="lookup", k=3, max_new_tokens=12, chat=False)
    ids = spec.prompt_ids(loaded, "a b a b a b a b a b", chat=False)
    assert trace.same_as_greedy is True
    assert trace.new_ids.tolist() == decode.greedy(loaded.model, ids, 12).new


def test_capture_trace(smol, tmp_path):
    trace = spec.capture(smol, spec.PROMPTS[1], draft="lookup", k=3, max_new_tokens=24)
    assert trace.same_as_greedy is True and len(trace.new_ids) <= 24
    assert (trace.accepted <= trace.n_drafted).all() and trace.drafted.shape[1] == 3
    made = np.cumsum(trace.accepted + 1)
    assert made[-1] >= len(trace.new_ids) > made[-2] if len(made) > 1 else True
    assert spec.load(trace.save(tmp_path / "t.npz")).tokens == trace.tokens
    sampled = spec.capture(smol, spec.PROMPTS[1], draft="layers", k=2, max_new_tokens=12, mode="sample", seed=3)
    assert sampled.same_as_greedy is None and len(sampled.new_ids) <= 12
    again = spec.capture(smol, spec.PROMPTS[1], draft="layers", k=2, max_new_tokens=12, mode="sample", seed=3)
    assert again.tokens == sampled.tokens  # seeded
    with pytest.raises(ValueError, match="fewer than"):
        spec.capture(smol, "hi", draft="layers", layers=30)
    with pytest.raises(ValueError, match="empty"):
        spec.capture(smol, "  ")


def test_soft_targets(smol):
    t = spec.targets(smol, "The capital of France is Paris", temperature=2.0)
    assert t.label_token.strip() == "Paris" and int(t.top_ids[0]) == t.label  # the teacher knows
    assert t.teacher[0] < t.teacher_1[0]  # T > 1 flattens the soft targets
    assert t.kl > 0 and t.ce_label > 0


def test_distilled_draft_equals_peft_merge(smol):
    pm = distill.student(smol, 2, 4)
    with torch.no_grad():
        for p in pm.parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn_like(p))  # as if trained
    ids = torch.tensor([smol.tokenizer("speculative decoding")["input_ids"]])
    adapter = distill.adapter_of(pm, 2)
    with torch.no_grad():
        ours = spec.truncated(smol, 2, adapter)(input_ids=ids).logits
        ref = pm.merge_and_unload(safe_merge=True)(input_ids=ids).logits
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
    first = smol.model.model.layers[0].self_attn.q_proj.weight
    assert not torch.equal(spec.truncated(smol, 2, adapter).model.layers[0].self_attn.q_proj.weight, first)
    assert spec.truncated(smol, 2).model.layers[0] is smol.model.model.layers[0]  # undistilled: shared, no copy


# ---- recorded results, slides, demo ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sweep():
    return spec.load(spec.assets_dir() / "sweep.npz")


@pytest.fixture(scope="module")
def run():
    return spec.load(spec.assets_dir() / "distillation.npz")


def test_recorded_results(sweep, run):
    assert bool(sweep.same.all())  # every recorded speculative output was plain greedy's
    lookup = sweep.drafts.index("lookup")
    assert sweep.speedup()[lookup].max() > 1
    assert run.acceptance[1] > run.acceptance[0] and run.eval_loss[1] < run.eval_loss[0]
    adapter = spec.load_adapter(spec.assets_dir() / "draft.npz")
    assert int(adapter["layers"]) == run.layers == spec.DRAFT_LAYERS


def slide(title: str) -> str:
    found = [s for s in deck_slides() if re.search(rf"^# .*{re.escape(title)}", s, re.M | re.I)]
    assert len(found) == 1, f"{len(found)} slides titled with {title!r}"
    return re.sub(r"\s+", " ", found[0])


def test_speculative_slide_numbers(sweep):
    text = slide("Speculative decoding")
    lookup, k = sweep.drafts.index("lookup"), list(sweep.ks).index(4)
    assert f"{100 * sweep.acceptance[lookup, k]:.0f}%" in text
    assert f"{sweep.speedup()[lookup, k]:.1f}×" in text
    # "over 96-token answers ... (less on the 24 tokens below)": the demo's preset is the recorded default run
    from toolkit.speculative.record import SWEEP_TOKENS

    below = spec.load(spec.assets_dir() / "run-lookup.npz")
    assert f"over {SWEEP_TOKENS}-token answers" in text
    assert f"less on the {spec.SpeculativeConfig.default('max_new_tokens')} tokens below" in text
    assert below.greedy_seconds / below.seconds < sweep.speedup()[lookup, k]


def test_distillation_slide_numbers(run, smol):
    layers = f"first {run.layers} of {smol.config.num_hidden_layers} layers"
    assert layers in slide("Small models and distillation")
    text = slide("Distilling the draft")
    assert layers in text and f"LoRA $r = {run.rank}$" in text and f"{len(run.losses)} steps" in text
    assert f"{100 * run.acceptance[0]:.0f}% → {100 * run.acceptance[1]:.0f}%" in text
    assert f"{run.speedup[0]:.2f}× → {run.speedup[1]:.2f}×" in text
    assert f"{run.trainable / 1e6:.2f} M trainable" in text
    assert f"Held-out KL **{run.eval_loss[0]:.1f} → {run.eval_loss[1]:.1f}**" in text
    assert ("still slows decoding" in text) == (run.speedup[1] < 1)


def test_figures_render(sweep, run, smol):
    trace = spec.capture(smol, spec.PROMPTS[0], k=4, max_new_tokens=16, check=False)
    page = plots.text_html(trace)
    shown = page.count('class="tgt"') - 1  # the legend has one too
    assert "data-lecture-view" in page and shown in (len(trace.accepted) - 1, len(trace.accepted))
    for fig in (
        plots.passes(trace),
        plots.acceptance(sweep),
        plots.distillation(run, dark=True),
        plots.expected(),
        plots.soft_targets(spec.targets(smol, "The capital of France is Paris")),
    ):
        assert fig.data and (fig.layout.font.size or 0) >= 16


def test_user_text_is_escaped(smol):
    trace = spec.capture(smol, "Repeat exactly: <b>bold</b> & <script>x</script>", k=2, max_new_tokens=12, check=False)
    page = plots.text_html(trace)
    assert "<script>x" not in page and "<b>bold" not in page


def test_demo_views_and_bad_input():
    import gradio as gr

    from demos import speculative as d

    for view in d.VIEW_NAMES:
        notice, main, html, *_ = d.show_ui(spec.DEFAULT_PROMPT, "lookup", 4, view)
        assert notice and (main["value"] is not None or html["value"])
    for bad in (
        (spec.DEFAULT_PROMPT, "nope", 4, "text"),
        (spec.DEFAULT_PROMPT, "lookup", 99, "text"),
        ("", "lookup", 4, "text"),
        (spec.DEFAULT_PROMPT, "lookup", 4, "bad-view"),
    ):
        with pytest.raises(gr.Error) as err:
            d.show(*bad)
        assert "Something went wrong" not in str(err.value)


def test_demo_through_the_server(live_server):
    client = live_server.client("speculative")
    out = client.predict(
        spec.DEFAULT_PROMPT,
        "lookup",
        4,
        "text",
        "greedy",
        1.0,
        64,
        2,
        4,
        "The capital of France is Paris",
        2.0,
        api_name="/show",
    )
    assert "plain greedy" in out[0] and "the same tokens ✓" in out[0]


def test_a_checked_run_reads_its_prompt_once(smol):
    """Speculative decoding and the plain greedy run it is checked against start from one prefill (each read the
    prompt before: about 0.2 s of a student's 2.2 s question on one core); the plain run from the shared prefill
    is the plain run from scratch, and its seconds include the prefill's."""
    ids = spec.prompt_ids(smol, spec.PROMPTS[1])
    reads = []
    hook = smol.model.register_forward_pre_hook(
        lambda module, args, kwargs: reads.append(kwargs["input_ids"].shape[1]), with_kwargs=True
    )
    try:
        trace = spec.capture(smol, spec.PROMPTS[1], draft="lookup", k=3, max_new_tokens=12)
    finally:
        hook.remove()
    assert sum(n > 4 for n in reads) == 1 and trace.same_as_greedy is True  # one pass over the prompt, not two
    start = decode.prefilled(smol.model, ids)
    shared = decode.greedy(smol.model, ids, 12, start)
    assert shared.new == decode.greedy(smol.model, ids, 12).new == trace.new_ids.tolist()
    assert shared.seconds > start[1] > 0
