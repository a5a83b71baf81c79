"""LoRA and QLoRA: trainable parameters by rank, a few real LoRA steps, the rank of ΔW, 8- and 4-bit weights."""
from __future__ import annotations

import gradio as gr

from toolkit import lora, ui
from toolkit.plots import lora as views

TITLE = "LoRA and QLoRA"
ORDER = 75

DEFAULT_TARGETS = ["q_proj", "v_proj"]
DEFAULT_MODULE = "model.layers.0.self_attn.q_proj"



def _targets(targets) -> list[str]:
    chosen = [t for t in (targets or []) if t in lora.TARGETS]
    unknown = [t for t in (targets or []) if t not in lora.TARGETS]
    if unknown:
        raise ui.UserError(f"Unknown target module {unknown[0]!r}; choose from {', '.join(lora.TARGETS)}.")
    if not chosen:
        raise ui.UserError("Choose at least one target module (q_proj and v_proj are the classic choice).")
    return chosen


@ui.safe
def parameters(targets, request: gr.Request | None = None):
    loaded = ui.model()
    chosen = _targets(targets)
    return views.parameters(lora.counts(loaded, chosen), ui.is_dark(request))


@ui.safe
def train(r, alpha, targets, steps, layer, request: gr.Request | None = None):
    loaded = ui.model()
    r = ui.as_int(r, "rank r", 1, 64)
    alpha = ui.as_float(alpha, "alpha")
    if not 0 < alpha <= 1024:
        raise ui.UserError(f"alpha must be in (0, 1024], got {alpha:g}.")
    steps = ui.as_int(steps, "steps", 1, lora.MAX_STEPS)
    n_layers = loaded.config.num_hidden_layers
    layer = ui.as_int(layer, "layer", 0, n_layers - 1)
    t = lora.finetune(loaded, r, alpha, _targets(targets), steps, layer=layer)
    dark = ui.is_dark(request)
    md = (f"{steps} AdamW steps on the bundled example ({len(lora.EXAMPLE)} exchanges) in {t.seconds:.1f} s: "
          f"loss {t.losses[0]:.3f} → {t.losses[-1]:.3f}. Trainable {t.trainable:,} of {t.trainable + t.frozen:,}. "
          f"Merged vs unmerged logits differ by at most {t.merge_max_diff:.1e}. "
          f"The shared model is untouched: training ran on new modules over its frozen weights.")
    return views.losses(t, dark), views.spectra(t, dark), md


@ui.safe
def quantize(module: str, scheme: str, request: gr.Request | None = None):
    loaded = ui.model()
    module = (module or "").strip()
    ui.as_choice(scheme, "scheme", lora.SCHEMES)
    try:
        q = lora.quant_trace(loaded, module, scheme)
        rows = [lora.quant_trace(loaded, module, s) for s in lora.SCHEMES]
    except ValueError as err:
        raise ui.UserError(str(err)) from None
    n = sum(p.numel() for p in loaded.model.parameters())
    table = "| scheme | bytes | vs fp32 | max error | relative error |\n|---|---|---|---|---|\n" + "\n".join(
        f"| {x.scheme} | {x.bytes:,} | {x.bytes / x.fp32_bytes:.3f} | {x.max_abs_error:.4f} | {100 * x.rel_error:.2f}% |"
        for x in rows)
    whole = ", ".join(f"{s}: {n * b / 8 / 2**20:.0f} MiB" for s, b in lora.SCHEMES.items())
    md = f"{table}\n\nWhole model ({n / 1e6:.0f} M weights): fp32 {n * 4 / 2**20:.0f} MiB, {whole} (plus scales)."
    return views.errors(q, ui.is_dark(request)), md


def on_load(request: gr.Request):
    q = ui.query(request)
    targets = [t for t in ui.preset(q, "targets", ",".join(DEFAULT_TARGETS)).split(",") if t in lora.TARGETS]
    targets = targets or DEFAULT_TARGETS
    module = ui.preset(q, "module", DEFAULT_MODULE)
    scheme = ui.preset(q, "scheme", "nf4", choices=list(lora.SCHEMES))
    r = ui.preset(q, "r", 8, int, choices=list(range(1, 65)))
    try:
        shown = quantize(module, scheme, request)
    except ui.UserError:
        module = DEFAULT_MODULE
        shown = quantize(module, scheme, request)
    return targets, module, scheme, r, parameters(targets, request), *shown


with gr.Blocks(title=TITLE) as demo:
    ui.header(TITLE, __doc__)
    targets = gr.CheckboxGroup(list(lora.TARGETS), value=DEFAULT_TARGETS, label="target modules")
    param_plot = gr.Plot(label="trainable parameters")
    with gr.Row():
        r = gr.Slider(1, 64, 8, step=1, label="rank r")
        alpha = gr.Number(16, label="alpha")
        steps = gr.Slider(1, lora.MAX_STEPS, 3, step=1, label="steps")
        layer = gr.Number(0, label="layer to inspect", precision=0)
        train_btn = gr.Button("Train a few steps", variant="primary")
    train_md = gr.Markdown("Press **Train a few steps**: real AdamW steps on a copy-free twin of the model "
                           f"(bundled example: {len(lora.EXAMPLE)} exchanges; a few seconds per step on 2 cores).")
    with gr.Row():
        loss_plot = gr.Plot(label="loss")
        sv_plot = gr.Plot(label="singular values")
    with gr.Row():
        module = gr.Textbox(DEFAULT_MODULE, label="weight to quantise")
        scheme = gr.Radio(list(lora.SCHEMES), value="nf4", label="scheme")
        q_btn = gr.Button("Quantise", variant="primary")
    with gr.Row():
        q_plot = gr.Plot(label="quantisation error")
        q_md = gr.Markdown()
    targets.change(parameters, [targets], [param_plot], api_name="parameters")
    train_btn.click(train, [r, alpha, targets, steps, layer], [loss_plot, sv_plot, train_md], api_name="train")
    q_btn.click(quantize, [module, scheme], [q_plot, q_md], api_name="quantize")
    demo.load(on_load, None, [targets, module, scheme, r, param_plot, q_plot, q_md], api_name=False)
