"""The model slots of one server, shared by rank (the "model" and "heavy" lanes of demos/ui.py).

A browser session is light while the time its requests were under way lately plus this one's is under LIGHT_S (the
sum decays with a half-life of HALF_LIFE_S): a student reading answers and asking again. A request that came in
rank 2 is under way from asking for its slot to leaving it, waits and pauses included: someone looping over the
maxima is always in the gate, however long their work waits or is paused for students, so they do not turn light
again by being kept waiting. A request that came in light (rank 0 or 1) counts its work: the time it held its slot,
not its wait for one nor the pauses at its turns, also after it turned rank 2 partway. Counted by the wall clock, a
student's question slowed by a busy moment turned rank 2 and was kept waiting for the others' light work, that wait
was charged too, and the same student's next questions turned rank 2 ever sooner (the load probe: 7 of 71 questions,
one student's 12.7, 18.9, 23.7 s). A cheap handler's time (it takes no slot) counts too: the cheap requests between
someone's model work count, or they would stay light by mixing them in. Ranks, the lower served first:
  0  a quick forward (the model lane) for a light session;
  1  heavy work for a light session: a student's own question to a generating demo;
  2  anything for any other session (someone looping over the most expensive settings, with one session or a new
     one for every request: a request under way past LIGHT_S is rank 2 from then on). A rank-2 heavy request
     (training included) does not start while ``heavy`` others are under way, running or paused, and at most
     ``heavy`` of them run at once, so a slot is always left to the others, and the large transients of the largest
     requests the demos allow (a long prompt's attention, a GRPO step at its maxima) are alive one at a time: a
     paused one keeps its memory. (Requests that turn rank 2 partway through are counted from then on.)
A rank-2 request also steps aside while a light one (rank 0 or 1) holds a slot: it does not start, and it pauses at
its next turn, so a student's question runs alone and is not slowed by someone's maxima on the other core
(decoding is bound by memory bandwidth, and the Python between the operations by the GIL). So that a lecturer's
long run is not starved during a busy class, a rank-2 request that has waited AGE_S goes ahead anyway, and then
neither steps aside nor lends its slot for RUN_S seconds.
Within a rank, first come, first served. Work in a slot takes turns (toolkit.turns: between decoder layers, and
between generated tokens or steps): at a turn it lends its slot to a waiting request that ranks before it, and a
rank-2 heavy request also pauses while another one runs. It then waits for a slot again, keeping its place in the
queue, so a paused request resumes before newer ones of its rank. A paused request keeps what it holds at that
point (a generation's cache and one layer's hidden states; a training step's activations so far). A request that
waits longer than its limit is told the server is busy (``Busy``).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

HALF_LIFE_S = 30.0
LIGHT_S = 8.0
AGE_S = 10.0  # a rank-2 request waiting this long goes ahead beside light work ...
RUN_S = 2.0  # ... and then runs this long without stepping aside for it
QUICK, LIGHT, HEAVY = 0, 1, 2


class Busy(Exception):
    """No slot within the wait limit."""


@dataclass(eq=False)
class Ticket:
    lane: str  # "model" or "heavy"
    session: str  # the browser session it works for
    seq: int  # arrival order, kept across pauses
    rank: int = QUICK
    started: float | None = None  # when it first got a slot: under way from then until it leaves
    counted: bool = False  # under way as a rank-2 heavy request (until it leaves, paused or not)
    since: float = 0.0  # when it last began to wait
    entered: float = 0.0  # when it first asked for a slot
    light: bool = False  # got its slot at rank 0 or 1 and has not been seen past LIGHT_S since
    came_light: bool = False  # first got its slot at rank 0 or 1: it counts the time it held a slot
    held_s: float = 0.0  # seconds it held a slot, before its current hold
    held_since: float | None = None  # when its current hold began; None: it holds no slot
    pass_until: float = 0.0  # a rank-2 request that waited AGE_S: until then it does not step aside

    @property
    def holding(self) -> bool:
        return self.held_since is not None


class Gate:
    def __init__(self, slots: int, heavy: int):
        self.cond = threading.Condition()
        self.free = slots
        self.heavy_cap = heavy
        self.heavy_running = 0  # rank-2 heavy requests holding a slot
        self.heavy_under_way = 0  # rank-2 heavy requests entered and not yet left, running or paused
        self.holders: set[Ticket] = set()
        self.waiting: list[Ticket] = []
        self.count = itertools.count()
        self.usage: dict[str, tuple[float, float]] = {}  # session -> (seconds in the gate or cheap handlers, when)
        self.changed: Callable[[], None] | None = None  # told of every change (demos/workers.py: workers ask then)

    # ---- bookkeeping (under self.cond) ------------------------------------------------------------------------

    def _notify(self) -> None:
        self.cond.notify_all()
        if self.changed is not None:
            self.changed()

    def used(self, session: str, now: float) -> float:
        seconds, at = self.usage.get(session, (0.0, now))
        return seconds * 0.5 ** ((now - at) / HALF_LIFE_S)

    def _add(self, session: str, seconds: float, now: float) -> None:
        self.usage[session] = (self.used(session, now) + seconds, now)
        if len(self.usage) > 4096:  # sessions long gone: keep the ones that still count
            self.usage = {s: u for s, u in self.usage.items() if self.used(s, now) > 0.1}

    @staticmethod
    def _work(t: Ticket, now: float) -> float:
        """Seconds ``t`` has held a slot so far."""
        return t.held_s + (now - t.held_since if t.held_since is not None else 0.0)

    def _under_way(self, t: Ticket, now: float) -> float:
        """What ``t`` adds to its session's time now: its work if it came in light, else its time under way."""
        if t.started is None:
            return 0.0
        return self._work(t, now) if t.came_light else now - t.started

    def _rank(self, t: Ticket, now: float) -> int:
        running = self._under_way(t, now)
        if self.used(t.session, now) + running >= LIGHT_S:
            return HEAVY
        return LIGHT if t.lane == "heavy" else QUICK

    @staticmethod
    def _capped(t: Ticket, rank: int) -> bool:
        """Among the rank-2 heavy requests, of which ``heavy_cap`` run at once."""
        return rank == HEAVY and t.lane == "heavy"

    def _light_running(self, now: float) -> bool:
        """A request of rank 0 or 1, as ranked now, holds a slot."""
        return any(self._rank(h, now) < HEAVY for h in self.holders)

    def _due(self, t: Ticket, now: float) -> bool:
        """A rank-2 request that has waited long enough to go ahead beside light work."""
        return now - t.since >= AGE_S

    def _eligible(self, t: Ticket, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if t.rank == HEAVY and not self._due(t, now) and self._light_running(now):
            return False  # steps aside while a light request runs
        if not self._capped(t, t.rank):
            return True
        if t.counted:  # paused mid-way: resumes while fewer than heavy_cap run
            return self.heavy_running < self.heavy_cap
        return self.heavy_under_way < self.heavy_cap  # a new one: not while another is under way

    def _next(self) -> Ticket | None:
        """The waiting request served next when a slot frees."""
        now = time.monotonic()
        ready = [t for t in self.waiting if self._eligible(t, now)]
        return min(ready, key=lambda t: (t.rank, t.seq)) if ready else None

    def _release(self, t: Ticket) -> None:
        if not t.holding:
            return
        self.free += 1
        self.heavy_running -= t.counted
        t.held_s, t.held_since = self._work(t, time.monotonic()), None
        self.holders.discard(t)
        self._notify()

    def _count(self, t: Ticket) -> None:
        """From now on a rank-2 heavy request: under way until it leaves."""
        t.counted = True
        self.heavy_under_way += 1
        self._notify()  # who is next may have changed

    def _wait(self, t: Ticket, timeout: float) -> None:
        t.since = time.monotonic()
        t.rank = self._rank(t, t.since)
        self.waiting.append(t)
        self._notify()  # the order may have changed for the others
        deadline = t.since + timeout
        while not (self.free > 0 and self._next() is t):
            now = time.monotonic()
            left = deadline - now
            if left <= 0:
                self.waiting.remove(t)
                if t.started is None and t.rank == HEAVY:  # never ran: a rank-2 wait still goes to its session
                    self._add(t.session, now - t.entered, now)
                self._notify()
                raise Busy
            if t.rank == HEAVY and not self._due(t, now):  # wake when due: no one else would wake it then
                left = min(left, t.since + AGE_S - now + 0.01)
            self.cond.wait(left)
        self.waiting.remove(t)
        self.free -= 1
        now = time.monotonic()
        if self._capped(t, t.rank) and not t.counted:
            self._count(t)
        self.heavy_running += t.counted
        if t.rank == HEAVY and self._light_running(now):  # went ahead beside light work: runs a while
            t.pass_until = now + RUN_S
        self.holders.add(t)
        t.light, t.held_since = t.rank < HEAVY, now
        if t.started is None:
            t.started, t.came_light = now, t.rank < HEAVY
        self._notify()

    # ---- the three moves ----------------------------------------------------------------------------------------

    def enter(self, lane: str, session: str, timeout: float) -> Ticket:
        """Wait for a slot (``Busy`` past ``timeout`` seconds); the ticket is handed back with ``leave``."""
        t = Ticket(lane, session, next(self.count), entered=time.monotonic())
        with self.cond:
            self._wait(t, timeout)
        return t

    def turn(self, t: Ticket, timeout: float) -> None:
        """A point between steps of heavy work: lend the slot if a request that ranks before it waits, or if it is
        a rank-2 request beyond the ones allowed to run, or a rank-2 request while a light one holds a slot."""
        with self.cond:
            if not t.holding:
                return
            now = time.monotonic()
            rank = self._rank(t, now)
            if t.light and rank == HEAVY:  # past LIGHT_S: rank 2 from now on; the rank-2 requests it held back may go
                t.light = False
                self._notify()
            if self._capped(t, rank) and not t.counted:
                self._count(t)
                self.heavy_running += 1
            over = t.counted and self.heavy_running > self.heavy_cap
            if not over and now < t.pass_until:
                return
            nxt = self._next() if self.free == 0 else None
            aside = rank == HEAVY and self._light_running(now)
            if not over and not aside and (nxt is None or nxt.rank >= rank):
                return
            self._release(t)
            self._wait(t, timeout)

    def alone(self, t: Ticket) -> bool:
        """``t`` holds the only slot in use: no other request runs beside it (paused ones hold none)."""
        with self.cond:
            return t.holding and len(self.holders) == 1

    def charge(self, session: str, seconds: float) -> None:
        """Time the server worked for ``session`` outside the slots (a cheap handler): it ranks the session too."""
        with self.cond:
            self._add(session, seconds, time.monotonic())
            self._notify()  # a holder of that session may have turned rank 2: who may run may change

    def leave(self, t: Ticket) -> None:
        with self.cond:
            now = time.monotonic()
            self._release(t)
            if t.started is not None:  # its time goes to its session (a rank-2 one's first wait too)
                self._add(t.session, t.held_s if t.came_light else now - t.entered, now)
                t.started = None
            if t.counted:
                t.counted = False
                self.heavy_under_way -= 1
                self._notify()
