"""The catalog's pure model: names, defaults, columns, runs, the lineage tree, near misses."""

from __future__ import annotations

import pytest

from shopops.catalog.model import (
    DEFAULT_OWNER,
    DEFAULT_RETENTION,
    MAX_DEPTH,
    Column,
    Dataset,
    DatasetKind,
    Edge,
    Flow,
    LineageGraph,
    LineageNode,
    Run,
    RunState,
    Sensitivity,
    check_depth,
    check_name,
    describe_name,
    lake_table_name,
    merge_columns,
    near_misses,
    new_dataset,
    parse_kind,
)
from shopops.core.errors import InvalidInputError


@pytest.mark.parametrize(
    ("name", "kind", "domain", "region", "logical"),
    [
        ("vn.shop.orders", DatasetKind.TOPIC, "shop", "vn", "shop.orders"),
        ("sg.payments.payments", DatasetKind.TOPIC, "payments", "sg", "payments.payments"),
        ("bronze.vn__shop__orders", DatasetKind.BRONZE, "shop", "vn", "shop.orders"),
        ("silver.th__shop__order_lines", DatasetKind.SILVER, "shop", "th", "shop.order_lines"),
        ("quarantine.sg__finance__fx_rates", DatasetKind.QUARANTINE, "finance", "sg", "finance.fx_rates"),
        ("reconciliation.input.vn.orders", DatasetKind.TABLE, "reconciliation", "vn", None),
        ("reconciliation.results.sg.exceptions", DatasetKind.REPORT, "reconciliation", "sg", None),
        ("features.customer_stats", DatasetKind.FEATURE, "ml", None, None),
        ("models.fraud", DatasetKind.MODEL, "ml", None, None),
        ("reports.finance.daily_close", DatasetKind.REPORT, "finance", None, None),
        ("shopops.schemas.quarantine", DatasetKind.TOPIC, "platform", None, None),
        ("warehouse.daily_sales", DatasetKind.TABLE, "warehouse", None, None),
    ],
)
def test_names_say_kind_domain_region_and_logical_dataset(
    name: str, kind: DatasetKind, domain: str, region: str | None, logical: str | None
) -> None:
    info = describe_name(name)
    assert (info.kind, info.domain, info.region, info.logical) == (kind, domain, region, logical)


def test_lake_table_names_follow_the_topics() -> None:
    assert lake_table_name("silver", "vn.shop.order_lines") == "silver.vn__shop__order_lines"
    assert describe_name(lake_table_name("bronze", "vn.shop.order_lines")).topic == "vn.shop.order_lines"


def test_new_dataset_takes_documented_defaults_and_says_so() -> None:
    ds = new_dataset("vn.shop.orders", "kafka://broker:9092")
    assert ds.owner == DEFAULT_OWNER
    assert ds.retention == DEFAULT_RETENTION[DatasetKind.TOPIC]
    assert ds.sla is None
    assert ds.residency == "vn"
    assert set(ds.defaulted) == {"owner", "retention", "sla"}
    assert ds.urn == "kafka://broker:9092/vn.shop.orders"
    given = new_dataset("models.fraud", "shopops", owner="risk-ml", retention="2y", sla="weekly retrain")
    assert given.defaulted == ()
    assert given.kind is DatasetKind.MODEL


