"""The notebook API (toolkit.views): every concept's demo views from Python with the demo's presets and defaults,
the science library without a web framework, and plotly rendering offline in Jupyter."""

from __future__ import annotations

import functools
import importlib
import inspect
import re
import subprocess
import sys

import plotly.graph_objects as go
import plotly.io as pio
import pytest
from architectures import tiny

from toolkit import registry, views

CONCEPTS = list(registry.CONCEPTS)
OLDER = ["model_card", "tokens", "rope", "attention", "moe", "sampling", "kv_cache", "sft", "lora", "dpo", "grpo"]
SHORT = "The cat sat on the mat because it was tired"
TINY, TINY_MHA = "<tiny llama-gqa folder>", "<tiny llama-mha folder>"  # replaced by the folders (tiny_folders)
# Small presets so that every view of every concept runs in seconds: the views that train, generate or compare run
# on tiny random models saved as folders (the real model's views are the same code with another name).
PRESETS = {
    ("rope", "model-rotation"): {"text": SHORT},
    ("rope", "norms"): {"text": SHORT},
    ("rope", "model-relative"): {"text": SHORT},
    ("rope", "embedding"): {"text": SHORT},
    ("sampling", "*"): {"prompt": "The capital of France is"},
    ("sampling", "generate"): {"prompt": "The capital of France is", "steps": 2},
    ("sampling", "compare"): {"prompt": "The capital of France is", "model": TINY, "compare": TINY_MHA},
    ("kv_cache", "*"): {"prompt": "The Roman Empire was", "steps": 2},
    ("lora", "loss"): {"steps": 1, "model": TINY},
    ("lora", "spectrum"): {"steps": 1, "model": TINY},
    ("dpo", "steps"): {"steps": 1, "model": TINY},
    ("dpo", "log-probs"): {"steps": 1, "model": TINY},
    ("flash_attention", "tiles"): {"model": TINY},
    ("flash_attention", "row"): {"model": TINY},
    ("paged_attention", "sharing"): {"model": TINY, "new_tokens": 2},
    ("rag", "*"): {"model": TINY, "max_new_tokens": 2, "k": 2},
    ("speculative", "text"): {"model": TINY, "prompt": SHORT, "max_new": 6},
    ("speculative", "passes"): {"model": TINY, "prompt": SHORT, "max_new": 6},
    ("speculative", "soft-targets"): {"model": TINY, "layers": 1},
}
HTML_VIEWS = {  # views that are HTML, not plotly: a str for IPython.display.HTML
    ("attention", "bertviz"),
    ("moe", "tokens"),
    ("grpo", "group"),
    ("vector_search", "results"),
    ("rag", "answers"),
    ("forgetting", "answers"),
    ("reasoning", "problem"),
    ("reasoning", "supervision"),
    ("agent", "timeline"),
    ("agent", "tool"),
    ("speculative", "text"),
}
SPECULATIVE_RECORDED = {"k": "sweep.npz", "distillation": "distillation.npz"}  # `lecture speculative` records them


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory, smol):
    """Two tiny random Llamas saved as model folders with SmolLM2's tokenizer (as a person's checkpoint would be)."""
    out = {}
    for key, name in ((TINY, "llama-gqa"), (TINY_MHA, "llama-mha")):
        folder = tmp_path_factory.mktemp(name)
        tiny(name).model.save_pretrained(folder)
        smol.tokenizer.save_pretrained(folder)
        out[key] = str(folder)
    return out


def _preset(concept: str, view: str, folders: dict | None = None) -> dict:
    preset = PRESETS.get((concept, view), PRESETS.get((concept, "*"), {}))
    return {k: (folders or {}).get(v, v) if isinstance(v, str) else v for k, v in preset.items()}


