"""A ReAct loop on SmolLM2-135M-Instruct (slides "Tool use", "Agents: ReAct on SmolLM2"; Yao et al. 2023).

The tools' JSON schemas go into the system message (SmolLM2's chat template has no slot for tools: given
``tools=`` it renders nothing of them, so the schema is written into the prompt, as its model card does). Worked
examples come first as earlier turns. Then, until the model answers or ``max_turns`` is reached:
    reason   the model writes (greedy) a thought and, maybe, <tool_call>{"name": ..., "arguments": ...}</tool_call>
    act      the call is parsed as JSON (``maths.parse_call``); a call that does not parse is recorded as such
             and the error goes back as the observation; nothing is ever executed as code
    observe  the tool's result goes back as a "tool" message
A turn without a call is the answer. Without tools the same examples are shown answered directly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from toolkit import models, turns
from toolkit.agent.maths import ParseFailure, parse_call, split_call
from toolkit.agent.questions import EXAMPLES, Question, questions
from toolkit.agent.tools import TOOLS, ToolError
from toolkit.agent.trace import AgentTrace
from toolkit.config import Config, param
from toolkit.reasoning.generate import chat_ids, generate
from toolkit.reasoning.maths import extract_answer
from toolkit.trace import make_meta

SYSTEM_TOOLS = (
    "You can call tools. Tools:\n<tools>{tools}</tools>\n"
    'To call a tool, write <tool_call>{{"name": ..., "arguments": {{...}}}}</tool_call>. '
    "After the tool answers, reply with the final answer."
)
SYSTEM_PLAIN = "Answer the question."
CONDITIONS = ("tools", "no_tools")


@dataclass(frozen=True)
class AgentConfig(Config):
    max_turns: int = param(3, "model turns before the loop gives up", lo=1, hi=6, label="max turns")
    max_new_tokens: int = param(64, "tokens per model turn", lo=8, hi=160, label="tokens per turn")
    batch_size: int = param(16, "questions per generate() call", lo=1, hi=64, label="batch size")


def system_prompt(tools: bool = True) -> str:
    """The system message: the tools' schemas (function-calling JSON) and how to call them, or a plain one."""
    if not tools:
        return SYSTEM_PLAIN
    return SYSTEM_TOOLS.format(tools=json.dumps([t.schema() for t in TOOLS.values()]))


def example_messages(tools: bool = True) -> list[dict[str, str]]:
    """The worked examples as earlier turns: question, thought + call, observation, answer (or, without tools,
    question and answer)."""
    out: list[dict[str, str]] = []
    for ex in EXAMPLES:
        out.append({"role": "user", "content": ex.question})
        if not tools:
            out.append({"role": "assistant", "content": ex.direct})
            continue
        call = json.dumps({"name": ex.tool, "arguments": ex.arguments})
        out.append({"role": "assistant", "content": f"{ex.thought}\n<tool_call>{call}</tool_call>"})
        out.append({"role": "tool", "content": TOOLS[ex.tool](ex.arguments)})
        out.append({"role": "assistant", "content": ex.answer})
    return out


def messages_for(question: str, tools: bool = True) -> list[dict[str, str]]:
    system = {"role": "system", "content": system_prompt(tools)}
    return [system, *example_messages(tools), {"role": "user", "content": question}]


def observe(raw: str) -> tuple[dict, str]:
    """One tool call, from its text to its observation: (the step record, the observation text)."""
    call = parse_call(raw, set(TOOLS))
    if isinstance(call, ParseFailure):
        return {"kind": "error", "text": raw, "reason": call.reason}, f"Error: {call.reason}"
    args = json.dumps(call.arguments, ensure_ascii=False)
    try:
        result = TOOLS[call.name](call.arguments)
        return {"kind": "action", "tool": call.name, "text": f"{call.name}({args})", "ok": True}, result
    except ToolError as err:
        return {"kind": "action", "tool": call.name, "text": f"{call.name}({args})", "ok": False}, f"Error: {err}"


def is_correct(q: Question, final: str | None) -> bool:
    """A lookup answer must contain its phrase; a number must be read from the answer and equal; a question
    without a known answer (a live one) is never counted right."""
    if final is None or not q.answer:
        return False
    if q.kind == "lookup":
        return q.answer.lower() in final.lower()
    value = extract_answer(final)
    return value is not None and float(value) == float(q.answer)


def run(
    model: models.Loaded | str,
    items: Sequence[Question],
    tools: bool = True,
    config: AgentConfig | None = None,
    progress: str | None = None,
    **options: Any,
) -> list[dict]:
    """Episodes for ``items``, run in lock-step batches: [{"steps": [...], "final", "correct", ...}] per item."""
    loaded = models.resolve(model)
    cfg = AgentConfig.make(config, **options)
    chats = [messages_for(q.question, tools) for q in items]
    episodes = [{"steps": [{"kind": "question", "text": q.question}], "final": None} for q in items]
    open_ = list(range(len(items)))
    rounds = range(cfg.max_turns)
    if progress:
        from tqdm.auto import tqdm

        rounds = tqdm(rounds, desc=progress, unit="turn")
    for _ in rounds:
        if not open_:
            break
        prompts = [chat_ids(loaded, chats[i]) for i in open_]
        texts = generate(loaded, prompts, cfg.max_new_tokens, batch_size=cfg.batch_size)
        still = []
        for i, text in zip(open_, texts):
            thought, raw = split_call(text)
            steps = episodes[i]["steps"]
            if raw is None or not tools:
                steps.append({"kind": "answer", "text": text.strip()})
                episodes[i]["final"] = text.strip()
                continue
            if thought:
                steps.append({"kind": "thought", "text": thought})
            record, observation = observe(raw)
            steps += [record, {"kind": "observation", "text": observation}]
            said = {"role": "assistant", "content": text.strip()}
            chats[i] = chats[i] + [said, {"role": "tool", "content": observation}]
            still.append(i)
        open_ = still
    for i in open_:
        episodes[i]["steps"].append({"kind": "gave_up", "text": f"no answer after {cfg.max_turns} turns"})
    for q, ep in zip(items, episodes):
        ep["correct"] = is_correct(q, ep["final"])
        ep["calls"] = sum(s["kind"] in ("action", "error") for s in ep["steps"])
        ep["parse_failures"] = sum(s["kind"] == "error" for s in ep["steps"])
    return episodes


def evaluate(
    model: models.Loaded | str,
    items: Sequence[Question] | None = None,
    config: AgentConfig | None = None,
    progress: bool = False,
    **options: Any,
) -> AgentTrace:
    """Every question with tools and without: the episodes and the accuracy of each condition."""
    loaded = models.resolve(model)
    cfg = AgentConfig.make(config, **options)
    items = list(items if items is not None else questions())
    if not items:
        raise ValueError("no questions to run")
    episodes, seconds = {}, {}
    for cond in CONDITIONS:
        work = turns.stopwatch()  # work, not pauses for a waiting request
        label = ("with tools" if cond == "tools" else "without tools") if progress else None
        episodes[cond] = run(loaded, items, cond == "tools", cfg, progress=label)
        seconds[cond] = round(work(), 2)
    return AgentTrace(
        questions=[{"id": q.id, "kind": q.kind, "question": q.question, "answer": q.answer} for q in items],
        conditions=list(CONDITIONS),
        episodes=episodes,
        correct=np.array([[ep["correct"] for ep in episodes[c]] for c in CONDITIONS], dtype=bool),
        system={c: system_prompt(c == "tools") for c in CONDITIONS},
        config=cfg.to_dict(),
        seconds=seconds,
        meta=make_meta(loaded.name),
    ).check()


capture = evaluate
