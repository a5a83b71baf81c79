"""A lecture hall that cannot be knocked over (issue #15): one regression test per finding of the hostile-student
review, on the real server where it matters.

Lanes and budgets (finding 1), bounded memory (2), transport limits (3, 4), messages for odd input (8), escaped
presets (9), the Host allow-list and classroom mode (10). The model cache (6, 7) is tested in test_models.py and
live GRPO ownership (5) in test_grpo.py.
"""

from __future__ import annotations

import contextlib
import gc
import json
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

from demos import cache, lanes, ui
from lecture import guard
from toolkit import models, turns
from toolkit.config import BudgetError, check_budget

# ---- finding 1: lanes -- cheap work never waits behind model work; training one at a time ------------------------


def test_cheap_handlers_never_wait_behind_model_work():
    release, started = threading.Event(), threading.Barrier(ui.WORKERS + 1)

    @ui.safe
    def slow_forward():
        started.wait(timeout=10)
        release.wait(timeout=30)
        return "done"

    @ui.safe(lane="cheap")
    def arithmetic():
        return 2 + 2

    threads = [threading.Thread(target=slow_forward) for _ in range(ui.WORKERS)]
    for t in threads:
        t.start()
    try:
        started.wait(timeout=10)  # every model slot is now held
        assert arithmetic() == 4  # answered while both slots are busy
    finally:
        release.set()
        for t in threads:
            t.join(timeout=30)


def until(condition, seconds: float = 10.0) -> None:
    """Poll until ``condition()`` holds or ``seconds`` pass; the assertions after it say what must hold."""
    end = time.monotonic() + seconds
    while not condition() and time.monotonic() < end:
        time.sleep(0.01)


@pytest.fixture(autouse=True)
def fresh_usage(monkeypatch):
    """Each test starts with no session's slot time on record (requests without a session share one name)."""
    monkeypatch.setattr(ui._gate, "usage", {})


class Session:
    """What a handler gets as ``request``: a browser session."""

    query_params: dict = {}

    def __init__(self, name: str):
        self.session_hash = name


def heavy_steps(release: threading.Event, started: threading.Barrier | None = None, steps: list | None = None):
    """Heavy work in steps, taking a turn after each (as generation does), until released."""

    @ui.safe(lane="heavy")
    def generate(request=None):
        if started is not None:
            started.wait(timeout=10)
        while not release.is_set():
            time.sleep(0.01)  # one step of work
            if steps is not None:
                steps.append(request.session_hash)
            turns.turn()
        return "slow"

    return generate


def test_heavy_work_lends_its_slot_to_a_quick_forward_between_steps():
    """Every model slot held by heavy work (students' own questions): a quick forward of another demo still gets a
    slot at the next turn, the heavy work then carries on, and every slot is given back."""
    release, started = threading.Event(), threading.Barrier(ui.WORKERS + 1)
    generate, results = heavy_steps(release, started), []

    @ui.safe
    def forward():
        return "quick"

    threads = [
        threading.Thread(target=lambda i=i: results.append(generate(request=Session(f"student-{i}"))))
        for i in range(ui.WORKERS)
    ]
    for t in threads:
        t.start()
    try:
        started.wait(timeout=10)  # every slot is held by heavy work
        t0 = time.monotonic()
        assert forward() == "quick"
        assert time.monotonic() - t0 < 5
    finally:
        release.set()
        for t in threads:
            t.join(timeout=30)
    assert results == ["slow"] * ui.WORKERS
    assert ui._gate.free == ui.WORKERS and not ui._gate.waiting


def test_a_session_flooding_the_heavy_lane_waits_behind_a_light_one(monkeypatch):
    """A session that asked for much heavy work lately (someone looping on the most expensive settings) holds at
    most WORKERS - 1 slots, and lends its slot at the next turn to a student's heavy request, then resumes; its next
    request waits, and past BUSY_AFTER_S is told "busy". The student's request is served meanwhile."""
    monkeypatch.setattr(ui, "BUSY_AFTER_S", 0.5)
    monkeypatch.setitem(ui._gate.usage, "flood", (10 * lanes.LIGHT_S, time.monotonic()))
    release, steps = threading.Event(), []
    flood = heavy_steps(release, steps=steps)
    threads = [threading.Thread(target=flood, kwargs={"request": Session("flood")}) for _ in range(ui.WORKERS - 1)]
    for t in threads:
        t.start()
    try:
        until(lambda: "flood" in steps)
        assert ui._gate.heavy_running == ui.WORKERS - 1  # its share is held
        with pytest.raises(ui.UserError, match="busy"):
            flood(request=Session("flood"))  # one more of its requests waits for that share, then is told
        # From here the flood's paused request must outwait the students' work, however slow the machine (with
        # 0.5 s, CI's busy 2 cores told the paused flood "busy" before the second student was done).
        monkeypatch.setattr(ui, "BUSY_AFTER_S", 30.0)

        @ui.safe
        def forward():
            return "quick"

        blocker = threading.Event()
        held = heavy_steps(blocker)  # a second student holds the slot left to quick work
        other = threading.Thread(target=held, kwargs={"request": Session("student-2")})
        if ui.WORKERS > 1:
            other.start()
            until(lambda: "student-2" in {h.session for h in ui._gate.holders})  # the flood steps aside meanwhile
        once = threading.Event()
        once.set()
        assert heavy_steps(once)(request=Session("student-1")) == "slow"  # served: the flood lent its slot
        blocker.set()
        if ui.WORKERS > 1:
            other.join(timeout=30)
        assert forward() == "quick"
        n = len(steps)
        until(lambda: len(steps) > n)
        assert len(steps) > n  # the flood resumed where it stopped
    finally:
        release.set()
        for t in threads:
            t.join(timeout=30)
    assert (
        ui._gate.free == ui.WORKERS and not ui._gate.waiting and ui._gate.heavy_running == ui._gate.heavy_under_way == 0
    )


