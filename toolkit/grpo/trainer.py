"""GRPO with a LoRA adapter on any causal LM, every quantity of the objective traced (deck: "GRPO", "GRPO vs PPO";
notes: KL against catastrophic forgetting, LoRA).

One step: sample G completions per prompt from π_θ → score them with verifiable rewards → group advantages →
``num_iterations`` optimiser updates on the clipped surrogate with the k3 KL to the reference. The reference
policy is the same network with the adapter switched off (peft's ``disable_adapter``): no second copy.

Speed: the G completions of a group share their prompt, so the prompt runs once (batch 1) and its key/value
cache is repeated G times, with gradients flowing through it: one pass serves sampling and the first update, one
more the reference. Sampling drops a row from the batch once it has stopped, and draws by inverse CDF.
Trap: the model from ``models.load`` is shared by every demo, so training works on a deep copy of it.
"""

from __future__ import annotations

import copy
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

from toolkit import models, turns
from toolkit.grpo import maths
from toolkit.grpo.config import GrpoConfig
from toolkit.grpo.rewards import TASKS, score
from toolkit.grpo.trace import GrpoCompletion, GrpoGroup, GrpoStep, GrpoTrace, metric_series
from toolkit.lora import twin
from toolkit.trace import make_meta

_RUN_LOCK = threading.Lock()  # the trainable copy is one per process: one run at a time
BUSY_MESSAGE = "A GRPO run is already going on this server; wait for it to finish or stop it."


class Busy(RuntimeError):
    """Another GRPO run holds this process's trainable model."""


class Diverged(RuntimeError):
    """The run went numerically wrong (a non-finite loss or probability, or a KL past its limit): it is ended."""


class Control:
    """When a run must stop: asked (``stop``), nobody reading it for ``idle_s``, or past its ``max_s`` wall cap.

    ``halted()`` is checked before every generated token, every optimiser update and every step, so a stop takes
    effect within one forward pass, not at the end of a 30-second step. ``reason`` says why it stopped."""

    def __init__(self, stop: threading.Event | None = None, idle_s: float | None = None, max_s: float | None = None):
        self.stop = stop if stop is not None else threading.Event()
        self.idle_s, self.max_s = idle_s, max_s
        self.started = self.last_read = time.monotonic()
        self.reason: str | None = None

    def read(self) -> None:
        """The consumer is still there (it read the stream just now)."""
        self.last_read = time.monotonic()

    def halted(self) -> bool:
        now = time.monotonic()
        if self.reason is None:
            if self.stop.is_set():
                self.reason = "stopped"
            elif self.idle_s is not None and now - self.last_read > self.idle_s:
                self.reason = f"nobody read it for {self.idle_s:.0f} s (the page was closed)"
            elif self.max_s is not None and now - self.started > self.max_s:
                self.reason = f"it reached its {self.max_s:.0f} s time cap"
            if self.reason is not None:
                self.stop.set()
        return self.reason is not None


def is_busy() -> bool:
    """True while a run (or an ``exclusive()`` block) holds this process's trainable model."""
    return _RUN_LOCK.locked()


def _acquire() -> None:
    if not _RUN_LOCK.acquire(blocking=False):
        raise Busy(BUSY_MESSAGE)


@contextmanager
def exclusive() -> Iterator[None]:
    """Hold the trainable model as a run does (no run can start meanwhile); raises Busy if one holds it."""
    _acquire()
    try:
        yield
    finally:
        _RUN_LOCK.release()


def make_policy(cfg: GrpoConfig):
    """-> (peft model with a fresh LoRA adapter on a twin of cfg.model, tokenizer). The twin's modules are new and
    its weights the shared model's own, frozen and only read (a deep copy held 0.54 GB more during a run)."""
    from peft import LoraConfig, get_peft_model

    loaded = models.resolve(cfg.model)
    base = twin(loaded.model)
    base.requires_grad_(False)
    torch.manual_seed(cfg.seed)  # LoRA A is random, B is zero: the adapter starts as the identity
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        target_modules=list(cfg.lora_targets),
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(base, lora), loaded.tokenizer


def encode_prompt(tok, prompt: str) -> torch.Tensor:
    """(1, P) token ids of the prompt, through the chat template when the tokenizer has one."""
    if getattr(tok, "chat_template", None):
        ids = tok.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt"
        )
        ids = ids if torch.is_tensor(ids) else ids["input_ids"]
    else:
        ids = tok(prompt, return_tensors="pt")["input_ids"]
    return ids.long()