@pytest.mark.parametrize("bad", ["", " vn.shop", "a b", "x/y", "é", "-lead", "x" * 256])
def test_bad_names_are_refused_with_the_rule(bad: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        check_name(bad)
    assert "letters, digits" in (err.value.hint or "")


def test_kinds_and_depths_are_checked() -> None:
    assert parse_kind(" Silver ") is DatasetKind.SILVER
    with pytest.raises(InvalidInputError) as err:
        parse_kind("view")
    assert "topic" in (err.value.hint or "")
    assert "model" in (err.value.hint or "")
    assert check_depth(1) == 1
    assert check_depth(MAX_DEPTH) == MAX_DEPTH
    for bad in (0, -1, MAX_DEPTH + 1, True):
        with pytest.raises(InvalidInputError, match="out of range"):
            check_depth(bad)


def test_columns_merge_by_name_keeping_the_highest_sensitivity() -> None:
    schema = [Column("order_id", "string"), Column("ip", "string"), Column("total", "string")]
    contract = [Column("ip", None, Sensitivity.CONFIDENTIAL, description="client IP", sources=("contract",))]
    tags = [
        Column("ip", sensitivity=Sensitivity.PII, masked=True, sources=("tags",)),
        Column("card_fingerprint", sensitivity=Sensitivity.SECRET, masked=True, sources=("tags",)),
    ]
    merged = merge_columns(schema, contract, tags)
    assert [c.name for c in merged] == ["order_id", "ip", "total", "card_fingerprint"]
    ip = merged[1]
    assert (ip.type, ip.sensitivity, ip.masked, ip.description) == (
        "string",
        Sensitivity.PII,
        True,
        "client IP",
    )
    assert ip.sources == ("contract", "tags")
    assert merged[3].sensitivity.personal


def test_dataset_round_trips_and_content_ignores_timestamps() -> None:
    ds = new_dataset(
        "silver.vn__shop__orders",
        "file:///wh",
        columns=(Column("ip", "string", Sensitivity.PII, True, "", ("policies/data.toml",)),),
        links={"dashboard": "http://grafana/d/x"},
        properties={"location": "file:///wh/silver/vn__shop__orders"},
    )
    assert Dataset.from_dict(ds.to_dict()) == ds
    later = Dataset.from_dict({**ds.to_dict(), "created_at_ms": 5, "updated_at_ms": 9})
    assert later.content() == ds.content()


def test_a_run_never_leaves_a_terminal_state_whatever_the_event_order() -> None:
    start = Run("r", "job", RunState.START, started_at_ms=10, inputs=("a",))
    done = Run("r", "job", RunState.COMPLETE, ended_at_ms=50, outputs=("b",), facets={"rows": 3})
    for merged in (start.merge(done), done.merge(start)):
        assert merged.state is RunState.COMPLETE
        assert (merged.started_at_ms, merged.ended_at_ms) == (10, 50)
        assert (merged.inputs, merged.outputs) == (("a",), ("b",))
        assert merged.seconds == 0.04
    failed = start.merge(Run("r", "job", RunState.FAIL, ended_at_ms=20, error="boom"))
    assert failed.state is RunState.FAIL
    assert failed.error == "boom"
    assert failed.merge(Run("r", "job", RunState.RUNNING)).state is RunState.FAIL


def _graph() -> LineageGraph:
    # topic -> export -> input.orders, input.dup; input.* -> run -> results; results -> report job
    edges = [
        Edge("export", "t.orders", "in"),
        Edge("export", "t.payments", "in"),
        Edge("export", "in.orders", "out"),
        Edge("export", "in.payments", "out"),
        Edge("export", "in.dup", "out"),
        Edge("run", "in.orders", "in"),
        Edge("run", "in.payments", "in"),
        Edge("run", "in.dup", "in"),
        Edge("run", "res", "out"),
        Edge("mail", "res", "in"),
    ]
    flows = [
        Flow("export", "t.orders", "in.orders"),
        Flow("export", "t.payments", "in.payments"),
        Flow("export", "t.orders", "in.dup"),
        Flow("export", "t.payments", "in.dup"),
        Flow("run", "in.orders", "res"),
        Flow("run", "in.payments", "res"),
        Flow("run", "in.dup", "res"),
    ]
    return LineageGraph(edges, flows)


def _shape(node: LineageNode) -> object:
    label = node.name + ("*" if node.seen else "") + ("…" if node.truncated else "")
    return (label, [_shape(c) for c in node.children]) if node.children else label


def test_downstream_tree_follows_flows_and_marks_repeats() -> None:
    tree = _graph().tree("t.orders", "downstream", 3)
    assert _shape(tree) == (
        "t.orders",
        [
            (
                "export",
                [
                    ("in.dup", [("run", [("res", ["mail"])])]),
                    ("in.orders", [("run", ["res*"])]),
                ],
            )
        ],
    )
    assert tree.names("job") == {"export", "run", "mail"}


def test_depth_truncates_and_says_so() -> None:
    tree = _graph().tree("t.orders", "downstream", 1)
    assert _shape(tree) == ("t.orders", [("export", ["in.dup…", "in.orders…"])])
    assert tree.to_dict()["children"][0]["children"][0]["truncated"] is True


def test_upstream_tree_goes_back_to_the_sources() -> None:
    tree = _graph().tree("res", "upstream", 2)
    assert _shape(tree) == (
        "res",
        [
            (
                "run",
                [
                    ("in.dup", [("export", ["t.orders", "t.payments"])]),
                    ("in.orders", [("export", ["t.orders*"])]),
                    ("in.payments", [("export", ["t.payments*"])]),
                ],
            )
        ],
    )


def test_a_cycle_ends() -> None:
    graph = LineageGraph(
        [Edge("a2b", "a", "in"), Edge("a2b", "b", "out"), Edge("b2a", "b", "in"), Edge("b2a", "a", "out")],
        [Flow("a2b", "a", "b"), Flow("b2a", "b", "a")],
    )
    assert _shape(graph.tree("a", "downstream", 10)) == ("a", [("a2b", [("b", [("b2a", ["a*"])])])])


def test_a_dataset_no_job_touches_is_a_bare_root() -> None:
    tree = _graph().tree("lonely", "downstream", 3)
    assert tree.children == []
    assert not tree.seen
    assert not tree.truncated


def test_near_misses_suggest_close_and_containing_names() -> None:
    known = ["vn.shop.orders", "sg.shop.orders", "vn.shop.order_lines", "bronze.vn__shop__orders", "models.x"]
    assert near_misses("vn.shop.order", known)[0] == "vn.shop.orders"
    assert "bronze.vn__shop__orders" in near_misses("vn__shop", known)
    assert near_misses("zzz", known) == []