def test_requests_past_light_run_one_at_a_time(monkeypatch):
    """A light request that runs past LIGHT_S is a rank-2 request from then on (a client that takes a new session
    for every request is no lighter), and rank-2 requests run one at a time: the second pauses at its next turn
    until the first is done, while a student's request takes the free slot."""
    monkeypatch.setattr(lanes, "LIGHT_S", 0.05)
    gate = lanes.Gate(2, heavy=1)
    first, second = gate.enter("heavy", "new-1", 1), gate.enter("heavy", "new-2", 1)
    time.sleep(0.1)
    gate.turn(first, 1)  # past LIGHT_S: rank 2, and the only one running
    assert first.holding and first.counted and gate.heavy_running == 1
    done = []
    paused = threading.Thread(target=lambda: done.append(gate.turn(second, 5)))
    paused.start()
    until(lambda: second in gate.waiting)
    assert not second.holding and gate.free == 1  # paused, though a slot is free
    student = gate.enter("heavy", "student", 1)  # a light request takes that slot at once
    gate.leave(student)
    assert not done
    gate.leave(first)
    paused.join(timeout=5)
    assert done and second.holding and second.counted  # resumed when the first was done
    gate.leave(second)
    assert gate.free == 2 and gate.heavy_running == gate.heavy_under_way == 0 and not gate.waiting


def test_a_rank_2_request_s_pauses_count_as_time_under_way(monkeypatch):
    """A request that came in rank 2 is ranked by its time under way, pauses included: counted by the time it held
    a slot, a client looping over the maxima was paused so often for students that it turned light again, and then
    went before them (the load probe: the hostile clients' requests ranked with the students', 9 s waits)."""
    monkeypatch.setattr(lanes, "LIGHT_S", 0.3)
    gate = lanes.Gate(1, heavy=1)
    gate.usage["flood"] = (0.35, time.monotonic())  # it has been looping
    flood = gate.enter("heavy", "flood", 1)
    assert flood.counted and not flood.light  # came in rank 2

    def forward():
        t = gate.enter("model", "student", 5)
        time.sleep(0.4)  # the student holds the slot while the flood is paused
        gate.leave(t)

    student = threading.Thread(target=forward)
    student.start()
    until(lambda: gate.waiting)
    gate.turn(flood, 5)  # pauses for the student's forward, then resumes
    student.join(timeout=5)
    assert flood.holding
    gate.leave(flood)
    assert gate.used("flood", time.monotonic()) > 0.7  # 0.35 before, and 0.4 paused
    assert gate.used("student", time.monotonic()) < 1.0
    assert gate.free == 1 and gate.heavy_running == gate.heavy_under_way == 0


def test_a_question_that_came_in_light_counts_its_work_not_its_pauses(monkeypatch):
    """A question that came in light counts the time it held its slot: not the pauses at its turns, also after it
    turned rank 2 partway. Counted by the wall clock, a student's question slowed by a busy moment turned rank 2 and
    waited for the others' light work, that wait was charged too, and the same student's next questions turned rank
    2 ever sooner (the load probe: one student's 12.7, 18.9, 23.7 s)."""
    monkeypatch.setattr(lanes, "LIGHT_S", 0.3)
    gate = lanes.Gate(1, heavy=1)
    question = gate.enter("heavy", "student", 1)
    assert question.light and not question.counted  # came in light

    def forward():
        t = gate.enter("model", "other", 5)
        time.sleep(0.5)  # another student's forward holds the slot while the question is paused
        gate.leave(t)

    other = threading.Thread(target=forward)
    other.start()
    until(lambda: gate.waiting)
    gate.turn(question, 5)  # lends its slot for 0.5 s
    other.join(timeout=5)
    gate.turn(question, 5)
    assert question.holding and question.light and not question.counted  # paused 0.5 s: still light
    time.sleep(0.35)  # its own work: past LIGHT_S
    gate.turn(question, 5)
    assert not question.light and question.counted  # rank 2 from now on
    gate.leave(question)
    assert 0.35 <= gate.used("student", time.monotonic()) < 0.5  # its work, not the 0.5 s it lent its slot
    assert gate.free == 1 and gate.heavy_running == gate.heavy_under_way == 0


def test_a_rank_2_request_s_wait_counts_a_student_s_does_not(monkeypatch):
    """A client looping over the maxima waits long for a slot (it steps aside for students); counted from getting its
    slot, its session decayed while it waited and its next request came in light. A rank-2 request's wait counts,
    also one that ends "busy"; a student's wait in a busy moment does not (it would turn them rank 2)."""
    monkeypatch.setattr(lanes, "LIGHT_S", 0.25)
    gate = lanes.Gate(1, heavy=1)
    gate.usage.update({"flood": (0.3, time.monotonic()), "flood-2": (0.3, time.monotonic())})
    for session in ("flood", "student"):
        holder = gate.enter("model", "holder", 1)
        threading.Timer(0.3, gate.leave, args=(holder,)).start()
        before = gate.used(session, time.monotonic())
        t = gate.enter("heavy", session, 5)  # waits 0.3 s
        gate.leave(t)
        charged = gate.used(session, time.monotonic()) - before
        assert charged >= 0.25 if session == "flood" else charged < 0.05
    holder = gate.enter("model", "holder", 1)
    with pytest.raises(lanes.Busy):
        gate.enter("heavy", "flood-2", 0.2)
    assert gate.used("flood-2", time.monotonic()) >= 0.4
    gate.leave(holder)
    assert gate.free == 1 and not gate.waiting


def test_a_paused_rank_2_request_keeps_the_next_one_from_starting(monkeypatch):
    """A rank-2 heavy request paused for students keeps its memory (its cache, a training step's activations), so
    another rank-2 heavy request does not start meanwhile, though slots are free: the largest transients stay one
    at a time (GRPO at its maxima, paused, beside someone's speculative decoding at its maxima: 5.2 GB)."""
    gate = lanes.Gate(2, heavy=1)
    now = time.monotonic()
    gate.usage.update({"flood-1": (10 * lanes.LIGHT_S, now), "flood-2": (10 * lanes.LIGHT_S, now)})
    first = gate.enter("heavy", "flood-1", 1)
    assert first.counted and gate.heavy_under_way == 1
    student = gate.enter("heavy", "student-1", 1)
    release = threading.Event()

    def second_student():
        t = gate.enter("heavy", "student-2", 5)
        release.wait(timeout=10)
        gate.leave(t)

    waiting = threading.Thread(target=second_student)
    waiting.start()
    until(lambda: gate.waiting)
    pausing = threading.Thread(target=gate.turn, args=(first, 5))
    pausing.start()  # the flood lends its slot to the second student and waits, paused
    until(lambda: first in gate.waiting and gate.free == 0)  # paused, and the second student in its slot
    assert gate.free == 0 and gate.heavy_running == 0 and gate.heavy_under_way == 1
    new = lanes.Ticket("heavy", "flood-2", next(gate.count), rank=lanes.HEAVY)
    assert not gate._eligible(new)  # no rank-2 heavy request runs, but one is under way, paused
    started = []
    second = threading.Thread(target=lambda: started.append(gate.enter("heavy", "flood-2", 5)))
    second.start()
    gate.leave(student)
    time.sleep(0.1)
    assert not first.holding and gate.free == 1  # a student's request still runs: the flood stays aside
    release.set()
    waiting.join(timeout=5)
    pausing.join(timeout=5)  # the first resumed once no light request held a slot
    assert first.holding and first.counted
    time.sleep(0.1)
    assert not started and gate.free == 1  # the second waits, though a slot is free
    gate.leave(first)
    second.join(timeout=5)
    assert started and started[0].counted and gate.heavy_under_way == 1
    gate.leave(started[0])
    assert gate.free == 2 and gate.heavy_running == gate.heavy_under_way == 0 and not gate.waiting


