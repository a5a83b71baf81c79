"""LoRA and QLoRA: trainable parameters by rank, a few real LoRA steps, the rank of ΔW, 8- and 4-bit weights."""

from __future__ import annotations

import gradio as gr

from demos import stage, ui
from toolkit import lora
from toolkit.lora import LoraConfig, QuantConfig

DEFAULT_TARGETS = list(LoraConfig.default("targets"))
DEFAULT_MODULE = lora.DEFAULT_MODULE
SCHEMES = list(QuantConfig.spec("scheme").choices)
VIEWS = [
    ("Trainable parameters by rank", "parameters"),
    ("QLoRA: quantisation error", "quant"),
    ("Training loss (real steps)", "loss"),
    ("Singular values of ΔW", "spectrum"),
]
VIEW_NAMES = [v for _, v in VIEWS]
TRAINED_VIEWS = ("loss", "spectrum")  # these wait for the Train button


@ui.safe(lane="cheap")
def parameters(targets, r=None, request: gr.Request | None = None):
    """Trainable parameters at each rank for these targets, rank ``r`` highlighted (and added if not a power of 2)."""
    cfg = ui.config(LoraConfig, targets=targets) if r is None else ui.config(LoraConfig, targets=targets, r=r)
    ranks = tuple(sorted(set(lora.RANKS) | {cfg.r}))
    rows = lora.counts(ui.model(), cfg, ranks=ranks)
    return stage.fill(lora.figures.parameters(rows, ui.is_dark(request), r=cfg.r))


@ui.safe(lane="train")
def train(r, alpha, targets, steps, layer, request: gr.Request | None = None):
    cfg = ui.config(LoraConfig, r=r, alpha=alpha, targets=targets, steps=steps, layer=layer)
    loaded = ui.model()
    try:
        t = lora.finetune(loaded, lora.EXAMPLE, cfg)
    except ValueError as err:  # a layer the model does not have
        raise ui.UserError(f"{err}.") from None
    dark = ui.is_dark(request)
    md = (
        f"{cfg.steps} AdamW steps ({t.seconds:.1f} s): loss {t.losses[0]:.3f} → **{t.losses[-1]:.3f}** · "
        f"trainable {t.trainable:,} of {t.trainable + t.frozen:,} · merged vs unmerged logits ≤ "
        f"{t.merge_max_diff:.1e} apart · the shared model is untouched (new modules over its frozen weights)"
    )
    return stage.fill(lora.figures.losses(t, dark)), stage.fill(lora.figures.spectra(t, dark)), md


@ui.safe(lane="cheap")
def quantize(module: str, scheme: str, request: gr.Request | None = None):
    cfg = ui.config(QuantConfig, scheme=scheme)
    loaded = ui.model()
    module = (module or "").strip()
    try:
        q = lora.quant_trace(loaded, module, cfg)
        rows = [lora.quant_trace(loaded, module, cfg, scheme=s) for s in SCHEMES]
    except ValueError as err:
        raise ui.UserError(str(err)) from None
    n = sum(p.numel() for p in loaded.model.parameters())
    table = "| scheme | bytes | vs fp32 | max error | relative error |\n|---|---|---|---|---|\n" + "\n".join(
        f"| {x.scheme} | {x.bytes:,} | {x.bytes / x.fp32_bytes:.3f} | {x.max_abs_error:.4f} "
        f"| {100 * x.rel_error:.2f}% |"
        for x in rows
    )
    whole = ", ".join(f"{s}: {n * b / 8 / 2**20:.0f} MiB" for s, b in lora.SCHEMES.items())
    md = f"{table}\n\nWhole model ({n / 1e6:.0f} M weights): fp32 {n * 4 / 2**20:.0f} MiB, {whole} (plus scales)."
    return stage.fill(lora.figures.errors(q, ui.is_dark(request))), md


def _rank(q: dict) -> int:
    """The ?r= preset when LoraConfig accepts it, else its default."""
    default = LoraConfig.default("r")
    try:
        return LoraConfig.coerce(r=ui.preset(q, "r", default, int)).r
    except ValueError:
        return default


def _shown(view: str) -> list:
    """Visibility of the four heroes (one per view) and of the quantisation table's tab."""
    return [*(gr.update(visible=v == view) for v in VIEW_NAMES), gr.update(visible=view == "quant")]


