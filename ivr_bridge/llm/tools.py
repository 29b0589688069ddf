"""The tools an LLM dialog offers: call control (transfer, end, back to the flow) and HTTP.

Call-control tools are declared by the dialog from its config, so the model can only dial
numbers the flow allows and only jump to steps the flow names. HTTP tools are the flow's own
backends: the model's arguments go out as JSON (or the query string for GET), the JSON answer
comes back as the tool result, and any failure becomes an error result the model can talk about
instead of an exception that silences the call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp

from ivr_bridge.http_util import read_limited
from ivr_bridge.llm.types import ToolCall, ToolSpec

TRANSFER_CALL = "transfer_call"
END_CALL = "end_call"
GOTO_STEP = "goto_step"
MAX_BODY_BYTES = 1 << 20
"""A backend answer is read up to here; the result is cut to MAX_RESULT_CHARS anyway."""
MAX_RESULT_CHARS = 4000
"""Tool results are cut here: a huge backend answer would slow every later request."""


@dataclass(frozen=True, slots=True)
class HttpTool:
    name: str
    description: str
    url: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_ms: int = 3000

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.description, self.parameters)


@dataclass(frozen=True, slots=True)
class ToolConfig:
    transfer_to: str | None = None
    """Where ``transfer_call`` dials when the model names no number (None: no default)."""
    transfer_allowed: tuple[str, ...] = ()
    """Other numbers the model may name; anything else is refused."""
    goto_steps: tuple[str, ...] = ()
    """Flow step ids the model may hand the call back to (empty: no ``goto_step`` tool)."""
    http_tools: tuple[HttpTool, ...] = ()
    allow_end_call: bool = True

    def allowed_numbers(self) -> tuple[str, ...]:
        return ((self.transfer_to,) if self.transfer_to else ()) + self.transfer_allowed


def tool_specs(config: ToolConfig) -> list[ToolSpec]:
    specs: list[ToolSpec] = []
    numbers = config.allowed_numbers()
    if numbers:
        number: dict[str, Any] = {
            "type": "string",
            "description": "Number to dial; leave out to use the default line.",
            "enum": list(numbers),
        }
        specs.append(
            ToolSpec(
                TRANSFER_CALL,
                "Transfer the caller to a person or another line. Tell the caller first.",
                {"type": "object", "properties": {"number": number}, "required": []},
            )
        )
    if config.allow_end_call:
        specs.append(
            ToolSpec(
                END_CALL,
                "Hang up when the conversation is over. Say goodbye first.",
                {
                    "type": "object",
                    "properties": {"reason": {"type": "string", "description": "Why it ends."}},
                    "required": ["reason"],
                },
            )
        )
    if config.goto_steps:
        specs.append(
            ToolSpec(
                GOTO_STEP,
                "Hand the call back to the scripted menu at the named step.",
                {
                    "type": "object",
                    "properties": {"step_id": {"type": "string", "enum": list(config.goto_steps)}},
                    "required": ["step_id"],
                },
            )
        )
    specs.extend(tool.spec for tool in config.http_tools)
    return specs


@dataclass(frozen=True, slots=True)
class ToolResult:
    content: str
    is_error: bool = False


def error_result(message: str) -> ToolResult:
    return ToolResult(json.dumps({"error": message}), is_error=True)


def check_transfer(config: ToolConfig, call: ToolCall) -> str | ToolResult:
    """The number to dial, or an error result when the model named one the flow forbids."""
    number = call.arguments.get("number") or config.transfer_to
    if not isinstance(number, str) or not number:
        return error_result("no number to transfer to; ask the caller what they need instead")
    if number not in config.allowed_numbers():
        return error_result(f"transfers to {number} are not allowed")
    return number


def check_goto(config: ToolConfig, call: ToolCall) -> str | ToolResult:
    step = call.arguments.get("step_id")
    if not isinstance(step, str) or step not in config.goto_steps:
        return error_result(f"unknown step {step!r}; choose one of {list(config.goto_steps)}")
    return step


async def run_http_tool(tool: HttpTool, arguments: Mapping[str, Any]) -> ToolResult:
    """One backend request; every failure is an error result, never an exception."""
    timeout = aiohttp.ClientTimeout(total=tool.timeout_ms / 1000)
    request: dict[str, Any] = {"headers": dict(tool.headers)}
    if tool.method == "GET":
        request["params"] = {k: _query_value(v) for k, v in arguments.items()}
    else:
        request["json"] = dict(arguments)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.request(tool.method, tool.url, **request) as response,
        ):
            body = (await read_limited(response.content, MAX_BODY_BYTES)).decode("utf-8", "replace")
            if response.status >= 400:
                return error_result(f"HTTP {response.status}: {body.strip()[:200]}")
    except TimeoutError:
        return error_result(f"the lookup timed out after {tool.timeout_ms} ms")
    except aiohttp.ClientError as exc:
        return error_result(f"the lookup failed: {type(exc).__name__}")
    try:
        content = json.dumps(json.loads(body), ensure_ascii=False) if body.strip() else "{}"
    except json.JSONDecodeError:
        content = json.dumps({"text": body.strip()}, ensure_ascii=False)
    if len(content) > MAX_RESULT_CHARS:
        content = content[:MAX_RESULT_CHARS] + "…(truncated)"
    return ToolResult(content)


def find_http_tool(tools: Sequence[HttpTool], name: str) -> HttpTool | None:
    return next((t for t in tools if t.name == name), None)


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return json.dumps(value)
