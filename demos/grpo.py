"""GRPO: a group of answers is rewarded, turned into advantages and into a clipped update of a LoRA adapter."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from demos import stage, ui
from toolkit.config import BudgetError
from toolkit.grpo import GrpoConfig, GrpoStep, GrpoTrace, maths, metric_series
from toolkit.grpo import figures as views
from toolkit.grpo import replay as recorded
from toolkit.trace import TraceError

REPLAY = recorded.ASSET
REPLAY_COMMAND = recorded.COMMAND
MAX_REWARDS = maths.MAX_REWARDS
_source = {"path": REPLAY}  # the run the replay views open: the committed one, or `lecture serve --grpo-trace PATH`
_runs: dict[str, object] = {}  # browser session -> the Control of the live run it started (one run per server)
LIVE_IDLE_S = 8.0  # a run whose page is gone (nobody reads its stream) stops within this
LIVE_MAX_S = 15 * 60.0  # no live run outlasts a lecture's patience


@dataclass(frozen=True)
class LiveStep:
    """What the live tab keeps between events: the latest step and the run's config."""

    step: GrpoStep
    config: GrpoConfig


def parse_groups(text) -> list[list[float]]:
    """'1, 0, 0.5; 1 1 1' -> [[1, 0, 0.5], [1, 1, 1]]: groups split by ';' or new lines, values by ',' or spaces."""
    text = ui.as_text(text, "rewards", max_chars=2000)  # its own message: outside the try (a UserError is a ValueError)
    try:
        return maths.parse_groups(text)
    except ValueError as err:
        raise ui.UserError(str(err)) from None


@ui.safe(lane="cheap")
def advantages(rewards_text, eps_low, eps_high, request: gr.Request | None = None):
    """Advantages of typed rewards under each scaling, and the clipped surrogate for Â > 0 and Â < 0."""
    groups = parse_groups(rewards_text)  # (group, G) as lists
    eps = ui.config(GrpoConfig, epsilon_low=eps_low, epsilon_high=eps_high)
    results = maths.by_scaling(groups)
    adv = {maths.SCALING_LABELS[s]: a.flat() for s, a in results.items()}
    lines = [f"**{len(groups)} group(s) of G = {len(groups[0])}.**"]
    for i, (mean, std, flat_group) in enumerate(results["group"].summary()):
        verdict = "all rewards equal → every advantage is 0: **no learning signal**" if flat_group else "has spread"
        lines.append(f"- group {i}: mean {mean:.3f}, std {std:.3f}: {verdict}")
    dark = ui.is_dark(request)
    flat = [v for g in groups for v in g]
    return (
        "\n".join(lines),
        stage.fill(views.advantage_bars(flat, adv, dark)),
        stage.fill(views.surrogate(eps.epsilon_low, eps.epsilon_high, dark)),
    )


def open_trace(path: str | Path) -> GrpoTrace:
    """Make the replay views open another recorded run (``lecture serve --grpo-trace PATH``: the operator's choice,
    never a visitor's). The file is checked here: it must exist and load as a GrpoTrace."""
    p = Path(path).expanduser().resolve()
    if not p.is_file():
        raise FileNotFoundError(f"no GRPO trace at {p}")
    trace = recorded.load(p)  # TraceError when it is not a GrpoTrace file
    if not isinstance(trace, GrpoTrace):
        raise TraceError(f"{p} holds a {trace.kind} trace, not a GRPO run")
    _source["path"] = p
    _replay_views.cache_clear()
    return trace


def replay_trace() -> GrpoTrace:
    """The run the replay views open, read once per file version."""
    try:
        return recorded.load(_source["path"])
    except (OSError, TraceError) as err:
        fix = f"Regenerate it: `{REPLAY_COMMAND}`." if _source["path"] == REPLAY else "Check the file."
        raise ui.UserError(f"The recorded run cannot be read ({err}). {fix}") from None


def _completion(step: GrpoStep, value):
    """-> (the step's first group, its completion number ``value``)."""
    group = step.groups[0]
    i = ui.as_int(value, "completion")
    n = len(group.completions)
    if not 0 <= i < n:
        raise ui.UserError(f"Completion {i} does not exist: this group has completions 0 to {n - 1}.")
    return group, group.completions[i]


