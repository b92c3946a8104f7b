"""Bad input gets the Confluent error code, a clear message and the registry's content type — never a 500."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import pytest
from tests.e2e.schemas.conftest import RegistryServer

CT = "application/vnd.schemaregistry.v1+json"
GOOD = orjson.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]}).decode()


@pytest.fixture(scope="module")
def http(registry_server: RegistryServer) -> httpx.Client:
    client = httpx.Client(
        base_url=registry_server.url, headers={"Content-Type": CT, **registry_server.auth_headers}
    )
    subject = "known-value"
    assert (
        client.post(f"/subjects/{subject}/versions", content=orjson.dumps({"schema": GOOD})).status_code
        == 200
    )
    return client


def body(doc: Any) -> bytes:
    return orjson.dumps(doc)


CASES: list[tuple[str, str, str, bytes | None, int, int, str]] = [
    # (name, method, path, body, status, error_code, words in the message)
    (
        "malformed avro",
        "POST",
        "/subjects/x/versions",
        body({"schema": '{"type":"recrd"}'}),
        422,
        42201,
        "recrd",
    ),
    (
        "schema not json",
        "POST",
        "/subjects/x/versions",
        body({"schema": "{oops"}),
        422,
        42201,
        "not valid JSON",
    ),
    (
        "malformed json schema",
        "POST",
        "/subjects/x/versions",
        body({"schema": '{"type": "objekt"}', "schemaType": "JSON"}),
        422,
        42201,
        "objekt",
    ),
    (
        "unknown schema type",
        "POST",
        "/subjects/x/versions",
        body({"schema": GOOD, "schemaType": "XML"}),
        422,
        42201,
        "XML",
    ),
    (
        "protobuf",
        "POST",
        "/subjects/x/versions",
        body({"schema": "syntax = 'proto3';", "schemaType": "PROTOBUF"}),
        422,
        42201,
        "PROTOBUF",
    ),
    ("no schema field", "POST", "/subjects/x/versions", body({"schemaa": GOOD}), 422, 42201, "'schema'"),
    (
        "bad reference",
        "POST",
        "/subjects/x/versions",
        body({"schema": GOOD, "references": [{"name": "n", "subject": "nope", "version": 1}]}),
        422,
        42201,
        "nope",
    ),
    ("body not json", "POST", "/subjects/x/versions", b"{not json", 400, 400, "not valid JSON"),
    ("body not an object", "POST", "/subjects/x/versions", b"[1]", 400, 400, "JSON object"),
    ("empty body", "POST", "/subjects/x/versions", b"", 400, 400, "empty"),
    (
        "oversized body",
        "POST",
        "/subjects/x/versions",
        body({"schema": "x" * 70_000}),
        422,
        42209,
        "too large",
    ),
    ("unknown subject", "GET", "/subjects/nope/versions", None, 404, 40401, "Subject 'nope' not found"),
    ("unknown subject latest", "GET", "/subjects/nope/versions/latest", None, 404, 40401, "nope"),
    ("unknown version", "GET", "/subjects/known-value/versions/9", None, 404, 40402, "Version 9"),
    ("version zero", "GET", "/subjects/known-value/versions/0", None, 422, 42202, "'0'"),
    ("version text", "GET", "/subjects/known-value/versions/first", None, 422, 42202, "'first'"),
    (
        "version too big",
        "GET",
        "/subjects/known-value/versions/99999999999",
        None,
        422,
        42202,
        "valid version",
    ),
    ("unknown id", "GET", "/schemas/ids/424242", None, 404, 40403, "424242"),
    ("id not a number", "GET", "/schemas/ids/abc", None, 404, 40403, "abc"),
    (
        "lookup unknown schema",
        "POST",
        "/subjects/known-value",
        body({"schema": GOOD.replace('"a"', '"b"')}),
        404,
        40403,
        "Schema not found",
    ),
    (
        "bad compatibility level",
        "PUT",
        "/config/known-value",
        body({"compatibility": "SIDEWAYS"}),
        422,
        42203,
        "SIDEWAYS",
    ),
    ("missing compatibility level", "PUT", "/config", body({"level": "FULL"}), 422, 42203, "Valid values"),
    ("subject config not set", "GET", "/config/known-value", None, 404, 40408, "subject-level compatibility"),
    ("bad mode", "PUT", "/mode", body({"mode": "SOMETIMES"}), 422, 42204, "SOMETIMES"),
    ("import mode", "PUT", "/mode/known-value", body({"mode": "IMPORT"}), 422, 42204, "IMPORT"),
    ("explicit id", "POST", "/subjects/x/versions", body({"schema": GOOD, "id": 7}), 422, 42205, "IMPORT"),
    (
        "compatibility of unknown subject",
        "POST",
        "/compatibility/subjects/nope/versions/latest",
        body({"schema": GOOD}),
        404,
        40401,
        "nope",
    ),
    (
        "compatibility bad version",
        "POST",
        "/compatibility/subjects/known-value/versions/-7",
        body({"schema": GOOD}),
        422,
        42202,
        "'-7'",
    ),
    ("delete unknown version", "DELETE", "/subjects/known-value/versions/5", None, 404, 40402, "Version 5"),
    (
        "permanent delete first",
        "DELETE",
        "/subjects/known-value/versions/1?permanent=true",
        None,
        404,
        40407,
        "not deleted first",
    ),
    ("unknown endpoint", "GET", "/subjectz", None, 404, 404, "/subjectz"),
]


@pytest.mark.parametrize(
    ("method", "path", "content", "status", "error_code", "words"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_input(
    http: httpx.Client,
    method: str,
    path: str,
    content: bytes | None,
    status: int,
    error_code: int,
    words: str,
) -> None:
    response = http.request(method, path, content=content)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == CT
    answer = response.json()
    assert answer["error_code"] == error_code
    assert words in answer["message"]


def test_an_oversized_body_without_a_length_header_is_refused_too(http: httpx.Client) -> None:
    def chunks() -> Any:
        yield b'{"schema": "'
        for _ in range(20):
            yield b"x" * 8192
        yield b'"}'

    response = http.post(f"/subjects/{uuid.uuid4().hex}/versions", content=chunks())
    assert response.status_code == 422
    assert response.json()["error_code"] == 42209