def test_science_library_imports_without_a_web_framework():
    """Every concept and toolkit.views import in a fresh interpreter without gradio, fastapi or uvicorn."""
    names = [registry.get(c).module for c in registry.CONCEPTS] + [
        "toolkit.views",
        "toolkit.variants",
    ]
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "    web = [m for m in ('gradio', 'fastapi', 'uvicorn', 'starlette') if m in sys.modules]\n"
        "    assert not web, f'{name} imported {web}'\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]


def test_every_registered_concept_has_views():
    assert views.concepts() == CONCEPTS


@pytest.mark.parametrize("concept", CONCEPTS)
def test_views_follow_the_demo(concept):
    """The view names are the demo's ?view= names, the demo's hero first; every view takes `dark`."""
    names = views.views(concept)
    demo = importlib.import_module(f"demos.{concept}")
    if hasattr(demo, "VIEW_NAMES"):
        assert names[0] == demo.VIEW_NAMES[0]
        assert set(demo.VIEW_NAMES) <= set(names), set(demo.VIEW_NAMES) - set(names)
    for name in names:
        assert "dark" in views.presets(concept, name)
        assert inspect.signature(views.view(concept, name)).parameters["dark"].default is False


def test_views_use_the_demos_defaults():
    """One source for the defaults: the demos read them from the toolkit, or hold the same values."""
    from demos import attention, grpo, kv_cache, moe, rope, sampling, sft, tokens

    assert views.presets("attention")["text"] == attention.DECK_SENTENCE
    assert views.presets("attention", "compare")["compare"] == attention.plots.COMPARE
    assert views.presets("sampling")["prompt"] == sampling.DEFAULT_PROMPT
    assert {k: views.presets("sampling")[k] for k in sampling.KNOBS} == {
        k: getattr(sampling.DEFAULTS, k) for k in sampling.KNOBS
    }
    assert views.presets("sampling", "generate")["steps"] == sampling.DEFAULTS.steps
    assert views.presets("tokens")["text"] == tokens.DEFAULT_TEXT
    assert views.presets("tokens", "similarity")["words"] == tokens.DEFAULT_WORDS
    assert views.presets("tokens", "similarity")["source"] == list(tokens.SOURCES)[0]
    assert views.presets("rope", "model-rotation")["text"] == rope.DEFAULT_TEXT
    assert views.presets("moe")["text"] == moe.DEFAULT_TEXT
    assert views.presets("kv_cache")["prompt"] == kv_cache.DEFAULT_PROMPT
    assert (views.presets("sft")["user"], views.presets("sft")["answer"]) == (sft.DEFAULT_USER, sft.DEFAULT_ANSWER)
    assert views.presets("grpo", "advantages")["rewards"] == grpo.DEFAULT_REWARDS


def test_new_concepts_views_use_the_demos_defaults():
    from demos import (
        agent,
        context,
        flash_attention,
        paged_attention,
        rag,
        reasoning,
        sparse_attention,
        speculative,
        vector_search,
    )
    from toolkit.agent import figures as agent_figures
    from toolkit.reasoning import figures as reasoning_figures

    assert views.presets("flash_attention")["text"] == flash_attention.DEFAULT_TEXT
    both = {**views.presets("flash_attention", "tiles"), **views.presets("flash_attention", "row")}
    assert {k: both[k] for k in flash_attention.DEFAULTS} == flash_attention.DEFAULTS
    assert views.presets("sparse_attention", "masks")["window"] == sparse_attention.DEFAULTS["window"]
    assert views.presets("paged_attention")["step"] == paged_attention.DEFAULT_STEP
    assert views.presets("vector_search")["query"] == vector_search.DECK_QUERY
    assert views.presets("rag")["question"] == rag.DECK_QUESTION
    assert views.presets("context")["question"] == context.cx.DEFAULT_QUESTION
    assert views.presets("speculative", "soft-targets")["soft_text"] == speculative.SOFT_TEXT
    for name in ("text", "passes"):  # the demo's run, so the preset opens its recorded run as the demo does
        assert views.presets("speculative", name)["max_new"] == speculative.DEFAULT_NEW
        assert views.presets("speculative", name)["k"] == speculative.Config.default("k")
    assert reasoning_figures.disagreement(reasoning.measurement()) == reasoning.disagreement()
    assert agent_figures.first_tool_success(agent.recorded()) == agent.first_tool_success()


