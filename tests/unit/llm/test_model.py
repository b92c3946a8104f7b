"""The OpenAI wire format: request validation into OpenAI-style errors, SSE framing, embeddings."""

from __future__ import annotations

import base64
import struct
from typing import Any

import orjson
import pytest

from shopops.llm.errors import InvalidRequestError
from shopops.llm.model import (
    SSE_DONE,
    ChatCompletion,
    Choice,
    FunctionCall,
    ResponseMessage,
    SseDecoder,
    ToolCall,
    Usage,
    completion_chunks,
    count_tokens,
    decode_json_body,
    encode_embedding,
    parse_chat_request,
    parse_embedding_request,
    split_for_stream,
    sse_event,
)

USER = [{"role": "user", "content": "hello"}]
TOOL = {
    "type": "function",
    "function": {
        "name": "get_order",
        "description": "Look up an order",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
    },
}


def _invalid(body: Any) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as caught:
        parse_chat_request(body)
    return caught.value


def test_a_minimal_request_parses_and_keeps_unknown_fields_for_upstreams() -> None:
    request = parse_chat_request({"model": "m", "messages": USER, "seed": 7, "logprobs": True})
    assert request.messages[0].text == "hello"
    body = request.upstream_body("upstream-name")
    assert body == {
        "model": "upstream-name",
        "messages": [{"role": "user", "content": "hello"}],
        "seed": 7,
        "logprobs": True,
    }


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"model": "m", "messages": USER, "n": 2}, "n", "n=2 is not supported"),
        ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", "robot"),
        ({"model": "m", "messages": [{"role": "tool", "content": "x"}]}, "messages[0]", "tool_call_id"),
        ({"model": "m", "messages": [{"role": "user"}]}, "messages[0]", "needs 'content'"),
        ({"model": "m", "messages": []}, "messages", "at least 1"),
        ({"messages": USER}, "model", "required"),
        ({"model": "m", "messages": USER, "temperature": 3}, "temperature", "less than or equal to 2"),
        ({"model": "m", "messages": USER, "max_tokens": 0}, "max_tokens", "greater than or equal to 1"),
        ({"model": "m", "messages": USER, "tool_choice": "auto"}, None, "needs 'tools'"),
        (
            {
                "model": "m",
                "messages": USER,
                "tools": [TOOL],
                "tool_choice": {"type": "function", "function": {"name": "nope"}},
            },
            None,
            "'nope', which is not among the tools (get_order)",
        ),
        (
            {
                "model": "m",
                "messages": USER,
                "tools": [{"type": "function", "function": {"name": "bad name!"}}],
            },
            "tools[0].function.name",
            "1-64 letters",
        ),
        (
            {
                "model": "m",
                "messages": USER,
                "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}],
            },
            "tools[0].function.parameters",
            "type 'object'",
        ),
        (
            {"model": "m", "messages": USER, "stream_options": {"include_usage": True}},
            None,
            "only allowed when stream",
        ),
        ({"model": "m", "messages": USER, "response_format": {"type": "yaml"}}, None, "response_format.type"),
        ({"model": "m", "messages": USER, "stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
    ],
)
def test_invalid_requests_name_the_field_in_an_openai_error(
    body: dict[str, Any], param: str | None, words: str
) -> None:
    error = _invalid(body)
    assert error.http_status == 400
    assert words in error.message
    payload = error.to_openai()["error"]
    assert set(payload) >= {"message", "type", "param", "code"}
    assert payload["type"] == "invalid_request_error"
    if param is not None:
        assert payload["param"] == param


def test_a_body_that_is_not_an_object_or_not_json_is_refused() -> None:
    assert "JSON object" in _invalid([1, 2]).message
    with pytest.raises(InvalidRequestError, match="not valid JSON"):
        decode_json_body(b"{nope")


def test_tool_conversation_round_trip() -> None:
    request = parse_chat_request(
        {
            "model": "m",
            "messages": [
                *USER,
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "get_order", "arguments": "{}"}}
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": '{"status": "shipped"}'},
            ],
            "tools": [TOOL],
            "tool_choice": {"type": "function", "function": {"name": "get_order"}},
        }
    )
    assert request.messages[1].tool_calls is not None
    assert request.messages[2].tool_call_id == "c1"


