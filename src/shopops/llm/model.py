"""The OpenAI wire format the gateway speaks: chat completions, streaming chunks, embeddings.

Pure: pydantic models, validation into OpenAI-style errors, token estimates and the
server-sent-events framing of streams. No I/O.

Requests keep fields this module does not know (``extra="allow"``) so that an upstream receives
everything its client sent (``seed``, ``logprobs``, vendor options); what the gateway itself acts on
is typed and checked: roles, tool definitions and ``tool_choice``, ``n`` (1 only), sampling ranges.
"""

from __future__ import annotations

import base64
import re
import struct
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shopops.llm.errors import InvalidRequestError

Role = Literal["system", "developer", "user", "assistant", "tool"]
_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class _Open(BaseModel):
    """A wire object: unknown fields are kept and passed on."""

    model_config = ConfigDict(extra="allow")


# --- requests ---------------------------------------------------------------------------------


class ContentPart(_Open):
    """One part of a message's content; the offline model reads ``text`` parts only."""

    type: str
    text: str | None = None

    @model_validator(mode="after")
    def _text_part(self) -> ContentPart:
        if self.type == "text" and self.text is None:
            raise ValueError("a content part of type 'text' needs 'text'")
        return self


class FunctionCall(_Open):
    name: str
    #: JSON text, as the OpenAI API sends it.
    arguments: str = "{}"