@pytest.fixture
def train_once(monkeypatch):
    """LoRA's and DPO's two training views each train: here they share one run (their figures differ)."""
    dpo_capture = importlib.import_module("toolkit.dpo.capture")  # the packages re-export a `capture` function
    lora_capture = importlib.import_module("toolkit.lora.capture")

    monkeypatch.setattr(lora_capture, "finetune", functools.cache(lora_capture.finetune))
    monkeypatch.setattr(dpo_capture, "train", functools.cache(dpo_capture.train))


@pytest.mark.slow
@pytest.mark.parametrize("concept", [c for c in CONCEPTS if c != "attention"])  # attention: tests/test_hf_folders.py
def test_every_view_draws(concept, train_once, tiny_folders):
    """Each view, with small presets: a plotly figure (HTML for the HTML views), legible, no network."""
    from toolkit import speculative

    for name in views.views(concept):
        if concept == "speculative" and name in SPECULATIVE_RECORDED:
            if not (speculative.assets_dir() / SPECULATIVE_RECORDED[name]).is_file():  # not recorded on this machine
                with pytest.raises(FileNotFoundError, match="record it with `lecture distill"):
                    views.show(concept, name)
                continue
        shown = views.show(concept, name, **_preset(concept, name, tiny_folders))
        if (concept, name) in HTML_VIEWS:
            assert isinstance(shown, str) and shown.lstrip().startswith("<"), f"{concept}/{name}"
            assert not re.search(r"<script[^>]*src\s*=\s*[\"']?(https?:)?//", shown), f"{concept}/{name} loads a script"
            continue
        assert isinstance(shown, go.Figure), f"{concept}/{name} gave {type(shown).__name__}"
        assert shown.data or shown.layout.annotations, f"{concept}/{name} is empty"
        assert (shown.layout.font.size or 0) >= 16, f"{concept}/{name} font below the slide minimum"


def test_show_checks_names():
    with pytest.raises(KeyError, match="unknown concept"):
        views.show("no_such_concept")
    with pytest.raises(KeyError, match="its views"):
        views.show("attention", "no-such-view")
    with pytest.raises(TypeError, match="its presets: text, model, layer, dark"):
        views.show("attention", "overview", lyer=3)
    assert views.view("dpo") is views.view("dpo", "bradley-terry")
    fig = views.show("dpo", rw=2.0, rl=0.5, dark=True)
    assert fig.layout.paper_bgcolor == "#0b0f19"  # the dark theme of a projector


def test_notebook_renderer_loads_nothing_remote():
    """The "lecture" renderer: plotly.js inlined once by activation (no CDN), figures without MathJax's CDN.
    plotly's own "notebook" renderer, for contrast, does load a remote script."""
    assert views.notebook() == "lecture" and pio.renderers.default == "lecture"
    fig = go.Figure(go.Bar(x=["a", "b"], y=[1, 2]))
    bundle = pio.renderers["lecture"].to_mimebundle(fig.to_dict())
    page = bundle["text/html"]
    remote = re.compile(r"<script[^>]*\bsrc\s*=", re.I)
    assert not remote.search(page) and "Plotly.newPlot" in page
    assert bundle["application/vnd.plotly.v1+json"]["data"][0]["type"] == "bar"
    assert remote.search(pio.renderers["notebook"].to_mimebundle(fig.to_dict())["text/html"])
    shown = []
    import IPython.display

    with pytest.MonkeyPatch.context() as mp:  # what activation puts into the notebook, once
        mp.setattr(IPython.display, "display_html", lambda html, raw: shown.append(html))
        pio.renderers["lecture"].activate()
    assert len(shown) == 1 and not remote.search(shown[0]) and len(shown[0]) > 1_000_000  # plotly.js, inline
