"""Reward model and DPO: Bradley-Terry, then real DPO steps with LoRA on a preference pair, reference = adapter off."""

from __future__ import annotations

import gradio as gr

from demos import stage, ui
from toolkit import dpo
from toolkit.dpo import DpoConfig

MAX_CHARS = DpoConfig.default("max_chars")
VIEWS = [
    ("Bradley-Terry: P = σ(r_w − r_l)", "bradley-terry"),
    ("DPO steps: implicit rewards and loss", "steps"),
    ("DPO: log-probabilities of both answers", "log-probs"),
]
VIEW_NAMES = [v for _, v in VIEWS]
TRAINED_VIEWS = ("steps", "log-probs")  # these wait for the Run button
REWARD_RANGE = 10  # the sliders' range; the handler accepts margins up to dpo.MAX_MARGIN


def _margin(r_w, r_l) -> float:
    margin = ui.as_float(r_w, "reward of the winner") - ui.as_float(r_l, "reward of the loser")
    if abs(margin) > dpo.MAX_MARGIN:
        raise ui.UserError(f"Keep the rewards within {dpo.MAX_MARGIN:g} of each other: σ is flat beyond that.")
    return margin


@ui.safe(lane="cheap")
def bradley_terry(r_w, r_l, request: gr.Request | None = None):
    margin = _margin(r_w, r_l)
    fig = stage.fill(dpo.figures.bradley_terry(margin, ui.is_dark(request)))
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
        f"log π_ref(chosen) = **{lw:.2f}**, log π_ref(rejected) = **{ll:.2f}**. Before any step π = π_ref: both "
        "implicit rewards are 0, the loss is log 2 = 0.693. Press **Run DPO**."
    )


@ui.safe(lane="train")
def train(prompt, chosen, rejected, beta, steps, request: gr.Request | None = None):
    pair = _pair(prompt, chosen, rejected)
    cfg = ui.config(DpoConfig, beta=beta, steps=steps)
    t = dpo.train(ui.model(), pair, cfg)
    dark = ui.is_dark(request)
    after = max(float(t.loss[-1]), 0.0) + 0.0  # -log σ(·) >= 0: a rounding error showed as -0.000
    md = (
        f"{cfg.steps} step{'s' * (cfg.steps != 1)} ({t.seconds:.1f} s): loss {t.loss[0]:.3f} → **{after:.3f}** · "
        "implicit rewards "
        f"chosen {t.reward_chosen[-1]:+.3f}, rejected {t.reward_rejected[-1]:+.3f} (margin "
        f"{t.reward_chosen[-1] - t.reward_rejected[-1]:+.3f}) · DPO only widens the gap: both log-probs may fall"
    )
    return stage.fill(dpo.figures.steps(t, dark)), stage.fill(dpo.figures.log_probs(t, dark)), md


def _shown(view: str) -> list:
    """Visibility per view, in SHOWN's order: three heroes; r_w, r_l and their sentence; β, steps, Run and theirs."""
    bt = view == "bradley-terry"
    return [
        *(gr.update(visible=v == view) for v in VIEW_NAMES),
        *(gr.update(visible=bt) for _ in range(3)),
        *(gr.update(visible=not bt) for _ in range(4)),
    ]


@ui.safe(lane="cheap")
def show_view(view, request: gr.Request | None = None):
    """The view dropdown: show that view's hero and its controls (nothing is computed; DPO waits for its button)."""
    return _shown(view if view in VIEW_NAMES else "bradley-terry")


@ui.safe(lane="cheap")
def after_train(view):
    """Once trained, the hero shows the DPO steps (or the log-probs, if they are already on)."""
    view = view if view in TRAINED_VIEWS else "steps"
    return view, *_shown(view)


