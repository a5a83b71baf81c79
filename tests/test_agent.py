"""Tool use and agents: the calculator computes and never executes, tool calls are parsed as data, the ReAct loop
records each step, the same tool is a valid MCP definition (held to the MCP SDK), the recorded measurement and
the slides agree, and the demo handles bad input."""

from __future__ import annotations

import builtins
import importlib
import json
import re

import pytest

from toolkit import agent as ag
from toolkit.agent.record import ASSET

agent_capture = importlib.import_module("toolkit.agent.capture")  # the module (the package's `capture` is a function)


@pytest.mark.parametrize(
    "expression,value",
    [("23 + 48", 71), ("2 ** 10", 1024), ("7 / 2", 3.5), ("-3 * 4", -12), ("(1 + 2) * 3", 9), ("3^2", 9),
     ("20 + 5 - 3", 22), ("6 × 7", 42), ("1.5 * 2", 3)],
)  # fmt: skip
def test_calculator_known_answers(expression, value):
    assert ag.calculate(expression) == value


CODE = [
    "__import__('os').system('touch {path}')",
    "open('{path}', 'w').write('x')",
    "(lambda: open('{path}', 'w'))()",
    "[open('{path}', 'w') for _ in '1']",
    "().__class__.__bases__[0].__subclasses__()",
    "x + 1",
    "'a' * 3",
    "True + 1",
    "1 if 1 else 2",
    "2 ** 1000",
    "10 ** 16",
    "1 / 0",
    "(-8) ** 0.5",
    "9" * 300,
    "-" * 30 + "1",
    "",
]


@pytest.mark.parametrize("code", CODE)
def test_calculator_refuses_code_and_never_executes(code, tmp_path, monkeypatch):
    """Code as an argument: refused with a ToolError; eval/exec are never called; the file it would write is not."""
    target = tmp_path / "pwned"

    def forbidden(*args, **kwargs):
        raise AssertionError("the calculator called eval or exec")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    with pytest.raises(ag.ToolError):
        ag.calculate(code.format(path=target))
    assert not target.exists()


def test_a_model_written_call_with_code_is_refused_not_run(tmp_path):
    """The agent's own path from model text to observation: the call parses, the tool refuses it, nothing runs."""
    target = tmp_path / "pwned"
    raw = json.dumps({"name": "calculator", "arguments": {"expression": f"__import__('os').system('touch {target}')"}})
    record, observation = agent_capture.observe(raw)
    assert record["kind"] == "action" and record["ok"] is False
    assert observation.startswith("Error: only numbers") and not target.exists()
    record, observation = agent_capture.observe("calculator(expression=open('x').read())")  # not JSON: not run
    assert record["kind"] == "error" and "not JSON" in record["reason"]


def test_parse_call_reads_json_only():
    known = set(ag.TOOLS)
    assert ag.parse_call('{"name": "calculator", "arguments": {"expression": "1 + 1"}}', known) == ag.ToolCall(
        "calculator", {"expression": "1 + 1"}
    )
    assert ag.parse_call('[{"name": "lookup", "arguments": {"topic": "for"}}]', known).name == "lookup"
    assert ag.parse_call('{"name": "lookup", "arguments": "{\\"topic\\": \\"for\\"}"}', known).arguments == {
        "topic": "for"
    }
    for raw, reason in [
        ('{"name": "shell", "arguments": {}}', "no tool 'shell'"),
        ('{"name": "calculator", "arguments": {"expression": "1"}}</tool', "not JSON"),
        ('{"arguments": {}}', "no tool name"),
        ("[]", "one call"),
        ('"calculator"', "expected an object"),
        ('{"name": "calculator", "arguments": [1]}', "must be an object"),
    ]:
        got = ag.parse_call(raw, known)
        assert isinstance(got, ag.ParseFailure) and reason in got.reason, (raw, got)
    assert ag.split_call('I add.\n<tool_call>{"a": 1}</tool_call>') == ("I add.", '{"a": 1}')
    assert ag.split_call("The answer is 3.") == ("The answer is 3.", None)