def stop_ids(model, tok) -> list[int]:
    ids = {tok.eos_token_id}
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(gen_eos if isinstance(gen_eos, (list, tuple)) else [gen_eos])
    return sorted(i for i in ids if i is not None)


def prefill(model, prompt_ids: torch.Tensor):
    """Run the prompt once (batch 1): -> (logits of its last position (1, V), its cache)."""
    out = model(input_ids=prompt_ids, use_cache=True, logits_to_keep=1)
    return out.logits[:, -1], out.cache


class Reference:
    """Prompt passes of the reference policy (the adapter switched off: frozen weights), keeping the last prompt's
    cache so that the next prompt's shared opening (the chat template's system turn, the task's wording) is not run
    again: only the tokens after the common prefix are."""

    MIN_SHARED = 8  # tokens in common before reusing is worth a cache copy

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.cache = None

    def prefill(self, model, prompt_ids: torch.Tensor):
        """Like ``prefill``, under the reference (call it inside ``disable_adapter``)."""
        ids = prompt_ids[0].tolist()
        shared = 0
        for a, b in zip(self.ids, ids[:-1]):  # the last prompt token always runs: its logits are needed
            if a != b:
                break
            shared += 1
        plain = self.cache is not None and all(type(layer) is DynamicLayer for layer in self.cache.layers)
        kept = _copy(self.cache) if plain and shared >= self.MIN_SHARED else None  # (a window's cache won't crop)
        if kept is not None:
            kept.crop(shared - len(self.ids))  # keep the first `shared` positions (crop takes minus the rest)
            out = model(input_ids=prompt_ids[:, shared:], cache=kept, use_cache=True, logits_to_keep=1)
            head = out.logits[:, -1], out.cache
        else:
            head = prefill(model, prompt_ids)
        self.ids, self.cache = ids, head[1]
        return head


def _copy(cache):
    """A copy of a DynamicCache that later updates leave alone (its layers reassign their tensors, never write
    into them); None for other caches."""
    if not all(type(layer) in (DynamicLayer, DynamicSlidingWindowLayer) for layer in cache.layers):
        return None
    kept = copy.copy(cache)
    kept.layers = [copy.copy(layer) for layer in cache.layers]
    return kept


def _expand(head, g: int):
    """A prompt's (logits (1, V), cache) -> (logits (G, V), a copy of the cache repeated G times), the original left
    as it was, so one prompt pass serves sampling and the first update; None when the cache cannot be copied."""
    logits, cache = head
    kept = _copy(cache)
    if kept is None:
        return None
    kept.batch_repeat_interleave(g)
    return logits.expand(g, -1), kept


def _prefill(model, prompt_ids: torch.Tensor, g: int, head=None):
    """-> (logits of the prompt's last position (G, V), its cache repeated G times); ``head`` (from ``prefill``)
    saves running the prompt again."""
    if head is not None and (out := _expand(head, g)) is not None:
        return out
    logits, cache = prefill(model, prompt_ids)
    cache.batch_repeat_interleave(g)
    return logits.expand(g, -1), cache