class ToolCall(_Open):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(_Open):
    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _by_role(self) -> ChatMessage:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a message with role 'tool' needs 'tool_call_id'")
        if self.role in ("user", "system", "developer") and self.content is None:
            raise ValueError(f"a message with role {self.role!r} needs 'content'")
        if self.role == "assistant" and self.content is None and not self.tool_calls:
            raise ValueError("an assistant message needs 'content' or 'tool_calls'")
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only assistant messages carry 'tool_calls'")
        return self

    @property
    def text(self) -> str:
        """The message's text: the string content, or its text parts joined."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.content if p.type == "text" and p.text)


class FunctionDef(_Open):
    name: str
    description: str = ""
    #: A JSON Schema object describing the arguments.
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _FUNCTION_NAME.match(value):
            raise ValueError("a function name is 1-64 letters, digits, '_' or '-'")
        return value

    @field_validator("parameters")
    @classmethod
    def _object_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        kind = value.get("type", "object")
        if kind != "object":
            raise ValueError(f"'parameters' must be a JSON Schema of type 'object', not {kind!r}")
        if not isinstance(value.get("properties", {}), dict):
            raise ValueError("'parameters.properties' must be an object")
        return value


class ToolDef(_Open):
    type: Literal["function"] = "function"
    function: FunctionDef


class NamedFunction(BaseModel):
    name: str


class NamedToolChoice(_Open):
    type: Literal["function"] = "function"
    function: NamedFunction


class StreamOptions(_Open):
    include_usage: bool = False


class ChatCompletionRequest(_Open):
    """``POST /v1/chat/completions``."""

    model: Annotated[str, Field(min_length=1)]
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    tools: list[ToolDef] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    n: int | None = None
    stop: str | Annotated[list[str], Field(max_length=4)] | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    response_format: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None

    @field_validator("n")
    @classmethod
    def _one_choice(cls, value: int | None) -> int | None:
        if value is not None and value != 1:
            raise ValueError(f"n={value} is not supported: the gateway returns exactly one choice (n=1)")
        return value

    @model_validator(mode="after")
    def _tools_consistent(self) -> ChatCompletionRequest:
        names = [t.function.name for t in self.tools or []]
        if len(set(names)) != len(names):
            raise ValueError("tool function names must be unique")
        if isinstance(self.tool_choice, NamedToolChoice):
            if self.tool_choice.function.name not in names:
                raise ValueError(
                    f"tool_choice names function {self.tool_choice.function.name!r}, which is not among "
                    f"the tools ({', '.join(names) or 'none given'})"
                )
        elif self.tool_choice in ("auto", "required") and not names:
            raise ValueError(f"tool_choice {self.tool_choice!r} needs 'tools'")
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options is only allowed when stream is true")
        if self.response_format is not None:
            kind = self.response_format.get("type")
            if kind not in ("text", "json_object", "json_schema"):
                raise ValueError(
                    f"response_format.type must be text, json_object or json_schema, not {kind!r}"
                )
        return self

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def stop_sequences(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def upstream_body(self, model: str) -> dict[str, Any]:
        """The request as sent to an upstream serving it as ``model`` (everything else kept)."""
        body = self.model_dump(mode="json", exclude_none=True, exclude_unset=True)
        body["model"] = model
        return body


class EmbeddingRequest(_Open):
    """``POST /v1/embeddings``."""

    model: Annotated[str, Field(min_length=1)]
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Field(ge=1)] | None = None
    user: str | None = None

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value:
                raise ValueError("input must not be an empty string")
        elif not value:
            raise ValueError("input must not be an empty list")
        elif len(value) > 2048:
            raise ValueError(f"at most 2048 inputs per request, not {len(value)}")
        elif isinstance(value[0], str) and any(not v for v in value):
            raise ValueError("input must not contain empty strings")
        return value

    def texts(self) -> list[str]:
        """The inputs as text; token arrays are refused (the built-in embedder reads text)."""
        if isinstance(self.input, str):
            return [self.input]
        if all(isinstance(v, str) for v in self.input):
            return [str(v) for v in self.input]
        raise InvalidRequestError(
            f"model {self.model!r} takes text input, not token arrays",
            hint="send 'input' as a string or a list of strings",
            param="input",
        )

    def upstream_body(self, model: str) -> dict[str, Any]:
        body = self.model_dump(mode="json", exclude_none=True, exclude_unset=True)
        body["model"] = model
        return body


_TYPE_NAMES = frozenset({"str", "int", "float", "bool", "list", "dict", "none"})


def _is_field(part: str | int) -> bool:
    # Union members add their type to an error's location ("str", "list[int]", "NamedToolChoice"):
    # those are not fields of the request.
    if isinstance(part, int):
        return True
    return part.isidentifier() and part not in _TYPE_NAMES and not part[:1].isupper()


def _param(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _parse(model: type[Any], body: Any) -> Any:
    if not isinstance(body, Mapping):
        raise InvalidRequestError(
            "the request body must be a JSON object", hint="send Content-Type: application/json"
        )
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        errors = exc.errors()
        # A value of the wrong type fails every member of a union; the member it was meant for
        # explains best (e.g. a list of five stop sequences: "at most 4", not "not a string").
        err = next((e for e in errors if not str(e["type"]).endswith("_type")), errors[0])
        param = _param([p for p in err["loc"] if _is_field(p)]) or None
        message = str(err["msg"]).removeprefix("Value error, ")
        given = err.get("input")
        if isinstance(given, str | int | float) and not isinstance(given, bool) and len(repr(given)) <= 60:
            message += f" (got {given!r})"
        more = len({_param([p for p in e["loc"] if _is_field(p)]) for e in errors}) - 1
        raise InvalidRequestError(
            f"invalid {param or 'request'}: {message}" + (f" (and {more} more problems)" if more else ""),
            hint="see docs/llm.md for the fields the gateway accepts",
            param=param,
        ) from None


def parse_chat_request(body: Any) -> ChatCompletionRequest:
    """Validate a decoded JSON body; problems raise :class:`InvalidRequestError` naming the field."""
    request: ChatCompletionRequest = _parse(ChatCompletionRequest, body)
    return request


def parse_embedding_request(body: Any) -> EmbeddingRequest:
    request: EmbeddingRequest = _parse(EmbeddingRequest, body)
    return request


def decode_json_body(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(
            f"the request body is not valid JSON: {exc}", hint="send a JSON object"
        ) from None


# --- responses --------------------------------------------------------------------------------


class ResponseMessage(_Open):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    tool_calls: list[ToolCall] | None = None
    refusal: str | None = None


class Choice(_Open):
    index: int = 0
    message: ResponseMessage
    finish_reason: str | None = "stop"
    logprobs: Any = None


class Usage(_Open):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ChatCompletion(_Open):
    """A chat completion; also what an upstream's answer is checked against."""

    id: str = Field(default_factory=lambda: new_id("chatcmpl"))
    object: str = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: Annotated[list[Choice], Field(min_length=1)]
    usage: Usage | None = None
    system_fingerprint: str | None = None


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def backend_fingerprint(backend: str) -> str:
    """The ``system_fingerprint`` that names the backend which answered."""
    return f"shopops:{backend}"


_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def count_tokens(text: str) -> int:
    """An estimate of the tokens of ``text``: words and punctuation marks.

    Used where no upstream reports usage (the offline model, a stream without a usage chunk). BPE
    tokenizers split long or rare words further, so this under-counts by roughly a quarter.
    """
    return len(_TOKEN.findall(text))