def _status(step: GrpoStep, at: int, group_size: int, total: int) -> str:
    """``at``: the step's place in the run, as the slider and the curves count (a trace logged every few steps
    numbers its steps 4, 9, 14...)."""
    m = step.metrics  # TRL's metric names (a run recorded from TRL without a KL term logs no "kl": nan)
    nan = float("nan")
    return (
        f"**step {at}** of 0–{total - 1} · reward {m.get('reward', nan):.2f} ± {m.get('reward_std', nan):.2f} · "
        f"KL {m.get('kl', nan):.3f} · clipped low/high {m.get('clip_ratio/low_mean', nan):.3f} / "
        f"{m.get('clip_ratio/high_mean', nan):.3f} · length {m.get('completions/mean_length', nan):.1f} · "
        f"loss {m.get('loss', nan):+.3f} · G = {group_size}"
    )


@ui.safe(lane="cheap")
def replay(step, completion, request: gr.Request | None = None):
    """The recorded run at one step: curves, the group's completions by advantage, one completion's tokens."""
    trace = replay_trace()
    n = len(trace.steps)
    s = ui.as_int(step, "step")
    if not 0 <= s < n:
        raise ui.UserError(f"Step {s} does not exist: the recorded run has steps 0 to {n - 1}.")
    i = ui.as_int(completion, "completion")
    _completion(trace.steps[s], i)  # checks that the group has completion i
    return _replay_views(s, i, ui.is_dark(request))


@functools.lru_cache(maxsize=64)  # the recorded run does not change: one answer per (step, completion, theme)
def _replay_views(s: int, i: int, dark: bool) -> tuple:
    trace = replay_trace()
    step = trace.steps[s]
    group, comp = _completion(step, i)
    return (
        _status(step, s, trace.group_size, len(trace.steps)),
        stage.fill(views.curves(trace.metrics, dark, at=s)),
        views.group_table(group, dark),
        stage.fill(views.token_heat(comp, *trace.epsilon, dark)),
    )


@ui.safe(lane="cheap")
def heat(state: LiveStep | None, completion, request: gr.Request | None = None):
    """Token heat of another completion of the live run's latest step."""
    if not state:
        raise ui.UserError("Start a live run first.")
    _, comp = _completion(state.step, completion)
    return views.token_heat(comp, state.config.epsilon_low, state.config.epsilon_high, ui.is_dark(request))


def live_config(g, max_new, steps, lr, iterations, scale, loss_type, eps_low, eps_high, beta) -> GrpoConfig:
    """Widget values -> a checked GrpoConfig (a bad value becomes a message naming the field and its range)."""
    return ui.config(
        GrpoConfig,
        num_generations=g,
        max_new_tokens=max_new,
        steps=steps,
        lr=lr,
        num_iterations=iterations,
        scale_rewards=scale,
        loss_type=loss_type,
        epsilon_low=eps_low,
        epsilon_high=eps_high,
        beta=beta,
    )


def live(
    g,
    max_new,
    steps,
    lr,
    iterations,
    scale,
    loss_type,
    eps_low,
    eps_high,
    beta,
    completion,
    request: gr.Request | None = None,
):
    """Start a live run on the embedded model; every step streams in. One run per server at a time."""
    from toolkit.grpo import trainer

    cfg = live_config(g, max_new, steps, lr, iterations, scale, loss_type, eps_low, eps_high, beta)
    try:
        cfg.check_budget()  # G x max new tokens: a step's memory (before anything starts)
    except BudgetError as err:
        raise ui.UserError(str(err)) from None
    idx = ui.as_int(completion, "completion", 0, cfg.num_generations - 1)
    dark = ui.is_dark(request)
    session = _session(request)
    control = trainer.Control(idle_s=LIVE_IDLE_S, max_s=LIVE_MAX_S)
    history, skip = [], tuple(gr.skip() for _ in range(5))
    if trainer.is_busy():
        mine = session in _runs
        raise ui.UserError(
            "Your run is still going: stop it first."
            if mine
            else "Busy: a GRPO run started in another browser is going (one per server); try again later."
        )
    # the first update starts nothing: a closed page or a probing client costs no training
    yield (f"Starting: a fresh LoRA adapter, G = {cfg.num_generations}, {cfg.steps} steps ...", *skip[1:])
    _runs[session] = control
    try:
        with ui.training():  # the server's one training slot (DPO, LoRA, forgetting... wait for it too)
            for step in trainer.stream(cfg, control, around=lambda: ui.slot(session)):
                if step is None:
                    yield skip
                    continue
                history.append(step)
                group, comp = _completion(step, idx)
                yield (
                    _status(step, len(history) - 1, cfg.num_generations, cfg.steps),
                    views.curves(metric_series(history), dark),
                    views.group_table(group, dark),
                    views.token_heat(comp, cfg.epsilon_low, cfg.epsilon_high, dark),
                    LiveStep(step, cfg),
                )
        if control.reason and control.reason != "stopped":
            yield (f"The run ended early: {control.reason}.", *skip[1:])
    except trainer.Busy as err:
        raise ui.UserError(f"Busy: {err}") from None
    except trainer.Diverged as err:
        raise ui.UserError(f"The run was ended: {err}") from None
    except gr.Error:
        raise
    except Exception as err:  # a sentence for the room, not a stack trace
        ui.log.exception("live GRPO run failed")
        raise ui.UserError(f"The live run failed: {type(err).__name__}: {str(err)[:300]}") from err
    finally:
        control.stop.set()
        if _runs.get(session) is control:
            del _runs[session]


