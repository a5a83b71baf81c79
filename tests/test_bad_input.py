"""Throw bad input at every handler of every demo: each case returns, or says what is wrong in a sentence.

Cases per input widget: empty, whitespace-only, 100k-character and odd-Unicode text; NaN, huge, negative and
non-numeric numbers; unknown dropdown choices. "Something went wrong" (an unexpected exception caught by
ui.safe) counts as a failure: bad input must be anticipated. Afterwards the server still answers.
"""

from __future__ import annotations

import inspect
import math

import gradio as gr
import pytest

from demos import ui
from lecture import server

ODD = "🦙 naïve 東京\u200b\u202eمرحبا\x00 \U0001d518\u0301"
TEXT_CASES = ["", "   \n\t ", "x" * 100_000, ODD]
NUMBER_CASES = [float("nan"), float("inf"), -1e9, 1e9, "abc", None]
CHOICE_CASES = ["no-such-choice", None]


def _cases(component) -> list:
    if isinstance(component, (gr.Slider, gr.Number)):
        return NUMBER_CASES
    if isinstance(component, (gr.Dropdown, gr.Radio)):
        return CHOICE_CASES + (TEXT_CASES[:1] if getattr(component, "allow_custom_value", False) else [])
    if isinstance(component, gr.Textbox):
        return TEXT_CASES
    return []


def _handlers():
    for name, info in server.discover().items():
        for fn in info.blocks.fns.values():
            if fn.inputs and fn.fn is not None and not inspect.isasyncgenfunction(fn.fn):
                yield pytest.param(name, fn, id=f"{name}.{fn.name}")


def _call(fn, values):
    params = list(inspect.signature(fn.fn).parameters.values())
    extra = [
        None
        for p in params[len(values) :]
        if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    result = fn.fn(*values, *extra)
    if inspect.isgenerator(result):  # a streaming handler: its first update is where input is checked
        try:
            next(result)
        except StopIteration:
            pass
        finally:
            result.close()


@pytest.mark.slow
@pytest.mark.parametrize("demo_name,fn", list(_handlers()))
def test_handler_survives_bad_input(demo_name, fn):
    defaults = [getattr(c, "value", None) for c in fn.inputs]
    failures = []
    for i, component in enumerate(fn.inputs):
        for bad in _cases(component):
            values = list(defaults)
            values[i] = bad
            try:
                _call(fn, values)
            except gr.Error as err:
                message = str(err.message if hasattr(err, "message") else err)
                if message.startswith("Something went wrong") or not message.strip():
                    failures.append((component.label, _short(bad), message[:200]))
            except Exception as err:  # a handler without ui.safe
                failures.append((component.label, _short(bad), f"{type(err).__name__}: {err}"[:200]))
    assert not failures, f"{demo_name}.{fn.name} did not handle: {failures}"


def _short(value) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    text = repr(value)
    return text if len(text) < 40 else text[:37] + "..."


def test_validators_say_what_is_wrong():
    with pytest.raises(ui.UserError, match="empty"):
        ui.as_text("   ")
    with pytest.raises(ui.UserError, match="limit"):
        ui.as_text("x" * (ui.MAX_TEXT_CHARS + 1))
    with pytest.raises(ui.UserError, match="whole number"):
        ui.as_int("abc", "layer")
    with pytest.raises(ui.UserError, match="finite"):
        ui.as_float(float("nan"), "theta")
    assert ui.as_int(99, "layer", 0, 29) == 29 and ui.as_int(-3, "layer", 0, 29) == 0
    assert ui.preset({"layer": "7"}, "layer", 0, int) == 7
    assert ui.preset({"layer": "x"}, "layer", 0, int) == 0
    assert ui.preset({"view": "evil"}, "view", "heads", str, ["heads", "model"]) == "heads"
    assert ui.as_choice("int8", "scheme", {"int8": 8}) == "int8"
    with pytest.raises(ui.UserError, match="Unknown scheme 'int3'; choose one of int8, nf4"):
        ui.as_choice("int3", "scheme", {"int8": 8, "nf4": 4})


def test_unexpected_errors_become_messages_and_release_the_slot():
    @ui.safe
    def broken(x):
        raise ZeroDivisionError("boom")

    for _ in range(ui.WORKERS + 2):  # a leaked slot would make later calls wait, then say "busy"
        with pytest.raises(ui.UserError, match="ZeroDivisionError"):
            broken(1)


def test_nested_handlers_share_one_slot():
    @ui.safe
    def inner():
        return "ok"

    @ui.safe
    def outer():
        return inner()

    assert outer() == "ok"


def test_server_still_answers_after_bad_requests(live_server):
    from gradio_client.exceptions import AppError

    client = live_server.client("model_card")
    for bad in ["", "x" * 100_000, ODD, "../../etc/passwd"]:
        with pytest.raises(AppError):
            client.predict(bad, api_name="/show")
    facts, _ = client.predict("smollm2-135m", api_name="/show")
    assert "30" in facts


def test_number_boxes_step_within_their_scale():
    """A box holding a fraction (a learning rate of 0.002, β = 0.1) must not move by 1 a click: one arrow press
    would leave its range or change it by orders of magnitude."""
    seen = 0
    for name, info in server.discover().items():
        for block in info.blocks.blocks.values():
            value = getattr(block, "value", None)
            if not (isinstance(block, gr.Number) and isinstance(value, (int, float))):
                continue
            if 0 < abs(value) < 1:
                seen += 1
                assert block.step <= abs(value), (name, block.label, value, block.step)
            on_grid = (value - (block.minimum or 0)) / block.step  # the browser steps from the minimum
            assert abs(on_grid - round(on_grid)) < 1e-6, (name, block.label, value, block.minimum, block.step)
    assert seen >= 5  # DPO's β, GRPO's learning rate, ε and β, the paged-attention arrival rate


def test_a_message_rewrapped_keeps_its_words():
    """Handlers catch ValueError around their parsing and re-raise ``UserError(str(err))``; a UserError is a
    ValueError: re-wrapped, it must read the same (no quotes around it, markup escaped once)."""
    first = ui.UserError("Please type a name like <b>cat</b>.")
    again = ui.UserError(str(first))
    assert again.message == first.message == "Please type a name like &lt;b&gt;cat&lt;/b&gt;."
