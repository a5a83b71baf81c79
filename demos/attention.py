"""Attention maps: every layer and head of a real model, Q·Kᵀ step by step, encoder vs decoder, generation, bertviz."""

from __future__ import annotations

import gradio as gr

from demos import cache, stage, ui
from toolkit import attention as att
from toolkit import models, text, variants
from toolkit.attention import bertviz
from toolkit.attention import figures as plots
from toolkit.config import check_budget

DECK_SENTENCE = plots.DECK  # the deck's sentence; the notebook API (toolkit.views) has the same defaults
VIEWS = [
    ("Layer heads + model overview", "overview"),
    ("One head", "head"),
    ("Lines (bertviz style)", "lines"),
    ("Step by step: Q·Kᵀ → softmax → ×V", "step"),
    ("'it' → which word, head by head", "summary"),
    ("Encoder vs decoder", "encoder-decoder"),
    ("Generation, step by step", "generation"),
    ("bertviz (offline)", "bertviz"),
    ("Compare two models: difference per head", "compare"),
]
VIEW_NAMES = [v for _, v in VIEWS]
SHOWN = 6  # tokens the step-by-step hero shows (big numbers need few cells)
MAX_TOKENS_SERVED = 256  # a shared server's memory budget: a 256-token trace is 71 MB of weights (512: 283 MB)
BERTVIZ_TOKENS = 128  # bertviz draws lines between every pair: beyond this it is unreadable and its page is huge
SECOND_VIEW = {
    "overview": "all layers × heads (click one to open it)",
    "summary": "every head: entropy, previous token, first token, itself",
    "step": "all eight steps: Q, K, V → … → × V",
    "compare": "which heads moved: every layer × head (click one to open it)",
}


def compare_choices() -> list[str]:
    """ "Compare with": the default model's variants (fine-tuned, quantised), then the other causal models."""
    base = models.default("causal")
    return list(dict.fromkeys(models.derived(base) + [n for n in models.choices("causal") if n != base]))


@cache.bytes_cached()  # students often send the same preset; a 512-token trace (~400 MB) is served, not kept
def cached_capture(name: str, prompt: str, cfg: att.AttentionConfig) -> att.AttentionTrace:
    """One forward pass per (model, text, limit); Q, K, V only when the step-by-step view asks for them."""
    return att.capture(ui.model(name), prompt, cfg)


@cache.bytes_cached()
def _generate(name: str, prompt: str, cfg: att.AttentionConfig) -> att.AttentionTrace:
    loaded = ui.model(name)
    if loaded.kind != "causal":
        raise ui.UserError(
            f"{name} is an encoder: it does not generate. Choose a causal model such as {models.default('causal')}."
        )
    return att.generate(loaded, prompt, cfg)


def _heads(raw: str, n_heads: int, notes: list[str]) -> list[int]:
    """'2, 8' -> [2, 8]; empty -> every head; out-of-range entries are dropped with a note."""
    if not (raw or "").strip():
        return list(range(n_heads))
    heads = []
    for part in raw.replace(";", ",").split(","):
        if part.strip():
            h = ui.as_int(part, "heads")
            if 0 <= h < n_heads:
                heads.append(h)
            else:
                notes.append(f"head {h} does not exist (0–{n_heads - 1}); left out.")
    return heads or [0]


def _query(raw: str, trace: att.AttentionTrace, notes: list[str]) -> int:
    """A word ('it') or a position ('8'); unknown words fall back to the last token, with a note."""
    raw = (raw or "").strip()
    n = len(trace.tokens)
    if not raw:
        return n - 1
    if raw.lstrip("-").isdigit():
        pos = int(raw)
        if not 0 <= pos < n:
            notes.append(f"query position {pos} clamped to 0–{n - 1}.")
        return max(0, min(pos, n - 1))
    try:
        return att.find_token(trace, raw)
    except ValueError:
        notes.append(f"no token '{ui.escape(raw)}' in the text; showing the last token instead.")
        return n - 1


def _clamp(value, name: str, n: int, notes: list[str]) -> int:
    i = ui.as_int(value, name)
    if not 0 <= i < n:
        notes.append(f"{name} {i} is out of range (0–{n - 1}); showing {name} {max(0, min(i, n - 1))}.")
    return max(0, min(i, n - 1))