def test_rank_2_work_steps_aside_while_a_student_s_question_runs():
    """Someone's maxima on the other core made a student's question compute 3.4 s instead of 2.2 s (decoding is
    bound by memory bandwidth; the Python between its operations by the GIL): a rank-2 request pauses at its next
    turn while a light request holds a slot, though no one waits for its own, and no rank-2 request starts."""
    gate = lanes.Gate(2, heavy=1)
    now = time.monotonic()
    gate.usage.update({"flood": (10 * lanes.LIGHT_S, now), "flood-2": (10 * lanes.LIGHT_S, now)})
    flood = gate.enter("model", "flood", 1)
    gate.turn(flood, 1)  # no light request: it carries on
    assert flood.holding
    student = gate.enter("heavy", "student", 1)  # the free slot, at once
    pausing = threading.Thread(target=gate.turn, args=(flood, 5))
    pausing.start()
    until(lambda: flood in gate.waiting)
    assert not flood.holding and gate.free == 1  # aside, though a slot is free
    new = lanes.Ticket("model", "flood-2", next(gate.count), rank=lanes.HEAVY, since=time.monotonic())
    assert not gate._eligible(new)  # nor does another rank-2 request start
    quick = gate.enter("model", "student-2", 1)  # a light one does
    gate.leave(quick)
    gate.leave(student)
    pausing.join(timeout=5)
    assert flood.holding  # back once no light request holds a slot
    gate.leave(flood)
    assert gate.free == 2 and not gate.holders and not gate.waiting


def test_a_rank_2_request_that_waited_long_goes_ahead_for_a_while(monkeypatch):
    """A lecturer's live run (rank 2 after LIGHT_S) in a busy class is slowed, not stopped: after waiting AGE_S it
    goes ahead beside the students' questions, and does not step aside again for RUN_S."""
    monkeypatch.setattr(lanes, "AGE_S", 0.3)
    monkeypatch.setattr(lanes, "RUN_S", 0.4)
    gate = lanes.Gate(2, heavy=1)
    gate.usage["lecturer"] = (10 * lanes.LIGHT_S, time.monotonic())
    run = gate.enter("heavy", "lecturer", 1)
    student = gate.enter("heavy", "student", 1)
    t0 = time.monotonic()
    gate.turn(run, 5)  # steps aside, then goes ahead when due, no one waking it
    assert run.holding and time.monotonic() - t0 >= 0.3 and student.holding
    gate.turn(run, 5)  # within RUN_S: no pause
    assert time.monotonic() - t0 < 0.6
    time.sleep(0.45)
    t1 = time.monotonic()
    gate.turn(run, 5)  # past RUN_S: aside again, for AGE_S
    assert time.monotonic() - t1 >= 0.3
    gate.leave(student)
    gate.leave(run)
    assert gate.free == 2 and gate.heavy_running == gate.heavy_under_way == 0


def test_time_in_cheap_handlers_ranks_the_session_too(monkeypatch):
    """A client looping over every request at its maxima spent much of its time in cheap handlers (no slot), so
    its session stayed light and its model work ran beside the students' at their rank: cheap time counts, once
    for a cheap handler calling another."""
    monkeypatch.setattr(lanes, "LIGHT_S", 0.15)

    @ui.safe(lane="cheap")
    def inner(request=None):
        time.sleep(0.1)

    @ui.safe(lane="cheap")
    def maths(request=None):
        time.sleep(0.1)
        inner()

    maths(request=Session("flood"))
    used = ui._gate.used("flood", time.monotonic())
    assert 0.2 <= used < 0.3  # the outer call's time, not the inner's again
    frees = []

    @ui.safe
    def forward(request=None):
        frees.append(ui._gate.free)
        time.sleep(0.2)

    @ui.safe(lane="cheap")
    def calls_the_model(request=None):
        time.sleep(0.1)
        forward()

    calls_the_model(request=Session("mixed"))
    assert frees == [ui.WORKERS - 1]  # model work a cheap handler calls takes a slot
    assert 0.3 <= ui._gate.used("mixed", time.monotonic()) < 0.45  # its slot time is not charged twice
    maths()  # no session: no one is charged
    assert "" not in ui._gate.usage
    ticket = ui._gate.enter("model", "flood", 1)
    assert ticket.rank == lanes.HEAVY
    ui._gate.leave(ticket)
    assert ui._gate.used("student", time.monotonic()) == 0


def test_a_flooding_session_s_quick_forwards_wait_behind_students():
    """Slot time counts in every lane: a session that held slots for long lately is rank 2 for its quick forwards
    too, so they neither go before a student's heavy request nor make it pause; a light session's quick forward
    does."""
    gate = lanes.Gate(1, heavy=1)
    gate.usage["flood"] = (10 * lanes.LIGHT_S, time.monotonic())
    student = gate.enter("heavy", "student", 1)
    got = []

    def forward(session):
        t = gate.enter("model", session, 5)
        got.append(session)
        gate.leave(t)

    flood = threading.Thread(target=forward, args=("flood",))
    flood.start()
    until(lambda: gate.waiting)
    gate.turn(student, 1)
    assert student.holding and not got  # no pause for the flood's forward
    light = threading.Thread(target=forward, args=("another student",))
    light.start()
    until(lambda: len(gate.waiting) >= 2)
    gate.turn(student, 5)  # pauses for the light forward, which ranks first, then gets the slot back
    assert student.holding and got == ["another student"]
    gate.leave(student)
    flood.join(timeout=5)
    light.join(timeout=5)
    assert got == ["another student", "flood"] and gate.free == 1 and not gate.waiting


