"""Schema registry and schema-drift watch.

- :mod:`shopops.schemas.model` — subjects, versions, compatibility levels and modes (pure data);
- :mod:`shopops.schemas.formats` — Avro and JSON Schema: parsing, canonical form, compatibility;
- :mod:`shopops.schemas.port` — the schema store port (backends ``sqlite`` and ``postgres``);
- :mod:`shopops.schemas.service` — the registry's use cases, with Confluent semantics;
- :mod:`shopops.schemas.api` — the Confluent Schema Registry REST API;
- :mod:`shopops.schemas.client` — the registry-client port the drift watch talks through
  (backends ``builtin`` and ``http``, the latter for any Confluent-API registry);
- :mod:`shopops.schemas.drift` — the drift watch over every CDC stream, quarantine and replay.
"""
