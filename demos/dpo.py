"""Reward model and DPO: Bradley-Terry, then real DPO steps with LoRA on a preference pair, reference = adapter off."""
from __future__ import annotations

import gradio as gr
import numpy as np

from toolkit import dpo, ui
from toolkit.plots import dpo as views

TITLE = "Reward model and DPO"
ORDER = 95

MAX_CHARS = 1000



def _margin(r_w, r_l) -> float:
    margin = ui.as_float(r_w, "reward of the winner") - ui.as_float(r_l, "reward of the loser")
    if abs(margin) > 50:
        raise ui.UserError("Keep the rewards within 50 of each other: σ is flat beyond that.")
    return margin


@ui.safe
def bradley_terry(r_w, r_l, request: gr.Request | None = None):
    margin = _margin(r_w, r_l)
    span = max(6.0, abs(margin) + 1)
    xs = np.linspace(-span, span, 241)
    fig = views.bradley_terry(xs, dpo.bradley_terry(xs).numpy(), dpo.reward_model_loss(xs).numpy(), margin,
                              ui.is_dark(request))
    p, loss = float(dpo.bradley_terry(margin)), float(dpo.reward_model_loss(margin))
    return fig, f"r_w − r_l = {margin:.2f}: P(winner preferred) = σ({margin:.2f}) = **{p:.3f}**, loss = **{loss:.3f}**"


def _pair(prompt, chosen, rejected) -> tuple[str, str, str]:
    out = tuple(ui.as_text(x, name, MAX_CHARS) for x, name in
                ((prompt, "prompt"), (chosen, "chosen answer"), (rejected, "rejected answer")))
    if out[1].strip() == out[2].strip():
        raise ui.UserError("The chosen and rejected answers are the same: DPO has nothing to prefer.")
    return out


def _beta(beta) -> float:
    b = ui.as_float(beta, "β")
    if not 0 < b <= 10:
        raise ui.UserError(f"β must be in (0, 10], got {b:g}.")
    return b


@ui.safe
def reference(prompt, chosen, rejected, request: gr.Request | None = None):
    """log π_ref of each answer under the shared model: DPO's starting point (every ratio 0, loss log 2)."""
    prompt, chosen, rejected = _pair(prompt, chosen, rejected)
    lw, ll = dpo.sequence_logps(ui.model(), prompt, [chosen, rejected]).tolist()
    return (f"log π_ref(chosen) = **{lw:.2f}**, log π_ref(rejected) = **{ll:.2f}**. Before any step π = π_ref, so both "
            f"implicit rewards are 0 and the DPO loss is log 2 = 0.693.")


@ui.safe
def train(prompt, chosen, rejected, beta, steps, request: gr.Request | None = None):
    prompt, chosen, rejected = _pair(prompt, chosen, rejected)
    beta = _beta(beta)
    steps = ui.as_int(steps, "steps", 1, dpo.MAX_STEPS)
    t = dpo.train(ui.model(), prompt, chosen, rejected, beta, steps)
    dark = ui.is_dark(request)
    md = (f"{steps} steps in {t.seconds:.1f} s. Loss {t.loss[0]:.3f} → **{t.loss[-1]:.3f}**; implicit rewards: chosen "
          f"{t.reward_chosen[-1]:+.3f}, rejected {t.reward_rejected[-1]:+.3f} (margin "
          f"{t.reward_chosen[-1] - t.reward_rejected[-1]:+.3f}). DPO only widens the gap: both log-probabilities may fall.")
    return views.steps(t, dark), views.log_probs(t, dark), md


def on_load(request: gr.Request):
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


with gr.Blocks(title=TITLE) as demo:
    ui.header(TITLE, __doc__)
    with gr.Tab("Bradley-Terry"):
        with gr.Row():
            r_w = gr.Number(1.0, label="reward of the preferred answer r_w")
            r_l = gr.Number(0.0, label="reward of the other answer r_l")
            bt_btn = gr.Button("Show", variant="primary")
        bt_plot = gr.Plot(label="Bradley-Terry")
        bt_md = gr.Markdown()
    with gr.Tab("DPO"):
        prompt = gr.Textbox(dpo.PAIR[0], label="prompt")
        with gr.Row():
            chosen = gr.Textbox(dpo.PAIR[1], label="chosen answer y_w")
            rejected = gr.Textbox(dpo.PAIR[2], label="rejected answer y_l")
        with gr.Row():
            beta = gr.Number(0.1, label="β")
            steps = gr.Slider(1, dpo.MAX_STEPS, 3, step=1, label="DPO steps")
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