def prompt_tokens(request: ChatCompletionRequest) -> int:
    total = 0
    for message in request.messages:
        total += 4 + count_tokens(message.text)  # role and framing, as the OpenAI cookbook counts
        for call in message.tool_calls or ():
            total += count_tokens(call.function.name) + count_tokens(call.function.arguments)
    for tool in request.tools or ():
        total += count_tokens(tool.function.name) + count_tokens(tool.function.description)
        total += count_tokens(orjson.dumps(tool.function.parameters).decode())
    return total + 2


# --- streaming --------------------------------------------------------------------------------

SSE_DONE = b"data: [DONE]\n\n"


def sse_event(data: Mapping[str, Any]) -> bytes:
    """One server-sent event carrying ``data`` as JSON: ``data: {...}\\n\\n``."""
    return b"data: " + orjson.dumps(data) + b"\n\n"


def completion_chunks(completion: ChatCompletion, *, include_usage: bool = False) -> Iterator[dict[str, Any]]:
    """A finished completion as the chunks a streaming client expects (OpenAI's order).

    The role comes first, then the content in pieces of a few words (or each tool call with its
    arguments), then a chunk with the finish reason, then, when asked, one usage chunk with no choice.
    """
    base = {
        "id": completion.id,
        "object": "chat.completion.chunk",
        "created": completion.created,
        "model": completion.model,
        "system_fingerprint": completion.system_fingerprint,
    }
    choice = completion.choices[0]
    message = choice.message

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    if message.tool_calls:
        yield chunk({"role": "assistant", "content": None})
        for index, call in enumerate(message.tool_calls):
            head = {"index": index, "id": call.id, "type": "function"}
            yield chunk({"tool_calls": [{**head, "function": {"name": call.function.name, "arguments": ""}}]})
            yield chunk(
                {"tool_calls": [{"index": index, "function": {"arguments": call.function.arguments}}]}
            )
    else:
        yield chunk({"role": "assistant", "content": ""})
        for piece in split_for_stream(message.content or ""):
            yield chunk({"content": piece})
    yield chunk({}, choice.finish_reason)
    if include_usage:
        usage = completion.usage or Usage()
        yield {**base, "choices": [], "usage": usage.model_dump()}


_PIECE = re.compile(r"\S+\s*|\s+")


def split_for_stream(text: str, words: int = 4) -> list[str]:
    """``text`` cut into pieces of ``words`` words (whitespace kept), joining back to ``text``."""
    tokens = _PIECE.findall(text)
    return ["".join(tokens[i : i + words]) for i in range(0, len(tokens), words)]


class SseDecoder:
    """Incremental parser of a ``text/event-stream`` body into ``(event, data)`` pairs.

    Follows the WHATWG rules the OpenAI streams use: ``data:`` lines of one event are joined with
    newlines, an empty line ends the event, lines starting with ``:`` are comments, and ``\\n``,
    ``\\r\\n`` and ``\\r`` all end a line. Bytes may arrive cut anywhere, even inside a line.
    """

    def __init__(self) -> None:
        self._buffer = ""
        self._data: list[str] = []
        self._event: str | None = None
        self._pending_cr = False

    def feed(self, chunk: bytes | str) -> list[tuple[str | None, str]]:
        text = chunk.decode("utf-8") if isinstance(chunk, bytes) else chunk
        if self._pending_cr and text.startswith("\n"):
            text = text[1:]  # the \n of a \r\n cut between two chunks
        self._pending_cr = text.endswith("\r")
        self._buffer += text
        lines = re.split(r"\r\n|\r|\n", self._buffer)
        self._buffer = lines.pop()
        out: list[tuple[str | None, str]] = []
        for line in lines:
            event = self._line(line)
            if event is not None:
                out.append(event)
        return out

    def _line(self, line: str) -> tuple[str | None, str] | None:
        if not line:
            if not self._data and self._event is None:
                return None
            event = (self._event, "\n".join(self._data))
            self._data, self._event = [], None
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None

    def close(self) -> list[tuple[str | None, str]]:
        """Events left when the stream ends without a final blank line."""
        out: list[tuple[str | None, str]] = []
        if self._buffer:
            event = self._line(self._buffer)
            self._buffer = ""
            if event is not None:
                out.append(event)
        last = self._line("")
        if last is not None:
            out.append(last)
        return out


# --- embeddings -------------------------------------------------------------------------------


def encode_embedding(vector: Sequence[float], encoding_format: str) -> list[float] | str:
    """A vector as the API returns it: floats, or base64 of little-endian float32 (OpenAI's layout)."""
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return [float(v) for v in vector]


def embedding_response(
    model: str, vectors: Sequence[Sequence[float]], encoding_format: str, tokens: int
) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode_embedding(v, encoding_format)}
            for i, v in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