def test_long_forwards_take_turns_between_layers_and_timed_steps_take_none(smol):
    """toolkit.turns: a turn before each decoder layer (a long prefill can pause), none inside ``held()`` (a step
    timed on its own); the hooks change no output and do nothing where no one takes turns."""
    ids = torch.tensor([smol.tokenizer("The animal didn't cross the street because it was too tired").input_ids])
    with torch.no_grad():
        plain = smol.model(ids).logits
    turns.between_layers(smol.model)
    turns.between_layers(smol.model)  # once per model
    taken = []
    with torch.no_grad(), turns.taking(lambda: taken.append(1)):
        hooked = smol.model(ids).logits
        assert len(taken) == smol.model.config.num_hidden_layers
        with turns.held():
            smol.model(ids)
        assert len(taken) == smol.model.config.num_hidden_layers
    assert torch.equal(plain, hooked)
    with torch.no_grad():
        assert torch.equal(smol.model(ids).logits, plain)  # no one taking turns: nothing happens


def test_the_lanes_not_gradio_decide_what_runs(live_server):
    """Every demo lets PER_DEMO of its requests into its handlers at once, more than the model slots: with Gradio's
    limit at WORKERS, two slow requests of one demo (someone's RAG at its maxima, twice) held back its cheap
    requests and the next student's question, whatever the lanes' ranks said."""
    app = live_server.server.config.app
    assert ui.PER_DEMO > ui.WORKERS
    for name, info in app.state.demos.items():
        assert info.blocks._queue.default_concurrency_limit == ui.PER_DEMO, name


def test_idle_queues_do_not_poll_every_millisecond(live_server):
    """Gradio's queue looked for work every 1 ms (and for progress every 10 ms) per demo: thousands of wake-ups a
    second, each taking the GIL from the forward under way. The server sets both slower, on every demo, and Gradio's
    loops still read those two settings (a rename in a new Gradio would leave ours unused)."""
    import inspect

    from gradio import queueing

    app = live_server.server.config.app
    for name, info in app.state.demos.items():
        q = info.blocks._queue
        assert (q.sleep_when_free, q.progress_update_sleep_when_free) == (0.02, 0.5), name
    assert "self.sleep_when_free" in inspect.getsource(queueing.Queue.start_processing)
    assert "self.progress_update_sleep_when_free" in inspect.getsource(queueing.Queue.start_progress_updates)


def test_a_handler_not_given_the_request_still_knows_its_page(monkeypatch):
    """Gradio gives the request only to a positional parameter: page handlers written ``f(*args, request=None)``
    (RAG, speculative decoding, attention, vector search...) were called without it, so a dark page got light
    figures and every such request shared one unranked session. The request Gradio is serving in the thread is
    used instead."""
    from gradio.context import LocalContext

    class Dark(Session):
        query_params = {"__theme": "dark"}

    seen = []

    @ui.safe(lane="heavy")
    def inner(x, request=None):
        seen.append((ui.is_dark(request), ui._held.session))
        return x

    def page(*args, request=None):  # as Gradio calls it: no request
        return inner(*args, request=request)

    token = LocalContext.request.set(Dark("student-7"))
    try:
        assert page(1) == 1
    finally:
        LocalContext.request.reset(token)
    assert seen == [(True, "student-7")]
    assert ui.current_request() is None and not ui.is_dark(None)  # outside a page: nothing


def test_a_pause_at_a_turn_is_left_out_of_the_timings_shown(smol):
    """Speculative decoding and plain greedy decoding show their seconds: a pause for another request is not
    counted in them (toolkit.turns counts it per thread)."""
    from toolkit.speculative import decode

    ids = smol.tokenizer("The capital of France is").input_ids
    t0 = time.perf_counter()
    with turns.taking(lambda: time.sleep(0.2)):
        run = decode.greedy(smol.model, ids, 5)
    wall = time.perf_counter() - t0
    assert len(run.new) == 5 and turns.paused() >= 1.0
    assert run.seconds < wall - 0.9
    assert run.new == decode.greedy(smol.model, ids, 5).new  # pausing changes nothing computed


def test_a_repeated_question_is_answered_without_waiting_for_the_model_lane():
    """ui.answers: the second identical request (a class opening the same slide) is served from memory while every
    model slot is held; another theme, other inputs, a session's state and a failed request are not looked up."""
    release, started = threading.Event(), threading.Barrier(ui.WORKERS + 1)
    calls = []

    @ui.answers
    @ui.safe
    def forward(text, layer, request=None):
        calls.append((text, layer))
        if text == "bad":
            raise ui.UserError("bad text")
        return {"value": f"{text}/{layer}", "visible": True}, [layer]

    @ui.safe
    def slow_forward():
        started.wait(timeout=10)
        release.wait(timeout=30)

    first = forward("The animal", 3)
    first[0].pop("value")  # Gradio pops an update's value while sending it: the kept answer must not change
    threads = [threading.Thread(target=slow_forward) for _ in range(ui.WORKERS)]
    for t in threads:
        t.start()
    try:
        started.wait(timeout=10)  # every model slot is now held
        assert forward("The animal", 3) == ({"value": "The animal/3", "visible": True}, [3])
        assert len(calls) == 1  # from memory: no slot taken
    finally:
        release.set()
        for t in threads:
            t.join(timeout=30)

    class Dark:
        query_params = {"__theme": "dark"}

    forward("The animal", 3, request=Dark())  # another theme: its own answer
    forward("The animal", 4)
    forward({"a": 1}, 3)  # a session's State (a dict): computed every time
    forward({"a": 1}, 3)
    for _ in range(2):
        with pytest.raises(ui.UserError):
            forward("bad", 1)
    assert (
        calls
        == [("The animal", 3), ("The animal", 3), ("The animal", 4), ({"a": 1}, 3), ({"a": 1}, 3)] + [("bad", 1)] * 2
    )


