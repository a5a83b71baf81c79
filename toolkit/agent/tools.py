"""The agent's two tools and their descriptions (slides "Tool use", "Agents: ReAct", "MCP").

Nothing here ever executes text. ``calculate`` parses an expression with ``ast`` and walks the tree itself: only
numbers and + - * / ** (and unary minus) are evaluated, with limits on length, depth, exponent and size; names,
calls, attributes, strings and everything else are refused. ``lookup`` reads a bundled corpus: the Python
reference topics that ship with Python (``pydoc_data.topics``, what ``help("assert")`` prints).

Each tool is described three ways from one Python signature and docstring: the JSON schema the chat template gets
(``transformers.utils.get_json_schema``, the function-calling convention), and the MCP tool definition
(``name``, ``description``, ``inputSchema``) an MCP server would list.
"""

from __future__ import annotations

import ast
import functools
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_EXPRESSION_CHARS = 200
MAX_DEPTH = 20  # nested operations
MAX_EXPONENT = 64  # |b| in a ** b
MAX_MAGNITUDE = 1e15  # any intermediate result
MAX_TOPIC_CHARS = 60
SNIPPET_CHARS = 500  # lookup returns the first paragraph(s) of a topic, cut here

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}


class ToolError(ValueError):
    """A tool refused its arguments: the message is the observation the model gets back."""


def calculate(expression: str) -> int | float:
    """The value of an arithmetic expression of numbers and + - * / ** (ast-parsed, never evaluated as code)."""
    if not isinstance(expression, str):
        raise ToolError(f"expression must be text, got {type(expression).__name__}")
    text = expression.strip().replace("×", "*").replace("÷", "/").replace("^", "**")
    if not text:
        raise ToolError("the expression is empty")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"the expression is {len(text)} characters; the limit is {MAX_EXPRESSION_CHARS}")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise ToolError(f"not an arithmetic expression: {expression[:60]!r}") from None
    value = _value(tree.body, 0)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _value(node: ast.AST, depth: int) -> int | float:
    if depth > MAX_DEPTH:
        raise ToolError(f"the expression nests more than {MAX_DEPTH} operations")
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise ToolError(f"only numbers are allowed, not {type(node.value).__name__} {node.value!r:.30}")
        return _bounded(node.value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _bounded(_UNARY[type(node.op)](_value(node.operand, depth + 1)))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        a, b = _value(node.left, depth + 1), _value(node.right, depth + 1)
        if isinstance(node.op, ast.Pow) and abs(b) > MAX_EXPONENT:
            raise ToolError(f"exponent {b:g} is too large (at most {MAX_EXPONENT})")
        if isinstance(node.op, ast.Div) and b == 0:
            raise ToolError("division by zero")
        try:
            result = _BINARY[type(node.op)](a, b)
        except (OverflowError, ZeroDivisionError, ValueError) as err:
            raise ToolError(f"{a:g} {_SYMBOL[type(node.op)]} {b:g} cannot be computed ({err})") from None
        if isinstance(result, complex):
            raise ToolError("the result is not a real number")
        return _bounded(result)
    raise ToolError(f"only numbers and + - * / ** are allowed, not {type(node).__name__}")


def _bounded(value: int | float) -> int | float:
    if (isinstance(value, float) and not math.isfinite(value)) or abs(value) > MAX_MAGNITUDE:
        raise ToolError(f"a number in the calculation is larger than {MAX_MAGNITUDE:g}")
    return value


@functools.cache
def corpus() -> dict[str, str]:
    """The bundled lookup corpus: {topic: text} of Python's reference topics (``help("assert")``)."""
    from pydoc_data.topics import topics

    return dict(topics)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def find_topic(topic: str) -> str:
    """The corpus key for ``topic``: an exact key, else the topic whose title shares most words; ToolError if none."""
    if not isinstance(topic, str) or not topic.strip():
        raise ToolError("the topic is empty")
    if len(topic) > MAX_TOPIC_CHARS:
        raise ToolError(f"the topic is {len(topic)} characters; the limit is {MAX_TOPIC_CHARS}")
    docs = corpus()
    key = topic.strip().strip("\"'`").lower()
    if key in docs:
        return key
    wanted = _words(key) - {"the", "a", "an", "statement", "python", "in", "of", "what", "does", "do", "is"}
    best, score = None, 0
    for name, text in docs.items():
        title = _words(name.replace("-", " ")) | _words(text.split("\n", 1)[0])
        s = len(wanted & title)
        if s > score:
            best, score = name, s
    if best is None:
        raise ToolError(f"no topic matches {topic[:40]!r}; try a keyword such as 'assert', 'for' or 'lambda'")
    return best


def lookup_text(topic: str) -> str:
    """The first paragraphs of a topic, at most SNIPPET_CHARS characters (the title line dropped)."""
    body = corpus()[find_topic(topic)]
    lines = body.strip().splitlines()
    if len(lines) > 2 and set(lines[1].strip()) <= {"*", "="}:
        lines = lines[2:]  # the title and its underline
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines).strip())
    return text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS].rsplit(" ", 1)[0] + " ..."


# -- the tools as the model sees them: a signature and a docstring, turned into a JSON schema ------------------


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression with numbers and + - * / **.

    Args:
        expression: the arithmetic expression, for example "23 + 48"
    """
    value = calculate(expression)
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def lookup(topic: str) -> str:
    """Look up a Python keyword or topic in the Python reference documentation.

    Args:
        topic: the keyword or topic, for example "assert"
    """
    return lookup_text(topic)


@dataclass(frozen=True)
class Tool:
    name: str
    fn: Callable[..., str]

    def schema(self) -> dict:
        """The function-calling JSON schema: {"type": "function", "function": {name, description, parameters}}."""
        return _schema(self.name)

    def mcp(self) -> dict:
        """The same tool as an MCP tool definition (what a server answers to ``tools/list``)."""
        fn = self.schema()["function"]
        return {"name": fn["name"], "description": fn["description"], "inputSchema": fn["parameters"]}

    def __call__(self, arguments: dict) -> str:
        """Run the tool on already-parsed arguments (a dict of strings); ToolError for anything else."""
        fn = self.schema()["function"]
        params = fn["parameters"]
        if not isinstance(arguments, dict):
            raise ToolError(f"arguments must be an object, got {type(arguments).__name__}")
        unknown = sorted(set(arguments) - set(params["properties"]))
        if unknown:
            raise ToolError(f"{self.name} has no argument {unknown[0]!r}")
        missing = [p for p in params.get("required", []) if p not in arguments]
        if missing:
            raise ToolError(f"{self.name} needs the argument {missing[0]!r}")
        for key, value in arguments.items():
            if not isinstance(value, str):
                raise ToolError(f"argument {key!r} must be a string, got {type(value).__name__}")
        return self.fn(**arguments)


@functools.cache
def _schema(name: str) -> dict:
    from transformers.utils import get_json_schema

    return get_json_schema(TOOLS[name].fn)


TOOLS: dict[str, Tool] = {t.name: t for t in (Tool("calculator", calculator), Tool("lookup", lookup))}
