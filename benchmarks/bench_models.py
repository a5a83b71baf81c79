"""Embedded model start-up: loading SmolLM2 from our safetensors cache vs converting the shipped GGUF again.

    python benchmarks/bench_models.py

The anchor is what every start would cost without the cache (transformers' GGUF load and dequantisation).
Target: a cached load takes at most 2 s (and is therefore many times faster than the conversion).
Both are timed in fresh subprocesses, after `import transformers` (imports are not the model's cost).
"""

from __future__ import annotations

import json
import subprocess
import sys

CACHED = """
import time, torch, transformers
from transformers import AutoConfig
from toolkit import models
AutoConfig.for_model("llama")  # warm transformers' lazy imports: measure the model, not the imports
t = time.perf_counter(); models.load("smollm2-135m"); print(time.perf_counter() - t)
"""
GGUF = """
import time, torch, transformers
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
from toolkit import models
AutoConfig.for_model("llama")
src = models.source_file(models.EMBEDDED["smollm2-135m"])
t = time.perf_counter()
AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32, attn_implementation="eager")
print(time.perf_counter() - t)
"""


def timed(code: str) -> float:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    from toolkit import models

    models.ensure_cache(models.EMBEDDED["smollm2-135m"])
    cached = min(timed(CACHED) for _ in range(3))
    gguf = timed(GGUF)
    print(f"cached load {cached:.2f} s, GGUF conversion {gguf:.2f} s, speed-up {gguf / cached:.1f}x")
    print(
        json.dumps(
            {
                "bench": "models",
                "cached_load_s": round(cached, 3),
                "anchor_gguf_s": round(gguf, 3),
                "speedup": round(gguf / cached, 1),
                "target": {"cached_load_s": 2.0},
                "met": cached <= 2.0,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
