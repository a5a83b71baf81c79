"""`lecture grpo`: run GRPO with LoRA on a causal LM and save the GrpoTrace (the replay asset in assets/grpo/)."""
from __future__ import annotations

import argparse
import json


def _grpo(args: argparse.Namespace) -> int:
    import torch

    from toolkit.grpo import preset
    from toolkit.grpo.trainer import train

    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {k: v for k, v in (("steps", args.steps), ("model", args.model), ("seed", args.seed),
                                   ("num_generations", args.G), ("max_new_tokens", args.max_new_tokens))
                 if v is not None}
    cfg = preset(args.preset, **overrides)

    def show(rec):
        m = rec["metrics"]
        print(f"step {rec['step']:>3}  reward {m['reward']:.3f} ± {m['reward_std']:.3f}  kl {m['kl']:.4f}  "
              f"clip low/high {m['clip_ratio/low_mean']:.3f}/{m['clip_ratio/high_mean']:.3f}  "
              f"len {m['completions/mean_length']:.1f}  {rec['time']['total']:.1f} s", flush=True)

    trace = train(cfg, on_step=show)
    if args.out:
        trace.save(args.out)
        print(f"saved {args.out}")
    print(json.dumps({"reward": trace.metrics["reward"]}))
    return 0


def add_parser(sub) -> None:
    sp = sub.add_parser("grpo", help="run GRPO with LoRA on the bundled verifiable task and save the trace")
    sp.add_argument("--preset", default="lecture", help="lecture (G=8, 16 tokens, 20 steps) or tiny")
    sp.add_argument("--steps", type=int)
    sp.add_argument("--G", type=int, help="completions per prompt")
    sp.add_argument("--max-new-tokens", type=int)
    sp.add_argument("--model", help="embedded name, Hugging Face id or local folder")
    sp.add_argument("--seed", type=int)
    sp.add_argument("--threads", type=int, help="torch CPU threads")
    sp.add_argument("--out", help="where to save the GrpoTrace (.npz)")
    sp.set_defaults(func=_grpo)
