"""`shopops llm …`: the gateway's backend chain, a chat turn and embeddings, in this process.

``shopops llm chat "How do I rotate an API key?"`` asks the configured chain (the built-in offline
model by default) and says which backend answered; ``--tools tools.json`` offers OpenAI-format tools.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from shopops.cli.common import console, handle_errors
from shopops.cli.context import open_platform
from shopops.core.errors import InvalidInputError
from shopops.llm.model import parse_chat_request, parse_embedding_request

app = typer.Typer(
    help="The OpenAI-compatible LLM gateway: backends, a chat turn, embeddings.", no_args_is_help=True
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON")]


@app.command("backends")
@handle_errors
def backends(as_json: JsonOpt = False) -> None:
    """The backend chain as configured (llm.backends), in the order it is tried."""
    with open_platform() as platform:
        rows = [b.describe() for b in platform.llm.backends]
    if as_json:
        console.print_json(orjson.dumps(rows).decode())
        return
    table = Table(title="LLM backends, in fallback order")
    for column in ("name", "type", "endpoint", "models", "embedding models", "external", "redact PII"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["name"],
            row["type"],
            row.get("base_url", "in process"),
            _models(row["models"]),
            _models(row["embedding_models"]),
            "yes" if row["external"] else "no",
            row["redact_pii"],
        )
    console.print(table)
    console.print("circuit states of a running server: GET /v1/chat/backends", style="dim")


def _models(table: dict[str, str]) -> str:
    return ", ".join(k if k == v else f"{k} → {v}" for k, v in table.items()) or "-"


@app.command("chat")
@handle_errors
def chat(
    message: Annotated[str, typer.Argument(help="The user message")],
    model: Annotated[str | None, typer.Option(help="Model name (default: llm.default_model)")] = None,
    system: Annotated[str | None, typer.Option(help="A system message first")] = None,
    tools: Annotated[
        Path | None, typer.Option(help="JSON file of OpenAI-format tools ([{type: function, function: ...}])")
    ] = None,
    tool_choice: Annotated[str | None, typer.Option(help="none, auto, required, or a tool's name")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Send one chat turn through the gateway and print the answer and the backend that gave it."""
    with open_platform() as platform:
        gateway = platform.llm
        body: dict[str, Any] = {
            "model": model or gateway.default_model,
            "messages": ([{"role": "system", "content": system}] if system else [])
            + [{"role": "user", "content": message}],
        }
        if tools is not None:
            body["tools"] = _read_tools(tools)
        if tool_choice is not None:
            body["tool_choice"] = (
                tool_choice
                if tool_choice in ("none", "auto", "required")
                else {"type": "function", "function": {"name": tool_choice}}
            )
        result = asyncio.run(_chat(gateway, parse_chat_request(body)))
    if as_json:
        out = {**result.completion.model_dump(mode="json"), "backend": result.backend}
        out["fallbacks"] = [a.to_dict() for a in result.attempts]
        console.print_json(orjson.dumps(out).decode())
        return
    reply = result.completion.choices[0].message
    for call in reply.tool_calls or ():
        console.print(f"[bold]tool call[/] {call.function.name}({call.function.arguments})", highlight=False)
    if reply.content:
        console.print(reply.content, highlight=False, markup=False)
    fallbacks = ", ".join(f"{a.backend} ({a.reason})" for a in result.attempts)
    note = f"answered by {result.backend}" + (f" after {fallbacks}" if fallbacks else "")
    usage = result.completion.usage
    if usage is not None:
        note += f" · {usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens"
    console.print(note, style="dim")


def _read_tools(path: Path) -> Any:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise InvalidInputError(f"no tools file {path}", hint="give a JSON file of tools") from None
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{path} is not JSON: {exc}", hint="fix the file") from None
    return doc


@app.command("embed")
@handle_errors
def embed(
    texts: Annotated[list[str], typer.Argument(help="Texts to embed")],
    model: Annotated[str, typer.Option(help="Embedding model")] = "all-MiniLM-L6-v2",
    as_json: JsonOpt = False,
) -> None:
    """Embed texts through the gateway (the built-in MiniLM by default)."""
    with open_platform() as platform:
        gateway = platform.llm
        request = parse_embedding_request({"model": model, "input": texts})
        result = asyncio.run(_embed(gateway, request))
    if as_json:
        console.print_json(orjson.dumps(result.body).decode())
        return
    table = Table(title=f"{model} via {result.backend}")
    for column in ("text", "dimensions", "first values"):
        table.add_column(column)
    for text, item in zip(texts, result.body["data"], strict=True):
        vector = item["embedding"]
        table.add_row(text, str(len(vector)), ", ".join(f"{v:.4f}" for v in vector[:4]) + ", …")
    console.print(table)


async def _chat(gateway: Any, request: Any) -> Any:
    try:
        return await gateway.chat(request)
    finally:
        await gateway.aclose()


async def _embed(gateway: Any, request: Any) -> Any:
    try:
        return await gateway.embeddings(request)
    finally:
        await gateway.aclose()
