"""The hash chain, pure: sealing records and naming the first broken one."""

from __future__ import annotations

import dataclasses

from shopops.governance.model import (
    GENESIS_HASH,
    AuditEntry,
    AuditKind,
    AuditRecord,
    ChainHead,
    seal,
    verify_chain,
)


def chain(n: int) -> list[AuditRecord]:
    out, prev = [], GENESIS_HASH
    for i in range(1, n + 1):
        record = seal(
            AuditEntry(AuditKind.ACCESS, 'User::"a"', "read", 'Api::"x"', "allow", ("p",), {"i": i}),
            i,
            1000 + i,
            prev,
        )
        out.append(record)
        prev = record.hash
    return out


def head(records: list[AuditRecord]) -> ChainHead:
    return ChainHead(records[-1].seq, records[-1].hash)


def test_an_intact_chain_verifies() -> None:
    records = chain(5)
    report = verify_chain(records, head(records))
    assert report.ok
    assert report.checked == 5


def test_an_edit_names_the_edited_record() -> None:
    records = chain(5)
    records[2] = dataclasses.replace(records[2], decision="deny")
    report = verify_chain(records, head(chain(5)))
    assert (report.ok, report.first_broken) == (False, 3)
    assert "edited" in report.problem


def test_a_deletion_names_the_missing_record() -> None:
    records = chain(5)
    report = verify_chain(records[:1] + records[2:], head(records))
    assert (report.ok, report.first_broken) == (False, 2)
    assert "missing" in report.problem


def test_a_truncation_is_caught_by_the_head_and_by_an_anchor() -> None:
    records = chain(5)
    report = verify_chain(records[:3], head(records))
    assert (report.ok, report.first_broken) == (False, 4)
    assert "truncated" in report.problem
    # Head rewritten too: an anchor kept elsewhere (the JSON log lines) still catches it.
    report = verify_chain(records[:3], head(records[:3]), anchor=head(records))
    assert (report.ok, report.first_broken) == (False, 4)