def test_training_runs_one_at_a_time_and_a_second_is_told_at_once():
    inside, release = threading.Event(), threading.Event()

    @ui.safe(lane="train")
    def train():
        inside.set()
        release.wait(timeout=30)
        return "trained"

    first = threading.Thread(target=train)
    first.start()
    try:
        assert inside.wait(timeout=10)
        with pytest.raises(ui.UserError, match="Another training run"):
            train()

        @ui.safe
        def forward():
            return "ok"

        assert forward() == "ok"  # model work is not blocked by the training run
    finally:
        release.set()
        first.join(timeout=30)
    assert train() == "trained"  # the slot is free again


def holding(release: threading.Event):
    """A request that holds a model slot until released, taking no turn."""

    @ui.safe
    def hold(request=None):
        release.wait(timeout=30)

    return hold


def test_training_holds_a_model_slot_and_lends_it_to_a_student(monkeypatch):
    """Training-like work runs in a model slot ranked as heavy work, not beside the slots: someone's long LoRA run
    (a session past LIGHT_S) held a core of its own while the students' questions shared the rest. At a turn it steps
    aside while a student's request holds a slot (a student's forward then finds a slot at once), carries on when
    they end, and gives its slot back when it ends; its slot time ranks its session."""
    monkeypatch.setitem(ui._gate.usage, "trainer", (10 * lanes.LIGHT_S, time.monotonic()))
    release, steps = threading.Event(), []

    @ui.safe(lane="train")
    def train(request=None):
        while not release.is_set():
            time.sleep(0.01)  # one step
            steps.append(1)
            turns.turn()
        return "trained"

    @ui.safe
    def forward(request=None):
        return "quick"

    blocker = threading.Event()
    others = [
        threading.Thread(target=holding(blocker), kwargs={"request": Session(f"s{i}")}) for i in range(1, ui.WORKERS)
    ]
    run = threading.Thread(target=train, kwargs={"request": Session("trainer")})
    run.start()
    try:
        until(lambda: steps)
        assert ui._gate.free == ui.WORKERS - 1 and ui._gate.heavy_running == 1  # one slot, counted as heavy
        for t in others:  # the other slots held by students' questions
            t.start()
        # Both slots are held only until the run's next step (10 ms): waiting for that moment, a busy machine missed it
        # and waited 10 s, AGE_S, after which the run went ahead beside the students (CI: 21 steps, not 2).
        until(lambda: [w.session for w in ui._gate.waiting] == ["trainer"] and ui._gate.free == 1)
        assert {h.session for h in ui._gate.holders} == {f"s{i}" for i in range(1, ui.WORKERS)}
        t0 = time.monotonic()
        assert forward(request=Session("student")) == "quick"  # the run stepped aside at its next step
        assert time.monotonic() - t0 < 5
        n = len(steps)
        time.sleep(0.2)
        assert len(steps) == n  # aside while the students' questions hold the other slots
        blocker.set()
        until(lambda: len(steps) > n)
        assert len(steps) > n  # and carried on after them
    finally:
        release.set()
        blocker.set()
        for t in [run, *others]:
            t.join(timeout=30)
    assert (
        ui._gate.free == ui.WORKERS and not ui._gate.waiting and ui._gate.heavy_running == ui._gate.heavy_under_way == 0
    )
    assert ui._gate.used("trainer", time.monotonic()) > 9 * lanes.LIGHT_S


def test_a_long_model_lane_request_lends_its_slot_between_layers(smol, monkeypatch):
    """Quick forwards take turns too: a flooding session's 20,000-character attention request held a slot for 13 s
    while students' questions waited. Every loaded model has the between-layer turns (toolkit.models, and the
    twins that training builds), so any forward in a slot can pause for a request that ranks before it."""
    from toolkit.lora import twin

    assert models.load(models.default("causal")).model._turns_between_layers
    assert twin(smol.model, training=True)._turns_between_layers
    for name in ["flood", *(f"s{i}" for i in range(1, ui.WORKERS))]:  # the other slots: rank 2 too
        monkeypatch.setitem(ui._gate.usage, name, (10 * lanes.LIGHT_S, time.monotonic()))
    ids = torch.tensor([smol.tokenizer("The animal didn't cross the street because it was too tired").input_ids])
    waited, got, rounds = threading.Event(), [], []

    @ui.safe
    def forward(request=None):
        got.append(request.session_hash)
        if request.session_hash == "flood":
            with torch.no_grad():
                for _ in range(50):  # a long forward, many layers
                    smol.model(ids)
                    rounds.append(1)
                    if waited.is_set() and len(got) > 1:
                        break
        return request.session_hash

    blocker = threading.Event()
    others = [
        threading.Thread(target=holding(blocker), kwargs={"request": Session(f"s{i}")}) for i in range(1, ui.WORKERS)
    ]
    for t in others:
        t.start()
    until(lambda: ui._gate.free <= 1)
    flood = threading.Thread(target=forward, kwargs={"request": Session("flood")})
    flood.start()
    try:
        until(lambda: got)
        waited.set()
        assert forward(request=Session("student")) == "student"  # served inside the flood's forward
    finally:
        blocker.set()
        flood.join(timeout=60)
        for t in others:
            t.join(timeout=30)
    assert got == ["flood", "student"] and len(rounds) < 50  # not after the flood's whole request
    assert ui._gate.free == ui.WORKERS and not ui._gate.waiting


def test_a_live_run_takes_a_slot_for_each_step_in_its_own_thread(smol):
    """A live GRPO run trains in a thread of its own: ``around`` (the demo's ``ui.slot``) wraps each step there, so
    the run holds a model slot while it computes and takes turns in it; the slot is free between steps and after."""
    from toolkit.grpo import trainer

    entered, seen = [], []

    @contextlib.contextmanager
    def around():
        with ui.slot("live"):
            entered.append(threading.current_thread().name)
            seen.append(ui._gate.free)
            yield

    steps = [s for s in trainer.stream(preset_tiny(), threading.Event(), poll_s=0.1, around=around) if s]
    assert len(steps) == 2 and len(entered) == 2  # a slot for each step, none to find the end
    assert set(entered) == {"grpo-live"} and seen == [ui.WORKERS - 1] * 2
    assert ui._gate.free == ui.WORKERS and ui._gate.used("live", time.monotonic()) > 0


