"""LoRA and QLoRA: trainable parameters by rank, a few real LoRA steps, the rank of ΔW, 8- and 4-bit weights."""

from __future__ import annotations

import gradio as gr

from demos import ui
from toolkit import lora
from toolkit.lora import LoraConfig, QuantConfig

DEFAULT_TARGETS = list(LoraConfig.default("targets"))
DEFAULT_MODULE = lora.DEFAULT_MODULE
SCHEMES = list(QuantConfig.spec("scheme").choices)


@ui.safe
def parameters(targets, request: gr.Request | None = None):
    cfg = ui.config(LoraConfig, targets=targets)
    return lora.figures.parameters(lora.counts(ui.model(), cfg), ui.is_dark(request))


@ui.safe
def train(r, alpha, targets, steps, layer, request: gr.Request | None = None):
    cfg = ui.config(LoraConfig, r=r, alpha=alpha, targets=targets, steps=steps, layer=layer)
    loaded = ui.model()
    try:
        t = lora.finetune(loaded, lora.EXAMPLE, cfg)
    except ValueError as err:  # a layer the model does not have
        raise ui.UserError(f"{err}.") from None
    dark = ui.is_dark(request)
    md = (
        f"{cfg.steps} AdamW steps on the bundled example ({len(lora.EXAMPLE)} exchanges) in {t.seconds:.1f} s: "
        f"loss {t.losses[0]:.3f} → {t.losses[-1]:.3f}. Trainable {t.trainable:,} of {t.trainable + t.frozen:,}. "
        f"Merged vs unmerged logits differ by at most {t.merge_max_diff:.1e}. "
        f"The shared model is untouched: training ran on new modules over its frozen weights."
    )
    return lora.figures.losses(t, dark), lora.figures.spectra(t, dark), md


@ui.safe
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
    return lora.figures.errors(q, ui.is_dark(request)), md


def _rank(q: dict) -> int:
    """The ?r= preset when LoraConfig accepts it, else its default."""
    default = LoraConfig.default("r")
    try:
        return LoraConfig.coerce(r=ui.preset(q, "r", default, int)).r
    except ValueError:
        return default


def on_load(request: gr.Request):
    """URL presets: ?targets=q_proj,v_proj&module=&scheme=&r=."""
    q = ui.query(request)
    targets = [t for t in ui.preset(q, "targets", ",".join(DEFAULT_TARGETS)).split(",") if t in lora.TARGETS]
    targets = targets or DEFAULT_TARGETS
    module = ui.preset(q, "module", DEFAULT_MODULE)
    scheme = ui.preset(q, "scheme", "nf4", choices=SCHEMES)
    r = _rank(q)
    try:
        shown = quantize(module, scheme, request)
    except ui.UserError:
        module = DEFAULT_MODULE
        shown = quantize(module, scheme, request)
    return targets, module, scheme, r, parameters(targets, request), *shown


with gr.Blocks(title="LoRA and QLoRA") as demo:
    ui.header("lora", __doc__)
    targets = gr.CheckboxGroup(
        list(LoraConfig.spec("targets").choices), value=DEFAULT_TARGETS, label=LoraConfig.spec("targets").label
    )
    param_plot = gr.Plot(label="trainable parameters")
    with gr.Row():
        r = ui.slider(LoraConfig, "r")
        alpha = ui.number(LoraConfig, "alpha")
        steps = ui.slider(LoraConfig, "steps", value=3)
        layer = ui.number(LoraConfig, "layer")
        train_btn = gr.Button("Train a few steps", variant="primary")
    train_md = gr.Markdown(
        "Press **Train a few steps**: real AdamW steps on a copy-free twin of the model "
        f"(bundled example: {len(lora.EXAMPLE)} exchanges; a few seconds per step on 2 cores)."
    )
    with gr.Row():
        loss_plot = gr.Plot(label="loss")
        sv_plot = gr.Plot(label="singular values")
    with gr.Row():
        module = gr.Textbox(DEFAULT_MODULE, label="weight to quantise")
        scheme = gr.Radio(SCHEMES, value="nf4", label=QuantConfig.spec("scheme").label)
        q_btn = gr.Button("Quantise", variant="primary")
    with gr.Row():
        q_plot = gr.Plot(label="quantisation error")
        q_md = gr.Markdown()
    targets.change(parameters, [targets], [param_plot], api_name="parameters")
    train_btn.click(train, [r, alpha, targets, steps, layer], [loss_plot, sv_plot, train_md], api_name="train")
    q_btn.click(quantize, [module, scheme], [q_plot, q_md], api_name="quantize")
    demo.load(on_load, None, [targets, module, scheme, r, param_plot, q_plot, q_md], api_name=False)

if __name__ == "__main__":
    ui.launch(demo)
