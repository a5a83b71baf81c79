"""Next-token capture: slides "Next-token prediction" and "Sampling strategies" (greedy decoding and sampling).

The model gives logits z over the vocabulary for the next token; the filters of ``sampling.maths`` reshape them.
Greedy decoding takes argmax z; sampling draws from the filtered distribution with torch.multinomial, the same
call generate() makes, so a seeded run here equals generate(do_sample=True) under the same seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from toolkit import arch, models, text
from toolkit.config import Config, param
from toolkit.sampling.maths import STAGES, filtered, kl, stages
from toolkit.sampling.trace import DecodeTrace, NextTokenCompareTrace, NextTokenTrace
from toolkit.trace import make_meta

MAX_STEPS = 40  # tokens one continuation may generate: a 40-row step view still reads on a slide
MAX_SEED = 2**31 - 1


@dataclass(frozen=True)
class SamplingConfig(Config):
    temperature: float = param(
        1.0,
        "softmax temperature T: p = softmax(z / T); below 1 sharper, above 1 flatter "
        "(T = 0 is greedy decoding: do_sample=False)",
        lo=0.01,
        hi=5.0,
        step=0.01,
    )
    top_k: int = param(0, "keep the k most likely tokens (0 = off)", lo=0, hi=1000, step=1, label="top-k")
    top_p: float = param(
        1.0,
        "keep the fewest most likely tokens whose probability reaches p (1 = off)",
        lo=0.0,
        hi=1.0,
        open_lo=True,
        step=0.01,
        label="top-p",
    )
    min_p: float = param(
        0.0,
        "keep tokens with p >= min_p × the top token's p (0 = off; 1 would keep only the top)",
        lo=0.0,
        hi=1.0,
        open_hi=True,
        step=0.01,
        label="min-p",
    )
    steps: int = param(12, "tokens to generate", lo=1, hi=MAX_STEPS, step=1, label="tokens to generate")
    seed: int = param(
        0, "seed of the sampled run (torch.manual_seed before the first draw, as for generate())", lo=0, hi=MAX_SEED
    )
    do_sample: bool = param(True, "draw from the filtered distribution; False: greedy decoding (argmax)")
    max_tokens: int = param(
        text.DEFAULT_TOKENS,
        "prompt tokens run; a longer prompt is cut (the trace says so)",
        lo=1,
        hi=text.MAX_TOKENS,
        label="token limit",
    )
    shown: int = param(20, "most likely tokens the next-token distribution shows", lo=1, hi=100)
    step_shown: int = param(8, "most likely tokens recorded at each generated token", lo=1, hi=50)


def _encode(loaded: models.Loaded, prompt: str, cfg: SamplingConfig) -> tuple[torch.Tensor, text.Encoded]:
    enc = text.encode(loaded.tokenizer, prompt, cfg.max_tokens)
    return torch.tensor([enc.ids]), enc  # (1, T)


def _meta(loaded: models.Loaded, enc: text.Encoded, seed: int | None = None) -> dict[str, Any]:
    return make_meta(loaded.name, seed=seed, n_tokens_in_text=enc.n_total, truncated=enc.truncated)


def next_logits(
    model: models.Loaded | str, prompt: str, config: SamplingConfig | None = None, **options: Any
) -> torch.Tensor:
    """The model's logits for the token after ``prompt``: (vocab,) float32."""
    loaded = models.resolve(model)
    ids, _ = _encode(loaded, prompt, SamplingConfig.make(config, **options))
    with torch.no_grad():
        return loaded.model(ids, **arch.last_logits_only(loaded.model)).logits[0, -1].float()  # (vocab,)


def next_token(
    model: models.Loaded | str, prompt: str, config: SamplingConfig | None = None, **options: Any
) -> NextTokenTrace:
    """The real next-token distribution and what each filter leaves of it (the ``shown`` most likely tokens)."""
    loaded = models.resolve(model)
    cfg = SamplingConfig.make(config, **options)
    ids, enc = _encode(loaded, prompt, cfg)
    with torch.no_grad():
        logits = loaded.model(ids, **arch.last_logits_only(loaded.model)).logits[0, -1].float()  # (vocab,)
    per_stage = stages(logits, cfg)
    probs = torch.stack([s.softmax(-1) for s in per_stage])  # (stage, vocab); stage 0 is T=1, unfiltered
    show = torch.topk(logits, min(cfg.shown, logits.shape[-1])).indices  # (shown,): the filters keep this order
    return NextTokenTrace(
        prompt=prompt,
        stages=list(STAGES),
        ids=show.numpy(),
        tokens=text.display(loaded.tokenizer, show.tolist()),
        probs=probs[:, show].numpy().astype(np.float32),
        survivors=np.array([int(torch.isfinite(s).sum()) for s in per_stage]),
        config=cfg.to_dict(),
        meta=_meta(loaded, enc),
    ).check()


def decode(
    model: models.Loaded | str, prompt: str, config: SamplingConfig | None = None, **options: Any
) -> DecodeTrace:
    """Greedy (``do_sample=False``) or seeded sampling for ``steps`` tokens; each step records the distribution
    drawn from."""
    cfg = SamplingConfig.make(config, **options)
    return decode_rows(model, prompt, [cfg.seed if cfg.do_sample else None], cfg)[0]


def greedy_and_sampled(
    model: models.Loaded | str, prompt: str, config: SamplingConfig | None = None, **options: Any
) -> tuple[DecodeTrace, DecodeTrace]:
    """Greedy and sampled (seed ``config.seed``) continuations in one batch of two rows: half the forward passes
    of two runs."""
    cfg = SamplingConfig.make(config, **options)
    greedy, sampled = decode_rows(model, prompt, [None, cfg.seed], cfg)
    return greedy, sampled


