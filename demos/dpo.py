"""Reward model and DPO: Bradley-Terry, then real DPO steps with LoRA on a preference pair, reference = adapter off."""

from __future__ import annotations

import gradio as gr

from demos import ui
from toolkit import dpo
from toolkit.dpo import DpoConfig

MAX_CHARS = DpoConfig.default("max_chars")


def _margin(r_w, r_l) -> float:
    margin = ui.as_float(r_w, "reward of the winner") - ui.as_float(r_l, "reward of the loser")
    if abs(margin) > dpo.MAX_MARGIN:
        raise ui.UserError(f"Keep the rewards within {dpo.MAX_MARGIN:g} of each other: σ is flat beyond that.")
    return margin


@ui.safe
def bradley_terry(r_w, r_l, request: gr.Request | None = None):
    margin = _margin(r_w, r_l)
    fig = dpo.figures.bradley_terry(margin, ui.is_dark(request))
    p, loss = float(dpo.bradley_terry(margin)), float(dpo.reward_model_loss(margin))
    return fig, f"r_w − r_l = {margin:.2f}: P(winner preferred) = σ({margin:.2f}) = **{p:.3f}**, loss = **{loss:.3f}**"


def _pair(prompt, chosen, rejected) -> dpo.Pair:
    texts = [
        ui.as_text(x, name, MAX_CHARS)
        for x, name in ((prompt, "prompt"), (chosen, "chosen answer"), (rejected, "rejected answer"))
    ]
    try:
        return dpo.check_pair(texts, MAX_CHARS)
    except ValueError as err:  # the same answer twice
        raise ui.UserError(f"{str(err)[:1].upper()}{str(err)[1:]}.") from None


@ui.safe
def reference(prompt, chosen, rejected, request: gr.Request | None = None):
    """log π_ref of each answer under the shared model: DPO's starting point (every ratio 0, loss log 2)."""
    lw, ll = dpo.sequence_logps(ui.model(), _pair(prompt, chosen, rejected)).tolist()
    return (
        f"log π_ref(chosen) = **{lw:.2f}**, log π_ref(rejected) = **{ll:.2f}**. Before any step π = π_ref, so both "
        f"implicit rewards are 0 and the DPO loss is log 2 = 0.693."
    )


@ui.safe
def train(prompt, chosen, rejected, beta, steps, request: gr.Request | None = None):
    pair = _pair(prompt, chosen, rejected)
    cfg = ui.config(DpoConfig, beta=beta, steps=steps)
    t = dpo.train(ui.model(), pair, cfg)
    dark = ui.is_dark(request)
    md = (
        f"{cfg.steps} steps in {t.seconds:.1f} s. Loss {t.loss[0]:.3f} → **{t.loss[-1]:.3f}**; implicit rewards: "
        f"chosen {t.reward_chosen[-1]:+.3f}, rejected {t.reward_rejected[-1]:+.3f} (margin "
        f"{t.reward_chosen[-1] - t.reward_rejected[-1]:+.3f}). DPO only widens the gap: both log-probabilities "
        "may fall."
    )
    return dpo.figures.steps(t, dark), dpo.figures.log_probs(t, dark), md


def on_load(request: gr.Request):
    """URL presets: ?rw=&rl=&prompt=&chosen=&rejected=; unusable ones fall back to the defaults."""
    q = ui.query(request)
    r_w = ui.preset(q, "rw", 1.0, float)
    r_l = ui.preset(q, "rl", 0.0, float)
    try:
        shown = bradley_terry(r_w, r_l, request)
    except ui.UserError:
        r_w, r_l = 1.0, 0.0
        shown = bradley_terry(r_w, r_l, request)
    prompt, chosen, rejected = (ui.preset(q, k, d) for k, d in zip(("prompt", "chosen", "rejected"), dpo.PAIR))
    try:
        ref = reference(prompt, chosen, rejected, request)
    except ui.UserError:
        prompt, chosen, rejected = dpo.PAIR
        ref = reference(prompt, chosen, rejected, request)
    return r_w, r_l, *shown, prompt, chosen, rejected, ref


with gr.Blocks(title="Reward model and DPO") as demo:
    ui.header("dpo", __doc__)
    with gr.Tab("Bradley-Terry"):
        with gr.Row():
            r_w = gr.Number(1.0, label="reward of the preferred answer r_w")
            r_l = gr.Number(0.0, label="reward of the other answer r_l")
            bt_btn = gr.Button("Show", variant="primary")
        bt_plot = gr.Plot(label="Bradley-Terry")
        bt_md = gr.Markdown()
    with gr.Tab("DPO"):
        prompt = gr.Textbox(dpo.PAIR.prompt, label="prompt")
        with gr.Row():
            chosen = gr.Textbox(dpo.PAIR.chosen, label="chosen answer y_w")
            rejected = gr.Textbox(dpo.PAIR.rejected, label="rejected answer y_l")
        with gr.Row():
            beta = ui.number(DpoConfig, "beta")
            steps = ui.slider(DpoConfig, "steps")
            ref_btn = gr.Button("Reference log-probs")
            dpo_btn = gr.Button("Run DPO steps", variant="primary")
        ref_md = gr.Markdown()
        dpo_md = gr.Markdown()
        with gr.Row():
            step_plot = gr.Plot(label="rewards and loss")
            lp_plot = gr.Plot(label="log-probs")
    bt_btn.click(bradley_terry, [r_w, r_l], [bt_plot, bt_md], api_name="bradley_terry")
    ref_btn.click(reference, [prompt, chosen, rejected], [ref_md], api_name="reference")
    dpo_btn.click(train, [prompt, chosen, rejected, beta, steps], [step_plot, lp_plot, dpo_md], api_name="train")
    demo.load(on_load, None, [r_w, r_l, bt_plot, bt_md, prompt, chosen, rejected, ref_md], api_name=False)

if __name__ == "__main__":
    ui.launch(demo)
