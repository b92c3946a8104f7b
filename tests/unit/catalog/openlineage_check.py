"""Checks that a JSON document is a valid OpenLineage run event (specification 2-0-2).

Two independent checks: a JSON Schema of what the specification requires of a ``RunEvent`` (the
fields, their types and formats, every facet's ``_producer``/``_schemaURL``), and rebuilding the
event with the OpenLineage client's own models, whose validators check the time, the run id and
the event type.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

import jsonschema
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState

_FACETS = {
    "type": "object",
    "additionalProperties": {
        "type": "object",
        "required": ["_producer", "_schemaURL"],
        "properties": {"_producer": {"type": "string"}, "_schemaURL": {"type": "string"}},
    },
}
_DATASET = {
    "type": "object",
    "required": ["namespace", "name"],
    "properties": {
        "namespace": {"type": "string", "minLength": 1},
        "name": {"type": "string", "minLength": 1},
        "facets": _FACETS,
        "inputFacets": _FACETS,
        "outputFacets": _FACETS,
    },
}
RUN_EVENT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["eventTime", "producer", "schemaURL", "run", "job"],
    "properties": {
        "eventType": {"enum": ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]},
        "eventTime": {"type": "string"},
        "producer": {"type": "string"},
        "schemaURL": {
            "type": "string",
            "pattern": r"^https://openlineage\.io/spec/\d+-\d+-\d+/OpenLineage\.json",
        },
        "run": {
            "type": "object",
            "required": ["runId"],
            "properties": {"runId": {"type": "string"}, "facets": _FACETS},
        },
        "job": {
            "type": "object",
            "required": ["namespace", "name"],
            "properties": {
                "namespace": {"type": "string", "minLength": 1},
                "name": {"type": "string", "minLength": 1},
                "facets": _FACETS,
            },
        },
        "inputs": {"type": "array", "items": _DATASET},
        "outputs": {"type": "array", "items": _DATASET},
    },
}


def check_run_event(event: dict[str, Any]) -> RunEvent:
    """Raise unless ``event`` is a valid OpenLineage run event; return it as the client's model."""
    jsonschema.validate(event, RUN_EVENT_SCHEMA)
    time = datetime.fromisoformat(event["eventTime"])
    assert time.tzinfo is not None, "eventTime needs a time zone"
    uuid.UUID(event["run"]["runId"])
    assert urlparse(event["producer"]).scheme, "producer must be a URI"
    for facets in _all_facets(event):
        for facet in facets.values():
            assert urlparse(facet["_producer"]).scheme
            assert urlparse(facet["_schemaURL"]).scheme == "https"
    return RunEvent(
        eventType=RunState(event["eventType"]),
        eventTime=event["eventTime"],
        run=Run(runId=event["run"]["runId"]),
        job=Job(namespace=event["job"]["namespace"], name=event["job"]["name"]),
        inputs=[InputDataset(d["namespace"], d["name"]) for d in event.get("inputs", [])],
        outputs=[OutputDataset(d["namespace"], d["name"]) for d in event.get("outputs", [])],
        producer=event["producer"],
    )


def _all_facets(event: dict[str, Any]) -> list[dict[str, Any]]:
    found = [event["run"].get("facets") or {}, event["job"].get("facets") or {}]
    for side in ("inputs", "outputs"):
        for ds in event.get(side, []):
            for key in ("facets", "inputFacets", "outputFacets"):
                found.append(ds.get(key) or {})
    return found