def test_embedding_requests() -> None:
    request = parse_embedding_request({"model": "e", "input": "one"})
    assert request.texts() == ["one"]
    assert parse_embedding_request({"model": "e", "input": ["a", "b"]}).texts() == ["a", "b"]
    with pytest.raises(InvalidRequestError, match="token arrays"):
        parse_embedding_request({"model": "e", "input": [1, 2, 3]}).texts()
    for bad in ("", [], ["a", ""]):
        with pytest.raises(InvalidRequestError, match="input"):
            parse_embedding_request({"model": "e", "input": bad})
    with pytest.raises(InvalidRequestError, match="encoding_format"):
        parse_embedding_request({"model": "e", "input": "x", "encoding_format": "hex"})


def test_base64_embeddings_are_little_endian_float32() -> None:
    vector = [0.25, -1.5, 3.0]
    encoded = encode_embedding(vector, "base64")
    assert isinstance(encoded, str)
    assert list(struct.unpack("<3f", base64.b64decode(encoded))) == vector
    assert encode_embedding(vector, "float") == vector


def test_sse_event_framing() -> None:
    assert sse_event({"a": 1}) == b'data: {"a":1}\n\n'
    assert SSE_DONE == b"data: [DONE]\n\n"


def _completion(message: ResponseMessage, finish: str) -> ChatCompletion:
    return ChatCompletion(
        id="chatcmpl-1",
        created=1,
        model="m",
        system_fingerprint="shopops:offline",
        choices=[Choice(message=message, finish_reason=finish)],
        usage=Usage(prompt_tokens=3, completion_tokens=4, total_tokens=7),
    )


def test_content_is_streamed_role_first_then_pieces_then_finish_then_usage() -> None:
    text = "one two three four five six seven"
    chunks = list(completion_chunks(_completion(ResponseMessage(content=text), "stop"), include_usage=True))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    pieces = [c["choices"][0]["delta"].get("content") for c in chunks[1:-2]]
    assert "".join(pieces) == text
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["total_tokens"] == 7
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == "chatcmpl-1" for c in chunks)
    without_usage = list(completion_chunks(_completion(ResponseMessage(content=text), "stop")))
    assert "usage" not in without_usage[-1]


def test_tool_calls_are_streamed_with_their_index_id_and_arguments() -> None:
    call = ToolCall(id="call_1", function=FunctionCall(name="get_order", arguments='{"order_id": "x"}'))
    chunks = list(completion_chunks(_completion(ResponseMessage(tool_calls=[call]), "tool_calls")))
    first = chunks[1]["choices"][0]["delta"]["tool_calls"][0]
    assert first == {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_order", "arguments": ""},
    }
    assert chunks[2]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] == '{"order_id": "x"}'
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_split_for_stream_joins_back() -> None:
    for text in ("", "one", "  spaced   out text\nwith lines ", "a b c d e f g h i"):
        assert "".join(split_for_stream(text)) == text


def test_sse_decoder_reassembles_events_cut_anywhere() -> None:
    stream = (
        b": a comment\n"
        b'data: {"a":1}\n\n'
        b"event: note\r\ndata: line one\r\ndata: line two\r\n\r\n"
        b"data: [DONE]\n\n"
    )
    for size in (1, 2, 3, 7, len(stream)):
        decoder = SseDecoder()
        events = []
        for i in range(0, len(stream), size):
            events += decoder.feed(stream[i : i + size])
        events += decoder.close()
        assert events == [(None, '{"a":1}'), ("note", "line one\nline two"), (None, "[DONE]")], size


def test_sse_decoder_keeps_a_last_event_without_its_blank_line() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b'data: {"x": 2}') == []
    assert decoder.close() == [(None, '{"x": 2}')]
    assert orjson.loads(sse_event({"x": 2})[6:]) == {"x": 2}


def test_token_estimate_counts_words_and_punctuation() -> None:
    assert count_tokens("Hello, world!") == 4
    assert count_tokens("") == 0