def test_a_request_alone_runs_on_every_core_and_on_its_share_beside_another(monkeypatch):
    """Few cores, many students: work holding the only slot in use runs on every core (ui.THREADS, which
    lecture.server sets), drops to its share at its next turn once another request holds a slot, takes every core
    again when that one leaves, and leaves its thread at its share. Threads are set per thread: this one's stay."""
    monkeypatch.setattr(ui, "THREADS", (1, 2))
    here = torch.get_num_threads()
    seen, after, release, blocker = [], [], threading.Event(), threading.Event()

    @ui.safe(lane="heavy")
    def generate(request=None):
        while not release.is_set():
            time.sleep(0.01)  # one step
            turns.turn()
            seen.append(torch.get_num_threads())
        return "done"

    def step_more() -> None:
        n = len(seen)
        until(lambda: len(seen) > n + 1)

    run = threading.Thread(target=lambda: after.append((generate(request=Session("s1")), torch.get_num_threads())))
    other = threading.Thread(target=holding(blocker), kwargs={"request": Session("s2")})
    run.start()
    try:
        until(lambda: seen)
        assert seen[-1] == 2  # alone: every core
        other.start()
        until(lambda: ui._gate.free == ui.WORKERS - 2)
        step_more()
        assert seen[-1] == 1  # beside another: its share
        blocker.set()
        other.join(timeout=10)
        step_more()
        assert seen[-1] == 2
    finally:
        release.set()
        blocker.set()
        for t in (run, other):
            t.join(timeout=30)
    assert after == [("done", 1)] and torch.get_num_threads() == here
    assert ui._gate.free == ui.WORKERS


def preset_tiny():
    from toolkit.grpo import config

    return config.preset("tiny", steps=2, max_new_tokens=3, num_generations=2)


def test_heavy_work_gives_freed_memory_back(monkeypatch):
    """After heavy or training work, or a model-lane request that held its slot TRIM_AFTER_S, the server hands freed
    heap pages back (glibc's malloc_trim, set by lecture.server); quick forwards skip it."""
    calls = []
    monkeypatch.setattr(ui, "trim", lambda: calls.append(1))
    for lane in ("model", "heavy", "train"):
        ui.safe(lambda: None, lane=lane)()
    assert calls == [1, 1]
    monkeypatch.setattr(ui, "TRIM_AFTER_S", 0.05)
    ui.safe(lambda: time.sleep(0.1))()
    assert calls == [1, 1, 1]


def test_budgets_are_sentences_with_the_fix():
    check_budget(100, 100, "tokens", "Shorten it.")
    with pytest.raises(BudgetError, match="needs 4,097 token-steps; the limit is 4,096. Shorten"):
        check_budget(4097, 4096, "token-steps", "Shorten the prompt.")

    @ui.safe
    def expensive():
        check_budget(10, 5, "tokens", "Shorten the text.")

    with pytest.raises(ui.UserError, match="the limit is 5"):
        expensive()


def test_kv_cache_request_at_its_limits_is_refused_by_its_budget(smol):
    """The finding's request (a ~6,000-character prompt, 64 steps: 128 s) is refused before any forward pass."""
    from demos import kv_cache
    from toolkit.kv_cache.capture import KvCacheConfig, work

    prompt = "The history of Rome. " * 285  # 5,985 characters
    with pytest.raises(ui.UserError, match="token forwards; the limit is 4,096. The prompt is 512 tokens"):
        kv_cache.run(prompt, 32)
    with pytest.raises(ui.UserError, match="tokens to generate"):  # the finding's 64 steps: out of range now
        kv_cache.run("Hello", 64)
    assert work(512, 64) > KvCacheConfig().budget >= work(100, 32)


def test_dpo_at_the_findings_limits_is_refused_by_its_budget(smol):
    """3 x ~1,000 characters and 10 steps took 63-73 s: refused at once; the default pair at 10 steps is fine."""
    from demos import dpo
    from toolkit.dpo.capture import DpoConfig

    prompt, chosen, rejected = "What happened to Rome? " * 20, "It fell slowly. " * 50, "I do not know. " * 50
    with pytest.raises(ui.UserError, match="token-steps; the limit is 2,500"):
        dpo.train(prompt, chosen, rejected, 0.1, 10)
    assert DpoConfig().budget == 2500


def test_live_grpo_at_its_maxima_is_refused_by_its_budget():
    """G = 16 and 64 new tokens (the sliders' maxima): +3.6 GB and 70 s a step. A step samples at most 128 tokens
    (the default 8 x 16: +0.6 GB); over that, the page, the stream and the API say so before anything starts."""
    from demos import grpo as demo
    from toolkit.grpo import GrpoConfig, trainer

    cfg = GrpoConfig(num_generations=16, max_new_tokens=64)
    with pytest.raises(BudgetError, match="1,024 sampled tokens a step; the limit is 128. Lower G"):
        next(trainer.stream(cfg, threading.Event()))
    with pytest.raises(BudgetError, match="1,024 sampled tokens"):
        next(trainer.run(cfg))
    with pytest.raises(ui.UserError, match="1,024 sampled tokens a step"):
        next(demo.live(16, 64, 5, 2e-3, 1, "group", "grpo", 0.2, 0.2, 0.04, 0))
    assert not trainer.is_busy()
    GrpoConfig(num_generations=16, max_new_tokens=8).check_budget()  # at the budget: fine


def test_the_attention_demo_serves_at_most_its_token_budget(smol):
    from demos import attention

    with pytest.raises(ui.UserError, match="at most 256 tokens"):
        attention.show("word " * 600, "smollm2-135m", 0, 0, "it", "head", max_tokens=512)
    notice, *_ = attention.show("word " * 600, "smollm2-135m", 0, 0, "it", "head", max_tokens=256)
    assert "only the first 256" in notice


# ---- finding 2: memory bounded by bytes ----------------------------------------------------------------------------


def test_byte_cache_never_holds_more_than_its_budget():
    store = cache.ByteCache(max_bytes=10_000)
    for i in range(50):
        store.put(i, np.zeros(500, dtype=np.float32))  # 2,000 bytes each
        assert store.bytes <= 10_000
    assert len(store) == 5 and store.get(49) is not None
    with pytest.raises(KeyError):
        store.get(0)  # the oldest went first
    store.put("huge", np.zeros(100_000, dtype=np.float32))  # larger than the budget: served, never kept
    with pytest.raises(KeyError):
        store.get("huge")