def _session(request: gr.Request | None) -> str:
    """The browser session a live run belongs to (API calls without one share the name "api")."""
    return str(getattr(request, "session_hash", None) or "api")


@ui.safe(lane="cheap")
def stop_live(request: gr.Request | None = None):
    """Stop the live run this browser started (another browser's run is not yours to stop)."""
    control = _runs.get(_session(request))
    if control is None:
        return "You have no live run going (a run belongs to the browser that started it)."
    control.stop.set()
    return "Stopping your run: it ends before its next update."


VIEWS = [
    ("The group, by advantage", "group"),
    ("Training curves", "curves"),
    ("One completion, token by token", "tokens"),
    ("Advantage calculator", "advantages"),
    ("Clipped surrogate", "surrogate"),
]
VIEW_NAMES = [v for _, v in VIEWS]
REPLAY_VIEWS = ("group", "curves", "tokens")  # the recorded run at a step; the other two: the calculator
DEFAULT_REWARDS = views.REWARDS  # the notebook API (toolkit.views) has the same defaults


def _shown(view: str) -> list:
    """Visibility per view, in SHOWN's order: the five heroes, the replay's controls and status, the calculator's."""
    replay_view = view in REPLAY_VIEWS
    return [
        *(gr.update(visible=v == view) for v in VIEW_NAMES),
        gr.update(visible=replay_view),  # the step
        gr.update(visible=view == "tokens"),  # the completion: only the token view shows one
        gr.update(visible=replay_view),  # the replay's status
        *(gr.update(visible=not replay_view) for _ in range(5)),  # rewards, ε_low, ε_high, Compute, its summary
    ]


@ui.safe(lane="cheap")
def show_view(view, request: gr.Request | None = None):
    """The view dropdown: show that view's hero and the controls that move it (nothing is computed)."""
    return _shown(view if view in VIEW_NAMES else "group")


def on_load(request: gr.Request):
    """URL presets: ?view=&step=&completion=&rewards=; unusable ones fall back to the defaults. Returns the view,
    then one update (value and visibility) per component of SHOWN."""
    q = ui.query(request)
    n = len(replay_trace().steps) if Path(_source["path"]).is_file() else 1
    s = min(max(ui.preset(q, "step", n - 1, int), 0), n - 1)
    view = ui.preset(q, "view", "group", str, VIEW_NAMES)
    rewards = ui.preset(q, "rewards", DEFAULT_REWARDS)
    i = ui.preset(q, "completion", 0, int)
    try:
        status, curves, table, heat = replay(s, i, request)
    except gr.Error:  # a completion the group does not have
        i = 0
        status, curves, table, heat = replay(s, i, request)
    try:
        summary, bars, clip = advantages(
            rewards, GrpoConfig.default("epsilon_low"), GrpoConfig.default("epsilon_high"), request
        )
    except gr.Error as err:
        summary, bars, clip = f"⚠️ {err.message}", None, None
    values = [table, curves, heat, bars, clip, s, i, status, rewards, None, None, None, summary]
    shown = _shown(view)
    shown[5]["maximum"] = n - 1
    shown[6]["maximum"] = len(replay_trace().steps[s].groups[0].completions) - 1
    for update, value in zip(shown, values):
        if value is not None:
            update["value"] = value
    return view, *shown


