"""Reasoning: answer reading, votes and Wilson intervals on known answers, rule-checked steps, batched generation
equal to one-by-one generate(), the measurement and tree search on a tiny model, the recorded measurement against
the slides (which must say what it says), and the demo."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from toolkit import reasoning as rs
from toolkit.reasoning.generate import chat_ids, generate
from toolkit.reasoning.record import MEASUREMENT, TREE


def test_answer_reading():
    assert rs.extract_answer("20 + 5 = 25. 25 - 3 = 22. The answer is 22.") == 22
    assert rs.extract_answer("so the answer is: 1,024 apples") == 1024
    assert rs.extract_answer("59 + 63 = 152") == 152
    assert rs.extract_answer("no numbers") is None
    assert rs.first_number(" 74. Because 74 > 47") == 74
    assert rs.first_number(" -3.5 left") == -3.5


def test_majority_vote():
    assert rs.majority([3, 5, 3, None, 5, 3]) == (3, 3)
    assert rs.majority([7, 5, 5, 7]) == (7, 2)  # a tie goes to the answer seen first
    assert rs.majority([None, None]) == (None, 0)


@pytest.mark.parametrize(
    "k,n,lo,hi",
    [(0, 10, 0.0, 0.2775), (5, 10, 0.2366, 0.7634), (10, 10, 0.7225, 1.0), (3, 60, 0.0171, 0.1370)],
)
def test_wilson_interval_known_values(k, n, lo, hi):
    got = rs.wilson(k, n)
    assert got == pytest.approx((lo, hi), abs=1e-4)


def test_wilson_against_its_definition():
    """The interval's ends are the two roots of (p̂ - p)² = z² p(1-p)/n, the score test's boundary."""
    z = 1.959963984540054
    for k, n in [(1, 7), (13, 60), (59, 60)]:
        p_hat = k / n
        for p in rs.wilson(k, n):
            assert (p_hat - p) ** 2 == pytest.approx(z * z * p * (1 - p) / n, rel=1e-9, abs=1e-12)
    with pytest.raises(ValueError):
        rs.wilson(5, 3)


def test_steps_are_rule_checked():
    chain = "We start with 20 apples. Adding 5 gives 20 + 5 = 25.\nThen 25 - 3 = 21 apples. The answer is 21."
    steps = rs.check_steps(chain)
    assert [s.verdict for s in steps] == ["unchecked", "correct", "wrong", "unchecked"]
    assert steps[1].equations == (("20 + 5", 25.0, 25.0),) and steps[2].reward == 0.0
    assert rs.process_score(steps) == 0.5
    assert rs.check_step("84 + 48 = 1,32").verdict in ("wrong", "unchecked")  # never crashes on odd numbers
    assert rs.check_step("__import__('os') = 3").verdict == "unchecked"  # no arithmetic: nothing is run


def test_bundled_problems():
    ps = rs.problems()
    assert len(ps) == 60 and {k: sum(p.kind == k for p in ps) for k in rs.KINDS} == dict.fromkeys(rs.KINDS, 15)
    for p in ps:
        nums = [int(x) for x in re.findall(r"\d+", p.question)]
        expected = {"add1": sum(nums), "add2": sum(nums), "larger": max(nums)}.get(p.kind)
        if p.kind == "two_step":
            expected = nums[0] + nums[1] - nums[2]
        assert p.answer == expected, p
        if p.kind != "larger":  # a comparison has no equation to check
            assert all(s.verdict == "correct" for s in map(rs.check_step, p.steps))  # the worked steps check out


@pytest.mark.slow
def test_batched_left_padded_generation_equals_one_by_one():
    """Greedy continuations of prompts of different lengths, batched with left padding, equal generate() on each
    prompt alone (the tiny model's logits are not bent by the padding)."""
    from architectures import tiny

    model = tiny("llama-gqa")
    prompts = [chat_ids(model, [{"role": "user", "content": q}]) for q in ("Hi", "What is 23 + 48? Think.")]
    batched = generate(model, prompts, 6, batch_size=2)
    for p, text in zip(prompts, batched):
        with torch.no_grad():
            alone = model.model.generate(torch.tensor([p]), max_new_tokens=6, do_sample=False, pad_token_id=2)
        assert text == model.tokenizer.decode(alone[0, len(p) :], skip_special_tokens=True)


@pytest.mark.slow
def test_measurement_on_a_tiny_model(tmp_path):
    from architectures import tiny

    model = tiny("llama-gqa")
    trace = rs.evaluate(model, rs.problems()[:3], cot_tokens=8, samples=2, batch_size=4)
    assert trace.methods == list(rs.METHODS) and trace.predicted.shape == (3, 3)
    assert [len(c) for c in trace.completions["self_consistency"]] == [2, 2, 2]
    assert all(c[0].startswith("The answer is") for c in trace.completions["direct"])
    again = rs.ReasoningTrace.load(trace.save(tmp_path / "r.npz"))
    assert np.array_equal(again.correct, trace.correct) and again.completions == trace.completions
    same = rs.evaluate(model, rs.problems()[:3], cot_tokens=8, samples=2, batch_size=4)
    assert same.completions == trace.completions  # seeded: reproducible


@pytest.mark.slow
def test_tree_search_on_a_tiny_model():
    from architectures import tiny

    tree = rs.search(tiny("llama-gqa"), rs.problem(2), proposals=2, beam=1, depth=2, step_tokens=6)
    assert tree.nodes[0]["verdict"] == "question" and len(tree.nodes) <= 1 + 2 + 2
    assert tree.path()[0]["id"] == 0 and all(n["depth"] <= 2 for n in tree.nodes)
    kept = [n for n in tree.nodes[1:] if n["kept"]]
    assert all(n["verdict"] != "wrong" for n in kept)  # the checker prunes wrong steps


def test_tree_scores():
    from toolkit.reasoning.tree import score_step

    assert score_step("16 + 8 = 24", {16.0, 8.0, 6.0})[:2] == (1.5, "correct")
    assert score_step("16 + 9 = 25", {16.0, 8.0, 6.0})[:2] == (1.0, "correct")  # right but not grounded
    assert score_step("16 + 8 = 23", {16.0, 8.0})[:2] == (-1.0, "wrong")
    assert score_step("Let's add them.", {16.0})[:2] == (0.0, "unchecked")


@pytest.fixture(scope="module")
def recorded():
    return rs.ReasoningTrace.load(MEASUREMENT)


def test_recorded_measurement(recorded):
    assert recorded.n >= 50 and recorded.methods == list(rs.METHODS)
    assert recorded.config["samples"] >= 3 and recorded.meta["model"] == "smollm2-135m"
    assert rs.TreeTrace.load(TREE).nodes


@pytest.mark.slow
def test_the_recorded_direct_answers_reproduce(recorded, smol):
    """The first batch of direct answers, run again as the recording ran it, gives the same text."""
    batch = recorded.config["batch_size"]
    threads = torch.get_num_threads()
    torch.set_num_threads(recorded.meta["threads"])  # the recording's thread count: the same sums in the same order
    try:
        again = rs.evaluate(smol, rs.problems()[:batch], methods=("direct",), batch_size=batch)
    finally:
        torch.set_num_threads(threads)
    assert again.completions["direct"] == recorded.completions["direct"][:batch]


def _slide(title: str) -> str:
    from lecture.deck import deck_slides

    found = [s for s in deck_slides() if re.search(rf"^# .*{re.escape(title)}", s, re.M)]
    assert len(found) == 1, f"{len(found)} slides titled {title!r}"
    return re.sub(r"\s+", " ", found[0])


def test_slide_says_what_the_measurement_says(recorded):
    """Every accuracy and interval on the slide is the recorded one, and the verdict on chain of thought is the
    one the intervals support."""
    text = _slide("Chain of thought on a 135M model")
    for m in recorded.methods:
        acc, lo, hi, k, n = recorded.accuracy(m)
        assert f"{rs.METHOD_TITLES[m]} {round(100 * acc)} % [{round(100 * lo)}, {round(100 * hi)}]" in text, m
    direct, cot = recorded.accuracy("direct"), recorded.accuracy("cot")
    if cot[1] > direct[2]:
        verdict = "chain of thought helps"
    elif cot[2] < direct[1]:
        verdict = "chain of thought hurts"
    else:
        verdict = "no measurable gain"
    assert f"Verdict: **{verdict}**" in text
    d, c = round(100 * direct[0]), round(100 * cot[0])
    assert f"thinking step by step: **{verdict}** ({d} % → {c} % right)" in _slide("Emergent abilities")


def test_demo_handlers(recorded):
    from demos import reasoning as demo

    for view in demo.VIEW_NAMES:
        status, plot, html = demo.show(view, 2, 0)
        assert status and (plot.get("visible") or html.get("visible"))
    i, k = demo.disagreement()
    assert 0 <= i < recorded.n and 0 <= k < len(demo.chains(recorded, i))


def test_demo_bad_input():
    from demos import reasoning as demo
    from demos.ui import UserError

    for args in [("nope", 0, 0), ("problem", 60, 0), ("problem", -1, 0), ("supervision", 0, 99), ("tree", "x", 0)]:
        with pytest.raises(UserError):
            demo.show(*args)
    for view in demo.VIEW_NAMES:  # a chain out of range is refused in every view, as a problem out of range is
        with pytest.raises(UserError, match=r"Chain 99 does not exist: problem 59 has chains 0 to \d+\."):
            demo.show(view, 59, 99)
    with pytest.raises(UserError):
        demo.search_live(1e9)


@pytest.mark.slow
def test_demo_through_live_server(live_server):
    client = live_server.client("reasoning")
    status, plot, html = client.predict("accuracy", 0, 0, api_name="/show")
    assert "chain of thought" in status and plot["visible"]


def test_tree_slide_counts_the_search():
    tree = rs.TreeTrace.load(TREE)
    depth = max(n["depth"] for n in tree.nodes)
    assert f"{len(tree.nodes) - 1} proposals for {depth} steps" in _slide("Tree of thought")