def _compared(name: str, other: str, prompt: str, cfg: att.AttentionConfig):
    """Both models' traces (each cached), checked comparable; a bad pair is a message."""
    other = (other or "").strip()
    if not other:
        raise ui.UserError("Choose a model to compare with (options: compare with).")
    if other == name:
        raise ui.UserError(f"Compare {name} with another model or a variant of it, e.g. {plots.COMPARE}.")
    try:
        return att.check_comparable(cached_capture(name, prompt, cfg), cached_capture(other, prompt, cfg))
    except ValueError as err:
        raise ui.UserError(str(err)) from None


@ui.safe
def show(
    prompt,
    model_name,
    layer,
    head,
    query,
    view,
    heads="",
    keys="animal, tired",
    new_tokens=8,
    max_tokens=text.DEFAULT_TOKENS,
    shown=SHOWN,
    compare=plots.COMPARE,
    request: gr.Request | None = None,
):
    """Returns (notice markdown, main figure, second figure, bertviz iframe html)."""
    prompt = ui.as_text(prompt)
    name = ui.model_name(model_name)
    view = view if view in VIEW_NAMES else "overview"
    dark = ui.is_dark(request)
    notes: list[str] = []
    cfg = ui.config(att.AttentionConfig, max_tokens=max_tokens, new_tokens=new_tokens, qkv=view == "step")
    check_budget(cfg.max_tokens, MAX_TOKENS_SERVED, "tokens", "This server runs at most 256 tokens per request.")
    if view == "bertviz" and cfg.max_tokens > BERTVIZ_TOKENS:  # its page holds every weight as JSON text
        cfg = cfg.replace(max_tokens=BERTVIZ_TOKENS)
    limit = cfg.max_tokens
    other = None
    if view == "generation":
        trace = _generate(name, prompt, cfg.replace(qkv=False))
    elif view == "compare":  # two forward passes, each within the token budget; the model lane's one slot
        cfg = cfg.replace(new_tokens=att.AttentionConfig.default("new_tokens"))
        trace, other = _compared(name, compare, prompt, cfg)
    else:
        trace = cached_capture(name, prompt, cfg.replace(new_tokens=att.AttentionConfig.default("new_tokens")))
    if trace.truncated:
        kept = trace.n_prompt if trace.n_prompt is not None else len(trace.tokens)
        notes.append(
            f"⚠️ The text has {trace.meta['n_tokens_in_text']} tokens; only the first {kept} "
            f"are used (token limit {limit})."
        )
    lay = _clamp(layer, "layer", trace.n_layers, notes)
    hd = _clamp(head, "head", trace.n_heads, notes)
    main = second = None
    frame = ""
    if view == "overview":
        main, second = plots.layer_heads(trace, lay, dark), plots.model_view(trace, dark, selected=(lay, hd))
    elif view == "head":
        main = plots.head_heatmap(trace, lay, hd, dark)
    elif view == "lines":
        main = plots.lines_view(trace, lay, _heads(heads, trace.n_heads, notes), _query(query, trace, notes), dark)
    elif view == "step":
        n = ui.as_int(shown, "tokens shown", 2, 12)
        main, second = plots.formula(trace, lay, hd, dark, max_tokens=n), plots.step_by_step(trace, lay, hd, dark)
    elif view == "summary":
        second = plots.head_summary(trace, dark)
        words = [w.strip() for w in (keys or "").split(",") if w.strip()]
        try:
            main = plots.pair_heads(trace, (query or "it").strip() or "it", tuple(words) or ("animal",), dark)
        except ValueError as err:
            main, second = second, None
            notes.append(f"word comparison skipped: {ui.escape(str(err))}")
    elif view == "encoder-decoder":
        main = _encoder_decoder(name, prompt, cfg, lay, hd, trace, dark)
    elif view == "generation":
        main = plots.generation_view(trace, lay, hd, dark)
        notes.append(f"Generated (greedy): **{ui.escape(repr(''.join(trace.meta['generated'])))}**")
    elif view == "compare":
        main, second = plots.head_difference(trace, other, lay, dark), plots.difference_summary(trace, other, dark)
        what = variants.describe(other.meta["model"])
        tv = att.total_variation(trace.weights, other.weights)
        notes.append(
            f"Compared with **{ui.escape(other.meta['model'])}**{f' ({ui.escape(what)})' if what else ''}: "
            f"red = it attends more, blue = less. Mean total variation {tv.mean():.3f}, layer {lay}: "
            f"{tv[lay].mean():.3f}."
        )
    elif view == "bertviz":
        page = bertviz.head_view(trace, layers=[lay])
        frame = bertviz.iframe(page, height=max(480, 22 * len(trace.tokens) + 140))
    kind = "causal" if trace.causal else "bidirectional"
    head_note = (
        f"{trace.n_heads} query heads share {int(trace.kv_head.max()) + 1} key/value heads"
        if int(trace.kv_head.max()) + 1 < trace.n_heads
        else f"{trace.n_heads} heads"
    )
    notes.insert(0, f"**{name}** ({kind}): {len(trace.tokens)} tokens, {trace.n_layers} layers, {head_note}.")
    return "\n\n".join(notes), main, second, frame