def decode_rows(
    model: models.Loaded | str,
    prompt: str,
    seeds: list[int | None],
    config: SamplingConfig | None = None,
    **options: Any,
) -> list[DecodeTrace]:
    """One row per entry of ``seeds`` (None = greedy), all from the same prompt, generated as one batch.

    At most one row samples, so its draws are exactly generate()'s under torch.manual_seed(seed). A row that
    emits end-of-sequence stops recording (its later tokens are computed but dropped).
    """
    loaded = models.resolve(model)
    cfg = SamplingConfig.make(config, **options)
    sampled = [s for s in seeds if s is not None]
    if len(sampled) > 1:
        raise ValueError("at most one sampled row per batch (the rows would share one random stream)")
    prompt_ids, enc = _encode(loaded, prompt, cfg)
    ids = prompt_ids.repeat(len(seeds), 1)  # (rows, T)
    rec = [{"chosen": [], "ids": [], "p": [], "p_chosen": [], "survivors": []} for _ in seeds]
    done = [False] * len(seeds)
    past = None
    eos = loaded.tokenizer.eos_token_id
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        if sampled:
            torch.manual_seed(sampled[0])
        step_input = ids
        for _ in range(cfg.steps):
            out = loaded.model(step_input, cache=past, use_cache=True)
            past = out.cache
            logits = out.logits[:, -1].float()  # (rows, vocab)
            nxt_all = []
            for row, seed in enumerate(seeds):
                if seed is None:
                    z = logits[row : row + 1]  # (1, vocab)
                    nxt = int(z.argmax(-1))
                else:
                    z = filtered(logits[row : row + 1], cfg)
                    nxt = int(torch.multinomial(z.softmax(-1), num_samples=1)[0, 0])  # as generate() draws
                nxt_all.append(nxt)
                if done[row]:
                    continue
                p = z.softmax(-1)[0]  # (vocab,) the distribution this step drew from
                top = torch.topk(p, min(cfg.step_shown, p.shape[-1]))
                r = rec[row]
                r["chosen"].append(nxt)
                r["ids"].append(top.indices.tolist())
                r["p"].append(top.values.tolist())
                r["p_chosen"].append(float(p[nxt]))
                r["survivors"].append(int(torch.isfinite(z).sum()))
                done[row] = nxt == eos
            if all(done):
                break
            step_input = torch.tensor(nxt_all)[:, None]  # (rows, 1)
    tok = loaded.tokenizer
    return [
        DecodeTrace(
            prompt=prompt,
            mode="greedy" if seed is None else "sample",
            seed=seed,
            ids=np.array(r["chosen"]),
            tokens=text.display(tok, r["chosen"]),
            step_ids=np.array(r["ids"]),
            step_tokens=[text.display(tok, x) for x in r["ids"]],
            step_probs=np.array(r["p"], dtype=np.float32),
            chosen_prob=np.array(r["p_chosen"], dtype=np.float32),
            survivors=np.array(r["survivors"]),
            config=cfg.to_dict(),
            meta=_meta(loaded, enc, seed),
        ).check()
        for r, seed in zip(rec, seeds)
    ]


def compare(
    model: models.Loaded | str,
    other: models.Loaded | str,
    prompt: str,
    config: SamplingConfig | None = None,
    **options: Any,
) -> NextTokenCompareTrace:
    """The next-token distribution of two models on the same prompt (two models, a model before and after a LoRA
    fine-tune, unquantised vs quantised): both at T = 1, their KL divergences both ways over the whole vocabulary
    and the ``shown`` tokens either model finds most likely. The two must share a tokenizer (the same ids)."""
    a, b = models.resolve(model), models.resolve(other)
    cfg = SamplingConfig.make(config, **options)
    ids_a, enc = _encode(a, prompt, cfg)
    ids_b, _ = _encode(b, prompt, cfg)
    if not torch.equal(ids_a, ids_b):
        raise ValueError(f"{a.name} and {b.name} split the prompt differently: compare models that share a tokenizer")
    with torch.no_grad():
        za = a.model(ids_a, **arch.last_logits_only(a.model)).logits[0, -1].float()  # (vocab,)
        zb = b.model(ids_b, **arch.last_logits_only(b.model)).logits[0, -1].float()
    if za.shape != zb.shape:
        raise ValueError(f"{a.name} and {b.name} have different vocabularies ({za.shape[0]} vs {zb.shape[0]})")
    la, lb = za.log_softmax(-1), zb.log_softmax(-1)
    pa, pb = la.exp(), lb.exp()
    show = torch.topk(torch.maximum(pa, pb), min(cfg.shown, pa.shape[-1])).indices  # (shown,)
    tok = a.tokenizer
    return NextTokenCompareTrace(
        prompt=prompt,
        models=[a.name, b.name],
        ids=show.numpy(),
        tokens=text.display(tok, show.tolist()),
        probs=torch.stack([pa[show], pb[show]]).numpy().astype(np.float32),
        kl=[float(kl(la, lb)), float(kl(lb, la))],
        total_variation=float(0.5 * (pa - pb).abs().sum()),
        top=text.display(tok, [int(pa.argmax()), int(pb.argmax())]),
        meta=make_meta(f"{a.name} vs {b.name}", n_tokens_in_text=enc.n_total, truncated=enc.truncated),
    ).check()
