"""Tool use and agents: a ReAct loop on SmolLM2 with a safe calculator and a lookup tool, and the same tools as
MCP definitions (slides "Tool use", "Agents: ReAct on SmolLM2", "MCP").

    from toolkit import agent
    trace = agent.evaluate("smollm2-135m", agent.questions()[:4])   # AgentTrace, with and without tools
    agent.figures.accuracy(trace)

tools: calculate (ast, numbers and + - * / ** only), lookup (Python's reference topics), TOOLS with their JSON
schemas and MCP definitions; maths: reading a tool call (JSON, never executed); questions: the bundled questions
and worked examples; capture: AgentConfig, run, evaluate; trace: AgentTrace; figures: one view each.
"""

from toolkit.agent import figures
from toolkit.agent.capture import AgentConfig, capture, evaluate, example_messages, messages_for, run, system_prompt
from toolkit.agent.maths import ParseFailure, ToolCall, parse_call, split_call
from toolkit.agent.questions import EXAMPLES, LOOKUPS, Question, questions
from toolkit.agent.tools import TOOLS, Tool, ToolError, calculate, corpus, find_topic, lookup_text
from toolkit.agent.trace import AgentTrace

__all__ = [
    "capture",
    "evaluate",
    "run",
    "AgentConfig",
    "AgentTrace",
    "system_prompt",
    "example_messages",
    "messages_for",
    "parse_call",
    "split_call",
    "ToolCall",
    "ParseFailure",
    "Question",
    "questions",
    "EXAMPLES",
    "LOOKUPS",
    "TOOLS",
    "Tool",
    "ToolError",
    "calculate",
    "corpus",
    "find_topic",
    "lookup_text",
    "figures",
]