def test_a_flood_of_one_off_answers_does_not_push_out_the_one_the_class_asks_for():
    """Someone cycling through every setting at its maxima filled the kept answers with one-off answers, and the
    preset (asked by every student opening the slide) was computed again and again: its p50 went from 0.04 s to
    1.8 s. Full, the cache drops a one-off answer first; with none left, the least recently used."""
    store = cache.ByteCache(max_bytes=10_000)
    store.put("preset", np.zeros(500, dtype=np.float32))
    store.get("preset")  # a second student
    for i in range(50):
        store.put(i, np.zeros(500, dtype=np.float32))  # the flood: never asked again
        assert store.bytes <= 10_000
    assert store.get("preset") is not None and len(store) == 5
    for i in range(46, 50):
        store.get(i)  # every entry asked again: the least recently used goes
    store.put("new", np.zeros(500, dtype=np.float32))
    with pytest.raises(KeyError):
        store.get("preset")


def test_the_caches_held_bytes_are_summed_over_every_cache():
    gc.collect()  # caches of earlier tests that are garbage go now, not between the two sums
    kept, budget = cache.held()
    store = cache.ByteCache(10_000)
    store.put("a", np.zeros(1000, dtype=np.float32))
    assert cache.held() == (kept + 4000, budget + 10_000)
    store.clear()
    assert cache.held()[0] == kept