def test_tools_check_their_arguments():
    with pytest.raises(ag.ToolError, match="no argument 'code'"):
        ag.TOOLS["calculator"]({"code": "1"})
    with pytest.raises(ag.ToolError, match="needs the argument"):
        ag.TOOLS["lookup"]({})
    with pytest.raises(ag.ToolError, match="must be a string"):
        ag.TOOLS["calculator"]({"expression": 3})
    assert ag.TOOLS["calculator"]({"expression": "23 + 48"}) == "71"
    assert "AssertionError" in ag.TOOLS["lookup"]({"topic": "assert"})
    assert ag.find_topic("lambda expressions") == "lambda"
    with pytest.raises(ag.ToolError):
        ag.find_topic("zzz qqq")


def test_schema_is_transformers_function_calling_schema():
    from transformers.utils import get_json_schema

    for tool in ag.TOOLS.values():
        assert tool.schema() == get_json_schema(tool.fn)
        fn = tool.schema()["function"]
        assert tool.mcp() == {"name": fn["name"], "description": fn["description"], "inputSchema": fn["parameters"]}


@pytest.mark.slow
def test_mcp_definition_is_valid_and_matches_the_sdk():
    """Our MCP definition validates as the SDK's Tool type; the SDK, serving the same Python function, derives the
    same argument names, types and required list, and answers tools/call with the calculator's result."""
    import anyio
    import mcp_types
    from mcp.client import Client
    from mcp.server.mcpserver import MCPServer

    ours = ag.TOOLS["calculator"].mcp()
    parsed = mcp_types.Tool.model_validate(ours)
    assert parsed.model_dump(by_alias=True, exclude_none=True) == ours
    server = MCPServer("lecture")
    server.tool()(ag.TOOLS["calculator"].fn)

    async def ask():
        async with Client(server) as client:
            listed = (await client.list_tools()).tools[0].model_dump(by_alias=True, exclude_none=True)
            result = await client.call_tool("calculator", {"expression": "23 + 48"})
            return listed, result

    listed, result = anyio.run(ask)
    theirs = listed["inputSchema"]
    assert listed["name"] == ours["name"] and theirs["required"] == ours["inputSchema"]["required"]
    assert {k: v["type"] for k, v in theirs["properties"].items()} == {
        k: v["type"] for k, v in ours["inputSchema"]["properties"].items()
    }
    assert result.content[0].text == "71" and not result.is_error


def test_smollm2_template_has_no_slot_for_tools(smol):
    """Why the schema goes into the system message: given tools=, SmolLM2's template renders nothing of them."""
    messages = [{"role": "user", "content": "What is 2 + 2?"}]
    schema = ag.TOOLS["calculator"].schema()
    plain = smol.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    tok = smol.tokenizer
    with_tools = tok.apply_chat_template(messages, tools=[schema], tokenize=False, add_generation_prompt=True)
    assert with_tools == plain
    system = ag.messages_for("What is 2 + 2?")[0]["content"]
    assert json.dumps(schema) in system and "<tool_call>" in system


def test_react_loop_records_steps_and_never_runs_a_bad_call(monkeypatch, smol):
    """The loop with scripted model turns: a good call, an unparsable call, an answer; and giving up."""
    script = iter(
        [
            ['I add.\n<tool_call>{"name": "calculator", "arguments": {"expression": "40 + 2"}}</tool_call>',
             "<tool_call>{'name': 'calculator'}</tool_call>"],
            ["The answer is 42.", "<tool_call>not json</tool_call>"],
            ["<tool_call>still not json</tool_call>"],
        ]
    )  # fmt: skip
    monkeypatch.setattr(agent_capture, "generate", lambda *a, **k: next(script))
    qs = [ag.Question(0, "add2", "What is 40 + 2?", "42"), ag.Question(1, "add2", "What is 1 + 1?", "2")]
    first, second = ag.run(smol, qs, True, max_turns=3)
    assert [s["kind"] for s in first["steps"]] == ["question", "thought", "action", "observation", "answer"]
    assert first["steps"][3]["text"] == "42" and first["correct"] and first["calls"] == 1
    assert [s["kind"] for s in second["steps"]][1:] == ["error", "observation"] * 3 + ["gave_up"]
    assert second["parse_failures"] == 3 and not second["correct"] and second["final"] is None