@ui.answers
def show_ui(*args, request: gr.Request | None = None):
    """``show`` for the page: the main view fills the hero; outputs a view does not use are hidden."""
    notice, main, second, frame = show(*args, request=request)
    view = args[5] if len(args) > 5 else ""
    return (
        notice,
        gr.update(value=stage.fill(main), visible=main is not None),
        gr.update(value=second, visible=second is not None),
        gr.update(visible=second is not None, label=SECOND_VIEW.get(view, SECOND_VIEW["overview"])),
        gr.update(value=frame, visible=bool(frame)),
    )


def compare_changed(*args, request: gr.Request | None = None):
    """ "Compare with" changed: re-render when the hero shows the comparison, else nothing to do."""
    if len(args) > 5 and args[5] == "compare":
        return show_ui(*args, request=request)
    return (gr.skip(),) * 5


@ui.safe
def open_clicked(clicked, *args, request: gr.Request | None = None):
    """A click on a model-view thumbnail arrives as "layer,head": open that head (layer heads + overview)."""
    try:
        layer, head = (int(float(v)) for v in str(clicked).split(",")[:2])
    except ValueError:
        raise ui.UserError(f"could not read the clicked head from {clicked!r}") from None
    prompt, model_name, _, _, query, view, *rest = args
    view = "compare" if view == "compare" else "overview"  # compare mode stays on: the hero shows that layer
    out = show_ui(prompt, model_name, layer, head, query, view, *rest, request=request)
    return layer, head, view, *out


# Plotly clicks are not a Gradio event: this page script forwards a click on the model view (layer on x, head on
# y) into a hidden textbox, whose input event opens the head.
CLICK_JS = """
() => {
  const hook = () => {
    const plot = document.querySelector('#attention-overview .js-plotly-plot');
    if (!plot || plot.__lectureClick || !plot.on) return;
    plot.__lectureClick = true;
    plot.on('plotly_click', (ev) => {
      const p = ev && ev.points && ev.points[0];
      const box = document.querySelector('#attention-click textarea, #attention-click input');
      if (!p || !box) return;
      box.value = Math.round(p.x) + ',' + Math.round(p.y) + ',' + Date.now();
      box.dispatchEvent(new Event('input', {bubbles: true}));
    });
  };
  setInterval(hook, 700);
}
"""


def _encoder_decoder(name, prompt, cfg, lay, hd, trace, dark):
    other = models.default("encoder") if trace.causal else models.default("causal")
    other_trace = cached_capture(other, prompt, cfg.replace(qkv=False))
    # the other model gets the same relative depth and the same head (clamped)
    other_layer = round(lay * (other_trace.n_layers - 1) / max(trace.n_layers - 1, 1))
    enc, dec = (other_trace, trace) if trace.causal else (trace, other_trace)
    layers = (other_layer, lay) if trace.causal else (lay, other_layer)
    return plots.encoder_vs_decoder(enc, dec, layers, (hd, hd), dark)


