"""Tree of thought as search (slide "Tree of thought"; Yao et al. 2023): the model proposes next steps, a checker
scores them, a beam keeps the best partial solutions.

At each depth every kept partial solution is continued by ``proposals`` sampled lines (one step each: the model
writes after "Let's think step by step." and the steps so far). The checker is a rule, not the model:
    +1    the step's equations are right (recomputed by the calculator tool)
    +0.5  ... and every number it uses is in the question or was computed on this path (it is grounded)
    -1    an equation is wrong (the branch is pruned)
     0    nothing to check
A step that states "the answer is N" ends its branch. The ``beam`` best partial solutions (by summed score) go
on; at the end the best path wins (ties: the shorter, then the earlier); if it stated no answer, the model is
asked for one after its steps ("Therefore, the answer is", as in chain of thought).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch

from toolkit import models, turns
from toolkit.config import Config, param
from toolkit.reasoning.capture import COT_ANSWER, COT_SUFFIX, FINAL_TOKENS, question_messages
from toolkit.reasoning.generate import chat_ids, generate
from toolkit.reasoning.maths import check_step, extract_answer, first_number
from toolkit.reasoning.problems import Problem
from toolkit.reasoning.trace import TreeTrace
from toolkit.trace import make_meta

_FINAL = re.compile(r"answer\s+is", re.I)
_NUM = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class TreeConfig(Config):
    proposals: int = param(3, "next steps the model proposes for each kept partial solution", lo=1, hi=6)
    beam: int = param(2, "partial solutions kept at each depth", lo=1, hi=4)
    depth: int = param(3, "steps at most", lo=1, hi=5)
    step_tokens: int = param(32, "tokens per proposed step", lo=4, hi=64, label="tokens per step")
    temperature: float = param(0.8, "sampling temperature of the proposals", lo=0.05, hi=2.0, step=0.05)
    seed: int = param(0, "torch seed of the proposals", lo=0, hi=2**31 - 1)


def score_step(text: str, known: set[float]) -> tuple[float, str, set[float]]:
    """(score, verdict, numbers known after this step) for one proposed step given the numbers known so far."""
    step = check_step(text)
    if step.verdict == "wrong":
        return -1.0, "wrong", known
    if step.verdict == "unchecked":
        return 0.0, "unchecked", known
    used = {float(x) for lhs, _, _ in step.equations for x in _NUM.findall(lhs)}
    grounded = used <= known
    return (1.5 if grounded else 1.0), "correct", known | {c for _, c, _ in step.equations}


def search(model: models.Loaded | str, problem: Problem, config: TreeConfig | None = None, **options: Any) -> TreeTrace:
    """A beam search over steps proposed by the model and scored by the checker; every node is kept in the trace."""
    loaded = models.resolve(model)
    cfg = TreeConfig.make(config, **options)
    torch.manual_seed(cfg.seed)
    work = turns.stopwatch()  # work, not pauses for a waiting request
    root_known = {float(x) for x in _NUM.findall(problem.question)}
    nodes: list[dict] = [
        {"id": 0, "parent": -1, "depth": 0, "text": problem.question, "score": 0.0, "verdict": "question",
         "kept": True, "chosen": False, "answer": None, "total": 0.0}
    ]  # fmt: skip
    known = {0: root_known}
    frontier = [0]
    messages = question_messages(problem.question, COT_SUFFIX)
    for depth in range(1, cfg.depth + 1):
        open_ = [i for i in frontier if nodes[i]["answer"] is None]
        if not open_:
            break
        prompts = [chat_ids(loaded, messages, _prefix(nodes, i)) for i in open_]
        texts = generate(
            loaded,
            prompts,
            cfg.step_tokens,
            temperature=cfg.temperature,
            num_return_sequences=cfg.proposals,
            batch_size=len(prompts),
        )
        children = []
        for k, text in enumerate(texts):
            parent = open_[k // cfg.proposals]
            text = text.strip().split("\n", 1)[0].strip() or "(nothing)"  # one step: the first non-empty line
            score, verdict, now = score_step(text, known[parent])
            node_id = len(nodes)
            ends = bool(_FINAL.search(text))
            nodes.append(
                {"id": node_id, "parent": parent, "depth": depth, "text": text, "score": score, "verdict": verdict,
                 "kept": False, "chosen": False, "answer": extract_answer(text) if ends else None,
                 "total": nodes[parent]["total"] + score}
            )  # fmt: skip
            known[node_id] = now
            if verdict != "wrong":
                children.append(node_id)
        children.sort(key=lambda i: -nodes[i]["total"])  # stable: ties keep proposal order
        finished = [i for i in frontier if nodes[i]["answer"] is not None]
        frontier = finished + children[: cfg.beam]
        for i in children[: cfg.beam]:
            nodes[i]["kept"] = True
    leaves = [n for n in nodes[1:] if n["kept"]] or nodes[:1]
    best = max(leaves, key=lambda n: (n["answer"] is not None, n["total"], -n["depth"], -n["id"]))
    i = best["id"]
    while i != -1:
        nodes[i]["chosen"] = True
        i = nodes[i]["parent"]
    final = best["answer"]
    if final is None:  # the best path stated no answer: ask for it after its steps, as chain of thought does
        ids = chat_ids(loaded, messages, _prefix(nodes, best["id"]) + COT_ANSWER.lstrip("\n"))
        final = first_number(generate(loaded, [ids], FINAL_TOKENS, stop="\n")[0])
    return TreeTrace(
        question=problem.question,
        answer=float(problem.answer),
        nodes=nodes,
        beam=cfg.beam,
        proposals=cfg.proposals,
        final=None if final is None else float(final),
        seconds=round(work(), 2),
        meta=make_meta(loaded.name, seed=cfg.seed, config=cfg.to_dict(), problem=problem.id),
    ).check()


def _prefix(nodes: list[dict], i: int) -> str:
    """The steps on the path to node i, one per line, ready for the next one."""
    steps = []
    while nodes[i]["parent"] != -1:
        steps.append(nodes[i]["text"])
        i = nodes[i]["parent"]
    return "".join(s + "\n" for s in reversed(steps))