with gr.Blocks(title="GRPO") as demo:
    ui.header("grpo", __doc__)
    with stage.strip():
        view_in = gr.Dropdown(VIEWS, value="group", label="view", scale=2, min_width=280)
        r_step = gr.Slider(0, 19, value=19, step=1, label="step", scale=3)  # the load benchmark varies "step"
        r_comp = gr.Slider(0, 7, value=0, step=1, label="completion #", scale=2, visible=False)
        a_text = gr.Textbox(
            DEFAULT_REWARDS, label="rewards (groups split by ;)", lines=1, max_lines=1, scale=3, visible=False
        )
        a_lo = ui.number(GrpoConfig, "epsilon_low", scale=1, visible=False)
        a_hi = ui.number(GrpoConfig, "epsilon_high", scale=1, visible=False)
        a_btn = gr.Button("Compute", variant="primary", scale=1, visible=False)
    r_status = stage.status()
    a_md = gr.Markdown(visible=False, elem_classes=["lecture-status"])
    r_table = stage.hero_html()
    r_curves = stage.hero(visible=False)
    r_heat = stage.hero(visible=False)
    a_bars = stage.hero(visible=False)
    a_clip = stage.hero(visible=False)
    with stage.more():
        with gr.Tab("Live: train a fresh adapter here"):
            gr.Markdown("Train a fresh LoRA adapter on this machine. One run per server; leaving the page stops it.")
            with gr.Row():
                l_g = ui.number(GrpoConfig, "num_generations", label="G (completions per prompt)")
                l_tok = ui.number(GrpoConfig, "max_new_tokens")
                l_steps = ui.number(GrpoConfig, "steps")
                l_lr = ui.number(GrpoConfig, "lr")
                l_it = ui.number(GrpoConfig, "num_iterations")
            with gr.Row():
                l_scale = ui.dropdown(GrpoConfig, "scale_rewards")
                l_loss = ui.dropdown(GrpoConfig, "loss_type")
                l_lo = ui.number(GrpoConfig, "epsilon_low")
                l_hi = ui.number(GrpoConfig, "epsilon_high")
                l_beta = ui.number(GrpoConfig, "beta")
                l_comp = gr.Number(0, precision=0, label="completion # for the token view")
            with gr.Row():
                l_start = gr.Button("Start", variant="primary")
                l_stop = gr.Button("Stop", variant="stop")
            l_status = gr.Markdown()
            l_curves = gr.Plot(label="training curves")
            l_table = gr.HTML()
            l_heat = gr.Plot(label="tokens")
            l_state = gr.State(None)
    with stage.options():
        gr.Markdown(
            "A real run recorded by the toolkit (SmolLM2-135M-Instruct, LoRA r=8 on q_proj/v_proj, task "
            f"'which number is larger'). Regenerate it with `{REPLAY_COMMAND}`. A run of yours (recorded from "
            "TRL's GRPOTrainer with `toolkit.grpo.trl.GrpoRecorder`) opens here with "
            "`lecture serve --grpo-trace PATH`."
        )
    replay_out = [r_status, r_curves, r_table, r_heat]
    calc_out = [a_md, a_bars, a_clip]
    shown = [r_table, r_curves, r_heat, a_bars, a_clip, r_step, r_comp, r_status, a_text, a_lo, a_hi, a_btn, a_md]
    assert len(shown) == len(_shown("group"))
    gr.on([r_step.change, r_comp.change], replay, [r_step, r_comp], replay_out, api_name="replay")
    a_btn.click(advantages, [a_text, a_lo, a_hi], calc_out, api_name="advantages")
    gr.on([a_text.submit, a_lo.input, a_hi.input], advantages, [a_text, a_lo, a_hi], calc_out, api_name=False)
    run_event = l_start.click(
        live,
        [l_g, l_tok, l_steps, l_lr, l_it, l_scale, l_loss, l_lo, l_hi, l_beta, l_comp],
        [l_status, l_curves, l_table, l_heat, l_state],
        api_name="live",
    )
    l_stop.click(stop_live, None, l_status, cancels=[run_event], api_name="stop_live")
    l_comp.change(heat, [l_state, l_comp], l_heat, api_name="heat")
    view_in.input(show_view, [view_in], shown, api_name=False)
    demo.load(on_load, None, [view_in, *shown], api_name=False)

if __name__ == "__main__":
    ui.launch(demo)