def on_load(request: gr.Request):
    p = ui.query(request)
    prompt = ui.preset(p, "text", DECK_SENTENCE)
    model = ui.preset(p, "model", models.default("causal"))
    layer = ui.preset(p, "layer", 3, int)
    head = ui.preset(p, "head", 0, int)
    query = ui.preset(p, "query", "it")
    view = ui.preset(p, "view", "overview", str, VIEW_NAMES)
    heads = ui.preset(p, "heads", "")
    keys = ui.preset(p, "keys", "animal, tired")
    shown = ui.preset(p, "shown", SHOWN, int, list(range(2, 13)))
    compare = ui.preset(p, "compare", plots.COMPARE)
    values = (prompt, model, layer, head, query, view, heads, keys, shown)
    widgets = [gr.update(value=v) for v in values]
    try:
        out = show_ui(
            prompt,
            model,
            layer,
            head,
            query,
            view,
            heads,
            keys,
            8,
            text.DEFAULT_TOKENS,
            shown,
            compare,
            request=request,
        )
    except gr.Error as err:
        out = (f"⚠️ {err.message}", *(gr.update(visible=False),) * 4)
    return *widgets, *out


def compare_preset(request: gr.Request):
    """The ?compare= preset into its dropdown (on_load already drew the view with it)."""
    return ui.preset(ui.query(request), "compare", plots.COMPARE)


with gr.Blocks(title="Attention maps") as demo:
    ui.header("attention", __doc__)
    with stage.strip():
        text_in = gr.Textbox(DECK_SENTENCE, label="text", lines=1, max_lines=1, scale=4)
        view_in = gr.Dropdown(VIEWS, value="overview", label="view", scale=2)
        layer_in = gr.Number(3, label="layer", precision=0, minimum=0, elem_id="attention-layer", scale=1)
        head_in = gr.Number(0, label="head", precision=0, minimum=0, elem_id="attention-head", scale=1)
        query_in = gr.Textbox("it", label="query token", scale=1)
        go_btn = gr.Button("Show", variant="primary", scale=1)
    with stage.options():
        model_in = gr.Dropdown(models.choices(), value=models.default("causal"), label="model", allow_custom_value=True)
        heads_in = gr.Textbox("", label="heads to overlay (e.g. 2, 8; empty = all)")
        keys_in = gr.Textbox("animal, tired", label="compare words")
        new_in = ui.slider(att.AttentionConfig, "new_tokens")
        max_in = ui.number(att.AttentionConfig, "max_tokens", maximum=MAX_TOKENS_SERVED)
        shown_in = gr.Slider(2, 12, SHOWN, step=1, label="tokens in the step-by-step view")
        compare_in = gr.Dropdown(
            compare_choices(),
            value=plots.COMPARE,
            label="compare with (view: compare two models)",
            info="a variant of the model (LoRA fine-tune, int4, NF4) or another model with the same tokenizer",
            allow_custom_value=True,
        )
    notice = stage.status()
    main_plot = stage.hero()
    frame = stage.hero_html()
    with stage.more():
        with gr.Tab("all layers × heads (click one to open it)") as overview_tab:
            second_plot = gr.Plot(show_label=False, elem_id="attention-overview")
    clicked = gr.Textbox(elem_id="attention-click", container=False, show_label=False)
    gr.HTML("<style>#attention-click { display: none !important; }</style>")
    inputs = [text_in, model_in, layer_in, head_in, query_in, view_in, heads_in, keys_in, new_in, max_in, shown_in]
    inputs.append(compare_in)
    outputs = [notice, main_plot, second_plot, overview_tab, frame]
    go_btn.click(show_ui, inputs, outputs, api_name="show")
    for widget in (view_in, layer_in, head_in):  # .input: only a person's change, not on_load's presets
        widget.input(show_ui, inputs, outputs, api_name=False)
    for box in (text_in, query_in):
        box.submit(show_ui, inputs, outputs, api_name=False)
    compare_in.input(compare_changed, inputs, outputs, api_name=False)
    clicked.change(open_clicked, [clicked, *inputs], [layer_in, head_in, view_in, *outputs], api_name=False)
    demo.load(None, None, None, js=CLICK_JS)
    demo.load(
        on_load,
        None,
        [text_in, model_in, layer_in, head_in, query_in, view_in, heads_in, keys_in, shown_in, *outputs],
        api_name=False,
    )
    demo.load(compare_preset, None, compare_in, api_name=False)

if __name__ == "__main__":
    ui.launch(demo)