@ui.safe(lane="cheap")
def show_view(view, request: gr.Request | None = None):
    """The view dropdown: show that view's hero (nothing is computed; training waits for its button)."""
    return _shown(view if view in VIEW_NAMES else "parameters")


@ui.safe(lane="cheap")
def after_train(view):
    """Once trained, the hero shows the training (the loss, unless the spectrum is already on)."""
    view = view if view in TRAINED_VIEWS else "loss"
    return view, *_shown(view)


def _waiting(steps: int, request) -> object:
    return stage.fill(
        lora.figures.waiting(
            f"Press <b>Train</b>: {steps} real AdamW steps on the bundled example (a few seconds each)",
            ui.is_dark(request),
        )
    )


PRESS_TRAIN = (
    f"Press **Train**: real AdamW steps on the bundled example ({len(lora.EXAMPLE)} exchanges; a few seconds a step)."
)


def on_load(request: gr.Request):
    """URL presets: ?view=&targets=q_proj,v_proj&module=&scheme=&r=&steps=. Returns the presets, the status, the
    quantisation table, then one update (value and visibility) per hero and the table's tab."""
    q = ui.query(request)
    targets = [t for t in ui.preset(q, "targets", ",".join(DEFAULT_TARGETS)).split(",") if t in lora.TARGETS]
    targets = targets or DEFAULT_TARGETS
    module = ui.preset(q, "module", DEFAULT_MODULE)
    scheme = ui.preset(q, "scheme", "nf4", choices=SCHEMES)
    r = _rank(q)
    view = ui.preset(q, "view", "parameters", str, VIEW_NAMES)
    steps = ui.preset(q, "steps", 3, int)
    if not LoraConfig.spec("steps").lo <= steps <= LoraConfig.spec("steps").hi:
        steps = 3
    try:
        shown = quantize(module, scheme, request)
    except ui.UserError:
        module = DEFAULT_MODULE
        shown = quantize(module, scheme, request)
    values = [parameters(targets, r, request), shown[0], _waiting(steps, request), _waiting(steps, request), None]
    heroes = _shown(view)
    for update, value in zip(heroes, values):
        if value is not None:
            update["value"] = value
    return targets, module, scheme, r, view, steps, PRESS_TRAIN, shown[1], *heroes


with gr.Blocks(title="LoRA and QLoRA") as demo:
    ui.header("lora", __doc__)
    with stage.strip():
        view_in = gr.Dropdown(VIEWS, value="parameters", label="view", scale=3, min_width=260)
        r = ui.slider(LoraConfig, "r", scale=2)
        scheme = gr.Dropdown(SCHEMES, value="nf4", label=QuantConfig.spec("scheme").label, scale=1, min_width=110)
        steps = ui.slider(LoraConfig, "steps", value=3, scale=2)
        train_btn = gr.Button("Train", variant="primary", scale=1)
    train_md = stage.status(PRESS_TRAIN)
    param_plot = stage.hero()
    q_plot = stage.hero(visible=False)
    loss_plot = stage.hero(visible=False)
    sv_plot = stage.hero(visible=False)
    with stage.more():
        with gr.Tab("every scheme: bytes and error", visible=False) as q_tab:
            q_md = gr.Markdown()
    with stage.options():
        targets = gr.CheckboxGroup(
            list(LoraConfig.spec("targets").choices), value=DEFAULT_TARGETS, label=LoraConfig.spec("targets").label
        )
        alpha = ui.number(LoraConfig, "alpha")
        layer = ui.number(LoraConfig, "layer")
        module = gr.Textbox(DEFAULT_MODULE, label="weight to quantise")
        q_btn = gr.Button("Quantise")
    shown = [param_plot, q_plot, loss_plot, sv_plot, q_tab]
    # cheap (a count, one weight quantised): re-render on change; training keeps its button
    gr.on([targets.change, r.release], parameters, [targets, r], [param_plot], api_name="parameters")
    train_btn.click(train, [r, alpha, targets, steps, layer], [loss_plot, sv_plot, train_md], api_name="train").success(
        after_train, [view_in], [view_in, *shown], api_name=False
    )
    gr.on([q_btn.click, scheme.input, module.submit], quantize, [module, scheme], [q_plot, q_md], api_name="quantize")
    view_in.input(show_view, [view_in], shown, api_name=False)
    demo.load(
        on_load,
        None,
        [targets, module, scheme, r, view_in, steps, train_md, q_md, *shown],
        api_name=False,
    )

if __name__ == "__main__":
    ui.launch(demo)