def _draw(probs: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """probs (G, K) -> one index per row (G,), by inverse CDF: a uniform draw placed in the running sum (float64, so
    tokens of tiny probability keep their share). On a CPU this is ~40x cheaper than multinomial over 49k tokens."""
    cdf = probs.double().cumsum(-1)  # (G, K)
    u = torch.rand(probs.shape[0], 1, generator=gen, dtype=torch.float64) * cdf[:, -1:]  # (G, 1)
    return torch.searchsorted(cdf, u, right=True).clamp_(max=probs.shape[1] - 1).squeeze(1)


def _sample(logits: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator) -> torch.Tensor:
    """logits (G, V) -> one token id per row (G,), nucleus sampling at the given temperature."""
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        sorted_p[(sorted_p.cumsum(-1) - sorted_p) > top_p] = 0.0  # keep the smallest set with mass >= top_p
        return order.gather(-1, _draw(sorted_p, gen)[:, None]).squeeze(1)
    return _draw(probs, gen)


@torch.no_grad()
def sample_group(
    model, prompt_ids, g, max_new, temperature, top_p, eos: list[int], pad: int, gen, control=None, head=None
):
    """-> completion ids (G, C) padded after each sequence's first stop token, mask (G, C) (1 up to it); None when
    ``control`` halts the run mid-way. ``head``: the prompt's ``prefill``, if already run."""
    logits, cache = _prefill(model, prompt_ids, g, head)
    logits = logits.detach()  # (G, V)
    eos_t = torch.tensor(eos)
    tokens = torch.full((g, max_new), pad, dtype=torch.long)
    mask = torch.zeros(g, max_new, dtype=torch.long)
    alive = torch.arange(g)  # rows still writing; a finished row leaves the batch and the cache
    for t in range(max_new):
        if control is not None and control.halted():
            return None
        if not bool(torch.isfinite(logits).all()):
            raise Diverged(
                "the policy's next-token probabilities are not finite (NaN or inf): the run diverged. "
                "Lower the learning rate or raise β (the KL weight)."
            )
        nxt = _sample(logits, temperature, top_p, gen)  # (A,) one token per live row
        tokens[alive, t], mask[alive, t] = nxt, 1
        stopped = torch.isin(nxt, eos_t)  # (A,)
        if bool(stopped.all()) or t == max_new - 1:
            break
        if bool(stopped.any()):
            keep = (~stopped).nonzero().squeeze(1)
            alive, nxt = alive[keep], nxt[keep]
            cache.batch_select_indices(keep)
        out = model(input_ids=nxt[:, None], cache=cache, use_cache=True)
        logits = out.logits[:, -1]  # (A, V)
    return tokens[:, : t + 1], mask[:, : t + 1]


def group_logprobs(model, prompt_ids, comp_ids, comp_mask, temperature: float, head=None, entropy: bool = True):
    """Log-probs of the completion tokens under ``model`` at the sampling temperature, as TRL computes them.

    prompt_ids (1, P), comp_ids (G, C), comp_mask (G, C) -> logp (G, C), entropy (G, C) (without grad; None when
    ``entropy`` is False). ``head``: the prompt's ``prefill`` under the same weights, if already run.
    """
    g, c = comp_ids.shape
    first, cache = _prefill(model, prompt_ids, g, head)  # (G, V): predicts completion token 0
    logits = first[:, None]  # (G, 1, V)
    if c > 1:
        attn = torch.cat([torch.ones(g, prompt_ids.shape[1], dtype=torch.long), comp_mask[:, :-1]], 1)  # (G, P+C-1)
        out = model(input_ids=comp_ids[:, :-1], attention_mask=attn, cache=cache, use_cache=True)
        logits = torch.cat([logits, out.logits], 1)  # (G, C, V)
    logp_all = F.log_softmax(logits.float() / temperature, dim=-1)  # (G, C, V)
    logp = logp_all.gather(-1, comp_ids[..., None]).squeeze(-1)  # (G, C)
    if not entropy:
        return logp, None
    with torch.no_grad():
        ent = -logp_all.exp().mul_(logp_all).sum(-1)  # (G, C); in place: one (G, C, V) temporary, not two
    return logp, ent


def _pad_cat(parts: list[torch.Tensor], width: int, value=0) -> torch.Tensor:
    """[(G, C_i)] -> (sum G, width), right-padded with value."""
    return torch.cat([F.pad(p, (0, width - p.shape[1]), value=value) for p in parts], 0)


def _r(values: torch.Tensor, n: int) -> list:
    return [round(float(v), 5) for v in values[:n]]


def run(config: GrpoConfig | None = None, stop: threading.Event | None = None, **options: Any) -> Iterator[GrpoStep]:
    """Train, yielding one GrpoStep per step (streamable). Raises Busy if a run is already going."""
    cfg = GrpoConfig.make(config, **options)
    cfg.check_budget()
    with exclusive():
        yield from _run(cfg, Control(stop))


def stream(
    cfg: GrpoConfig,
    control: Control | threading.Event,
    poll_s: float = 1.0,
    around: Callable[[], AbstractContextManager] | None = None,
) -> Iterator[GrpoStep | None]:
    """Train in a background thread; yield each GrpoStep, and None every ``poll_s`` seconds in between.

    For live demos: the consumer is never blocked for long, so a web server can close it at once (page left,
    stop pressed); closing stops the run. ``control`` (a Control, or a bare stop Event) also ends it when nobody has
    read the stream for its ``idle_s`` or past its ``max_s``. Raises Busy at once if another run holds the model.
    ``around``: a context each step runs inside, in the training thread (a server's model slot, lent at turns).
    """
    control = control if isinstance(control, Control) else Control(control)
    if not isinstance(cfg, GrpoConfig):
        raise TypeError(f"expected a GrpoConfig, got {type(cfg).__name__}")
    cfg.check_budget()
    _acquire()
    items: queue.Queue = queue.Queue()
    done = object()

    def work() -> None:
        try:
            steps = _run(cfg, control)
            if around is not None:  # a slot for each step, none to find the end or a stop
                steps = turns.each_in(around, steps, count=cfg.steps, stop=control.halted)
            for rec in steps:
                items.put(rec)
        except Exception as err:  # handed to the consumer, raised there
            items.put(err)
        finally:
            _RUN_LOCK.release()
            items.put(done)

    threading.Thread(target=work, name="grpo-live", daemon=True).start()
    try:
        while True:
            try:
                item = items.get(timeout=poll_s)
            except queue.Empty:
                control.read()
                yield None
                continue
            control.read()
            if item is done:
                return
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        control.stop.set()


def _check_finite(step: int, update: int, loss: torch.Tensor, kl: float, max_kl: float) -> None:
    """End a run that has gone wrong with a sentence the room can read (not NaN rewards or a KL of 7e28)."""
    where = f"step {step}, update {update}"
    if not bool(torch.isfinite(loss)) or not np.isfinite(kl):
        raise Diverged(
            f"the run diverged at {where}: the loss is {float(loss):g}, the KL {kl:g}. "
            "Lower the learning rate or raise β (the KL weight)."
        )
    if kl > max_kl:
        raise Diverged(
            f"the run diverged at {where}: the KL to the reference is {kl:.3g} (the limit is {max_kl:g}): "
            "the policy has moved far from the model it started as. Lower the learning rate or raise β."
        )


def _run(cfg: GrpoConfig, control: Control) -> Iterator[GrpoStep]:
    model, tok = make_policy(cfg)
    weights, task = cfg.reward_weights(), TASKS[cfg.task]
    rng, gen = random.Random(cfg.seed), torch.Generator().manual_seed(cfg.seed)
    eos = stop_ids(model, tok)
    pad = tok.pad_token_id if tok.pad_token_id is not None else eos[0]
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    n, g = cfg.prompts_per_step, cfg.num_generations
    reference = Reference()
    for step in range(cfg.steps):
        if control.halted():
            return
        clock = turns.stopwatch()  # work, not pauses for a waiting request
        problems = [task.make(rng) for _ in range(n)]
        prompts = [encode_prompt(tok, q) for q, _ in problems]
        model.eval()
        heads = [prefill(model, p) for p in prompts]  # with gradients: sampling and the first update share them
        groups = [
            sample_group(model, p, g, cfg.max_new_tokens, cfg.temperature, cfg.top_p, eos, pad, gen, control, h)
            for p, h in zip(prompts, heads)
        ]
        if any(group is None for group in groups):
            return
        c = max(ids.shape[1] for ids, _ in groups)
        ids, mask = _pad_cat([i for i, _ in groups], c, pad), _pad_cat([m for _, m in groups], c)  # (B, C)
        lengths = mask.sum(1)  # (B,)
        texts = [tok.decode(ids[b, : lengths[b]], skip_special_tokens=True) for b in range(n * g)]
        if control.halted():
            return
        answers = [a for _, a in problems for _ in range(g)]
        per_fn, total = score(weights, texts, answers)
        adv = maths.group_advantages(torch.tensor(total).view(n, g), cfg.scale_rewards)  # (n, G)
        adv_flat = adv.advantages.reshape(-1)  # (B,)
        t1 = clock()

        with torch.no_grad(), model.disable_adapter():
            ref = [
                group_logprobs(model, p, i, m, cfg.temperature, reference.prefill(model, p), entropy=False)[0]
                for p, (i, m) in zip(prompts, groups)
            ]
            ref = _pad_cat(ref, c)  # (B, C)
        updates = []
        for u in range(cfg.num_iterations):
            if control.halted():  # between updates: a stop never waits for the rest of the step
                return
            outs = [
                group_logprobs(model, p, i, m, cfg.temperature, h if u == 0 else None)
                for p, (i, m), h in zip(prompts, groups, heads)
            ]  # the first update's weights are the sampling weights: it reuses the prompt passes
            logp, entropy = _pad_cat([o[0] for o in outs], c), _pad_cat([o[1] for o in outs], c)  # (B, C)
            if u == 0:
                old = logp.detach()  # parameters have not moved yet: π_old = π_θ, ratio exactly 1
            tok_loss, ratio, kl = maths.per_token_loss(
                logp, old, ref, adv_flat, cfg.epsilon_low, cfg.epsilon_high, cfg.beta
            )
            loss = maths.aggregate(tok_loss, mask, cfg.loss_type, cfg.max_new_tokens)
            _check_finite(step, u, loss, maths.masked_mean(kl.detach(), mask), cfg.max_kl)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            opt.step()
            low, high = maths.clip_flags(ratio.detach(), adv_flat[:, None], cfg.epsilon_low, cfg.epsilon_high)
            updates.append(
                {
                    "loss": float(loss.detach()),
                    "kl": maths.masked_mean(kl.detach(), mask),
                    "entropy": maths.masked_mean(entropy, mask),
                    "clip_ratio/low_mean": maths.masked_mean(low.float(), mask),
                    "clip_ratio/high_mean": maths.masked_mean(high.float(), mask),
                    "clip_ratio/region_mean": maths.masked_mean((low | high).float(), mask),
                    "ratio_max_dev": float(((ratio.detach() - 1).abs() * mask).max()),  # 0 on a first update
                }
            )
        t2 = clock()

        total_t = torch.tensor(total)
        metrics = {name: float(np.mean([u_[name] for u_ in updates])) for name in updates[0]}
        metrics.update(
            {
                "reward": float(total_t.mean()),
                "reward_std": float(maths.bessel_std(total_t)),
                "frac_reward_zero_std": float(adv.zero_std.float().mean()),
                "completions/mean_length": float(lengths.float().mean()),
                **{f"rewards/{k}/mean": float(np.mean(v)) for k, v in per_fn.items()},
            }
        )
        logp, ratio, kl = logp.detach(), ratio.detach(), kl.detach()
        groups_out = []
        for gi, (q, a) in enumerate(problems):
            comps = []
            for j in range(g):
                b, L = gi * g + j, int(lengths[gi * g + j])
                tid = ids[b, :L].tolist()
                comps.append(
                    GrpoCompletion(
                        text=texts[b],
                        token_ids=tid,
                        tokens=[tok.decode([t]) for t in tid],
                        rewards={k: v[b] for k, v in per_fn.items()},
                        reward=total[b],
                        advantage=float(adv_flat[b]),
                        logprob=_r(logp[b], L),
                        old_logprob=_r(old[b], L),
                        ref_logprob=_r(ref[b], L),
                        ratio=_r(ratio[b], L),
                        kl=_r(kl[b], L),
                        entropy=_r(entropy[b], L),
                        clipped_low=[bool(x) for x in low[b, :L]],
                        clipped_high=[bool(x) for x in high[b, :L]],
                    )
                )
            groups_out.append(
                GrpoGroup(
                    prompt=q,
                    answer=a,
                    mean=float(adv.mean[gi]),
                    std=float(adv.std[gi, 0]),
                    zero_std=bool(adv.zero_std[gi]),
                    completions=comps,
                )
            )
        yield GrpoStep(
            step=step,
            loss=metrics["loss"],
            metrics=metrics,
            updates=updates,
            groups=groups_out,
            time={"generate": t1, "train": t2 - t1, "total": clock()},
        )


def to_trace(steps: list[GrpoStep], cfg: GrpoConfig, **meta: Any) -> GrpoTrace:
    """Assemble steps into a GrpoTrace (rewards, advantages: (step, completion))."""
    if not steps:
        raise ValueError("the run stopped before its first step: nothing to trace")
    rewards = np.array(
        [[c.reward for grp in s.groups for c in grp.completions] for s in steps], dtype=np.float32
    ).reshape(len(steps), -1)  # (step, completion)
    advs = np.array(
        [[c.advantage for grp in s.groups for c in grp.completions] for s in steps], dtype=np.float32
    ).reshape(len(steps), -1)  # (step, completion)
    info = make_meta(cfg.model, cfg.seed, task=cfg.task, torch=torch.__version__, **meta)
    return GrpoTrace(
        rewards=rewards,
        advantages=advs,
        metrics=metric_series(steps),
        steps=list(steps),
        config=cfg.to_dict(),
        meta=info,
    ).check()


def train(
    config: GrpoConfig | None = None,
    on_step: Callable[[GrpoStep], None] | None = None,
    stop: threading.Event | None = None,
    **options: Any,
) -> GrpoTrace:
    """Run to the end (or until ``stop`` is set) and return the trace; ``on_step`` sees each step."""
    cfg = GrpoConfig.make(config, **options)
    steps = []
    for step in run(cfg, stop):
        steps.append(step)
        if on_step is not None:
            on_step(step)
    return to_trace(steps, cfg)