def on_load(request: gr.Request):
    """URL presets: ?view=&rw=&rl=&beta=&steps=&prompt=&chosen=&rejected=; unusable ones fall back to the defaults.
    Returns the presets, then one update (value and visibility) per component of SHOWN."""
    q = ui.query(request)
    clamp = lambda v: max(-REWARD_RANGE, min(REWARD_RANGE, v))  # noqa: E731
    r_w, r_l = clamp(ui.preset(q, "rw", 1.0, float)), clamp(ui.preset(q, "rl", 0.0, float))
    view = ui.preset(q, "view", "bradley-terry", str, VIEW_NAMES)
    try:
        cfg = DpoConfig.coerce(
            beta=ui.preset(q, "beta", DpoConfig.default("beta"), float), steps=ui.preset(q, "steps", 3, int)
        )
    except ValueError:
        cfg = DpoConfig()
    bt_fig, bt_text = bradley_terry(r_w, r_l, request)
    prompt, chosen, rejected = (ui.preset(q, k, d) for k, d in zip(("prompt", "chosen", "rejected"), dpo.PAIR))
    try:
        ref = reference(prompt, chosen, rejected, request)
    except ui.UserError:
        prompt, chosen, rejected = dpo.PAIR
        ref = reference(prompt, chosen, rejected, request)
    dark = ui.is_dark(request)
    waiting = stage.fill(
        dpo.figures.waiting(f"Press <b>Run DPO</b>: {cfg.steps} real steps on this pair (a few seconds each)", dark)
    )
    values = [bt_fig, waiting, waiting, r_w, r_l, bt_text, cfg.beta, cfg.steps, None, ref]
    shown = _shown(view)
    for update, value in zip(shown, values):
        if value is not None:
            update["value"] = value
    return view, prompt, chosen, rejected, *shown


with gr.Blocks(title="Reward model and DPO") as demo:
    ui.header("dpo", __doc__)
    with stage.strip():
        view_in = gr.Dropdown(VIEWS, value="bradley-terry", label="view", scale=2, min_width=280)
        r_w = gr.Slider(-REWARD_RANGE, REWARD_RANGE, value=1.0, step=0.1, label="r_w (preferred answer)", scale=2)
        r_l = gr.Slider(-REWARD_RANGE, REWARD_RANGE, value=0.0, step=0.1, label="r_l (other answer)", scale=2)
        beta = ui.number(DpoConfig, "beta", visible=False, scale=1)
        steps = ui.slider(DpoConfig, "steps", visible=False, scale=2)
        dpo_btn = gr.Button("Run DPO", variant="primary", visible=False, scale=1)
    bt_md = stage.status()
    dpo_md = gr.Markdown(visible=False, elem_classes=["lecture-status"])
    bt_plot = stage.hero()
    step_plot = stage.hero(visible=False)
    lp_plot = stage.hero(visible=False)
    with stage.options():
        prompt = gr.Textbox(dpo.PAIR.prompt, label="prompt")
        chosen = gr.Textbox(dpo.PAIR.chosen, label="chosen answer y_w")
        rejected = gr.Textbox(dpo.PAIR.rejected, label="rejected answer y_l")
        ref_btn = gr.Button("Reference log-probs")
    shown = [bt_plot, step_plot, lp_plot, r_w, r_l, bt_md, beta, steps, dpo_btn, dpo_md]
    # Bradley-Terry is a formula (cheap): it follows the sliders; DPO trains, so it keeps its button
    gr.on([r_w.release, r_l.release], bradley_terry, [r_w, r_l], [bt_plot, bt_md], api_name="bradley_terry")
    ref_btn.click(reference, [prompt, chosen, rejected], [dpo_md], api_name="reference")
    dpo_btn.click(
        train, [prompt, chosen, rejected, beta, steps], [step_plot, lp_plot, dpo_md], api_name="train"
    ).success(after_train, [view_in], [view_in, *shown], api_name=False)
    view_in.input(show_view, [view_in], shown, api_name=False)
    demo.load(on_load, None, [view_in, prompt, chosen, rejected, *shown], api_name=False)

if __name__ == "__main__":
    ui.launch(demo)