@pytest.mark.slow
def test_loop_on_a_tiny_model_and_trace_round_trip(tmp_path):
    from architectures import tiny

    model = tiny("llama-gqa")
    qs = ag.questions()
    trace = ag.evaluate(model, [qs[0], qs[-1]], max_turns=2, max_new_tokens=8)
    assert trace.correct.shape == (2, 2) and trace.conditions == ["tools", "no_tools"]
    again = ag.AgentTrace.load(trace.save(tmp_path / "a.npz"))
    assert again.episodes == trace.episodes and (again.correct == trace.correct).all()


def test_bundled_questions():
    qs = ag.questions()
    assert len(qs) == 68 and sum(q.kind == "lookup" for q in qs) == 8
    for q in qs:
        if q.kind == "lookup":
            assert q.answer.lower() in ag.lookup_text(q.topic).lower(), q  # the tool can answer it
    for ex in ag.EXAMPLES:
        assert ex.question not in {q.question for q in qs}


@pytest.fixture(scope="module")
def recorded():
    return ag.AgentTrace.load(ASSET)


def test_recorded_measurement(recorded):
    assert len(recorded.questions) == 68 and recorded.meta["model"] == "smollm2-135m"
    assert recorded.system["tools"] == ag.system_prompt(True)


def _slide(title: str) -> str:
    from lecture.deck import deck_slides

    found = [s for s in deck_slides() if re.search(rf"^# .*{re.escape(title)}", s, re.M)]
    assert len(found) == 1, f"{len(found)} slides titled {title!r}"
    return re.sub(r"\s+", " ", found[0])


def test_slides_state_the_measured_accuracy(recorded):
    text = _slide("Tool use: SmolLM2")
    for cond, words in (("tools", "with tools"), ("no_tools", "without tools")):
        acc, lo, hi, k, n = recorded.accuracy(cond)
        assert f"{words} {round(100 * acc)} % [{round(100 * lo)}, {round(100 * hi)}] ({k}/{n})" in text
    calls, failed = recorded.calls()
    assert f"{calls} tool calls" in text and f"{failed} did not parse" in text
    with_tools, without = (round(100 * recorded.accuracy(c)[0]) for c in ("tools", "no_tools"))
    assert f"a calculator tool: {without} % → {with_tools} % right" in _slide("Emergent abilities")


def test_mcp_slide_shows_our_definition():
    from lecture.deck import deck_slides

    source = next(s for s in deck_slides() if re.search(r"^# MCP", s, re.M))
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", source, re.S)]
    assert blocks[0] == ag.TOOLS["calculator"].mcp()  # the definition on the slide is the tool's own
    call, answer = blocks[1], blocks[2]
    assert call["method"] == "tools/call" and call["jsonrpc"] == "2.0"
    assert answer["result"]["content"][0]["text"] == ag.TOOLS["calculator"](call["params"]["arguments"])


def test_demo_handlers(recorded):
    from demos import agent as demo

    for view in demo.VIEW_NAMES:
        status, plot, html = demo.show(view, 0, "tools")
        assert status and (plot.get("visible") or html.get("visible"))
    out = demo.try_call(demo.DEFAULT_CALL)
    assert "refused" in out and "Nothing was run" in out
    assert demo.try_call('{"name": "calculator", "arguments": {"expression": "6 * 7"}}').endswith("→ 42")
    assert "Not a tool call" in demo.try_call("rm -rf /")
    i = demo.first_tool_success()
    assert recorded.episodes["tools"][i]["correct"] and recorded.episodes["tools"][i]["calls"]


def test_demo_bad_input():
    from demos import agent as demo
    from demos.ui import UserError

    bad = [("nope", 0, "tools"), ("timeline", 999, "tools"), ("timeline", 0, "maybe"), ("timeline", "x", "tools")]
    for args in bad:
        with pytest.raises(UserError):
            demo.show(*args)
    with pytest.raises(UserError):
        demo.ask("   ", "tools")
    with pytest.raises(UserError):
        demo.ask("x" * 1000, "tools")


@pytest.mark.slow
def test_demo_through_live_server(live_server):
    client = live_server.client("agent")
    assert "refused" in client.predict(demo_call(), api_name="/try_call")
    status, plot, html = client.predict("accuracy", 0, "tools", api_name="/show")
    assert "with tools" in status and plot["visible"]


def demo_call() -> str:
    return '{"name": "calculator", "arguments": {"expression": "open(\'/etc/passwd\').read()"}}'