def test_kept_answers_are_sized_without_copying_and_huge_ones_are_not_kept():
    import plotly.graph_objects as go

    fig = go.Figure(go.Heatmap(z=np.zeros((256, 256))))  # 512 KiB of float64
    size = cache.answer_size(({"value": fig, "visible": True}, "12 tokens"))
    assert 512 * 1024 < size < 600 * 1024
    assert cache.answer_size(np.zeros(cache.ANSWER_BYTES // 8 + 1)) is None  # larger than the whole budget


def test_attention_traces_are_cached_by_bytes(smol):
    from demos import attention

    cached = attention.cached_capture
    assert isinstance(cached.cache, cache.ByteCache)
    for i in range(6):
        attention.show(f"sentence number {i} " * 30, "smollm2-135m", 0, 0, "it", "head", max_tokens=256)
        assert cached.cache.bytes <= cached.cache.max_bytes


def test_rope_maths_answers_are_kept_by_bytes():
    from demos import rope

    rope._maths.cache.clear()
    for d in (64, 128, 256, 512, 1024):  # the figures grow with d: 32 answers at d = 256 held 0.6 GB
        rope.explore(10_000, d, 4096, 1, "default", 8, 8192)
        assert 0 < rope._maths.cache.bytes <= rope.MATHS_CACHE_BYTES
    first = rope.explore(10_000, 1024, 4096, 1, "default", 8, 8192)
    assert rope.explore(10_000, 1024, 4096, 1, "default", 8, 8192)[1] is first[1]  # the same question: kept


def test_derived_models_kept_loaded_are_bounded_by_their_own_bytes(smol):
    from toolkit import lora

    def variant(scale):  # a twin (the shared weights) with one new tensor of its own: the final norm's weight
        def transform(base):
            model = lora.twin(base.model)
            model.model.norm.weight = torch.nn.Parameter(base.model.model.norm.weight.detach() * scale)
            return model

        return transform

    names = [models.derive(f"smollm2-135m-test-{i}", "smollm2-135m", variant(1 + i)) for i in range(3)]
    own = 576 * 4  # bytes of one norm weight
    try:
        models.limit_derived(2 * own)
        a = models.load(names[0])
        assert models.own_bytes(a.model, smol.model) == own
        models.load(names[1])
        assert set(names[:2]) <= set(models.loaded_names())
        models.load(names[0])  # used again: now names[1] is the least recently used
        models.load(names[2])
        loaded = models.loaded_names()
        assert names[0] in loaded and names[2] in loaded and names[1] not in loaded
        assert "smollm2-135m" in loaded  # a base is never dropped
        again = models.load(names[1])  # built again on demand, with its own weights
        assert torch.equal(again.model.model.norm.weight, smol.model.model.norm.weight * 2)
    finally:
        models.limit_derived(None)
        for name in names:
            models._loaded.pop(name, None)
            models._derived.pop(name, None)
            models._derived_bytes.pop(name, None)


# ---- findings 3, 4, 10: transport ---------------------------------------------------------------------------------


def _request(url: str, data: bytes | None = None, host: str | None = None, headers: dict | None = None):
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    if host:
        req.add_header("Host", host)
    try:
        with urllib.request.urlopen(req, timeout=30) as reply:
            return reply.status, reply.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace")


def test_request_bodies_have_a_size_limit(live_server):
    big = b"x" * (guard.MAX_BODY_BYTES + 1)
    status, body = _request(
        f"{live_server.url}/demo/rope/gradio_api/queue/join", big, headers={"Content-Type": "application/json"}
    )
    assert status == 413 and "over" in body
    status, _ = _request(
        f"{live_server.url}/demo/rope/gradio_api/queue/join", b"{}", headers={"Content-Type": "application/json"}
    )
    assert status != 413  # a small body reaches Gradio (which refuses it for its own reasons)


def test_direct_api_routes_are_closed(live_server):
    payload = json.dumps({"data": [10000, 64, 10, 8, "default", 4, 8192]}).encode()
    status, body = _request(
        f"{live_server.url}/demo/rope/gradio_api/api/rope", payload, headers={"Content-Type": "application/json"}
    )
    assert status == 404 and "queue" in body
    facts, _ = live_server.client("model_card").predict("smollm2-135m", api_name="/show")  # the queue still works
    assert "30" in facts


def test_uploads_are_refused(live_server):
    status, body = _request(
        f"{live_server.url}/demo/model_card/gradio_api/upload",
        b"--boundary\r\n",
        headers={"Content-Type": "multipart/form-data; boundary=boundary"},
    )
    assert status == 403 and "uploads are disabled" in body


def test_only_this_servers_host_names_are_answered(live_server):
    status, body = _request(f"{live_server.url}/healthz")
    health = json.loads(body)
    assert status == 200 and health["ok"] and 0 <= health["cache_bytes"] <= health["cache_budget_bytes"]
    assert health["cache_budget_bytes"] >= cache.ANSWER_BYTES  # the kept answers' cache at least
    for host in ("evil.example", "evil.example:7860", "10.0.0.9", "attacker.127.0.0.1.nip.io"):
        status, body = _request(f"{live_server.url}/healthz", host=host)
        assert status == 421 and "does not answer" in body, host


def test_binding_another_address_warns_and_classroom_refuses_any_model(capsys, monkeypatch):
    from lecture import cli, server

    assert guard.is_loopback("127.0.0.1") and guard.is_loopback("::1") and not guard.is_loopback("0.0.0.0")
    monkeypatch.setattr(server, "build_app", lambda *a, **k: (_ for _ in ()).throw(SystemExit("stop")))
    monkeypatch.setattr(server, "use_onednn", lambda: None)  # the rest of the suite keeps torch's own kernels
    with pytest.raises(SystemExit):
        server.serve("0.0.0.0", 7999)
    assert "WARNING: binding 0.0.0.0" in capsys.readouterr().out
    assert cli.main(["serve", "--classroom", "--any-model", "--no-preload"]) == 2
    assert "refuses --any-model" in capsys.readouterr().err


def test_classroom_index_shows_the_students_url_and_a_qr_code():
    from lecture import server

    page = server.index_html({}, "http://192.0.2.7:7860/")
    assert "http://192.0.2.7:7860/" in page and "<svg" in page
    assert "█" in guard.qr_terminal("http://192.0.2.7:7860/")


# ---- findings 8, 9: every message clear, every preset escaped --------------------------------------------------------


BAD_NAMES = [
    None,
    0,
    1.5,
    -1,
    True,
    False,
    [],
    [1],
    {},
    {"a": 1},
    ("x",),
    b"bytes",
    float("nan"),
    "x" * 10_000,
    "a\x00b",
    "\n\t",
    "../../../etc",
    "<img src=x onerror=alert(1)>",
]


@pytest.mark.parametrize("name", BAD_NAMES, ids=[repr(n)[:20] for n in BAD_NAMES])
def test_model_card_any_model_name_is_a_message(name):
    from demos import model_card

    try:
        facts, _ = model_card.show(name)
    except ui.UserError as err:
        assert not err.message.startswith("Something went wrong") and "<img" not in err.message
    else:
        assert facts


@pytest.mark.parametrize("name", [1.5, -1, True, [1], {"a": 1}, ("x",), float("nan")], ids=repr)
def test_every_model_box_refuses_a_name_that_is_not_text(name):
    """The same API call to the other demos with a model box (attention, FlashAttention, RoPE, RAG): their
    ``(model_name or "").strip()`` raised AttributeError ("Something went wrong"); ``ui.model_name`` says what to
    send."""
    from demos import attention

    with pytest.raises(ui.UserError, match="named by text"):
        ui.model_name(name)
    with pytest.raises(ui.UserError) as err:
        attention.show("The animal", name, 3, 0, "it", "lines")
    assert err.value.message.startswith("The model is named by text")
    assert ui.model_name("  ") == models.default("causal") and ui.model_name(None, "encoder") == models.default(
        "encoder"
    )


def test_user_error_messages_are_text_not_markup():
    err = ui.UserError("could not load '<img src=x onerror=alert(1)>'")
    assert "<img" not in err.message and "&lt;img" in err.message  # what Gradio sends the page
    assert ui.UserError(str(err)).message == err.message  # re-wrapped by a handler: escaped once, not twice


def test_attention_presets_cannot_inject_markup(smol):
    """?query=, ?keys= and ?heads= reach the notes and the figure titles as text, never as markup."""
    from demos import attention

    notice, main, _, _ = attention.show(
        "The animal didn't cross the street because it was too tired",
        "smollm2-135m",
        3,
        0,
        "<img src=x onerror=alert(1)>",
        "summary",
        keys="<a href=http://x>click</a>, animal",
    )
    assert "<img" not in notice and "&lt;img" in notice
    assert "<a href" not in notice
    with pytest.raises(ui.UserError) as err:
        attention.show("The animal", "smollm2-135m", 3, 0, "it", "lines", heads="<b>2</b>")
    assert "<b>" not in err.value.message and "&lt;b&gt;" in err.value.message  # what the page shows
    notice, main, _, _ = attention.show("it is <b>bold</b>", "smollm2-135m", 3, 0, "it", "summary", keys="<b>bold</b>")
    assert "<b>bold</b>" not in main.to_json()


@pytest.mark.parametrize("answer", ["   The capital is Paris.", "\t\tParis", " \n Paris"])
def test_answers_starting_with_spaces_or_tabs_are_fine(smol, answer):
    """The finding: DPO (and SFT) with an answer that starts with spaces or tabs said 'Something went wrong'."""
    from demos import dpo
    from toolkit import sft

    assert "log π_ref(chosen)" in dpo.reference("What is the capital of France?", answer, "Lyon")
    built = sft.build(smol, sft.Exchange("What is the capital of France?", answer))
    n_prompt = built.labels.count(-100) if isinstance(built.labels, list) else int((built.labels == -100).sum())
    assert smol.tokenizer.decode(built.ids[n_prompt:]).startswith(answer)  # the answer's tokens are all learnt


def test_rope_at_the_smallest_head_dimension_and_a_pair_past_d_half():
    """The finding: d = 2 gave a ZeroDivisionError in the dynamic-NTK plot; the pair slider went past d/2."""
    from demos import rope
    from toolkit import rope as rope_maths

    with pytest.raises(ui.UserError, match="head dimension must be between 4"):
        rope.explore(10000, 2, 0, 0, "default", 4, 8192)
    assert rope.explore(10000, 4, 3, 1, "dynamic", 4, 8192)[0].startswith("θ = 10,000, d = 4")
    with pytest.raises(ui.UserError, match="pair must be between 0 and 1"):
        rope.explore(10000, 4, 0, 2, "default", 4, 8192)
    with pytest.raises(ValueError, match="dynamic NTK scaling needs head_dim >= 4"):
        rope_maths.scaled_frequencies(10000, 2, "dynamic", 4.0, 8192)
    assert rope.pair_range(16)["maximum"] == 7  # the page's pair box follows d


def test_a_cached_answer_reaches_the_second_student_whole(live_server):
    """Gradio pops an update's value while sending it; a replay cached as updates (ui.memo copies them) must reach
    the second and third student with its figure, not an empty hero."""
    client = live_server.client("agent")
    for _ in range(3):
        status, plot, html = client.predict("accuracy", 0, "tools", api_name="/show")
        assert "with tools" in status and plot["visible"] and plot.get("value"), plot
