"""Silver tables in Ibis on DuckDB: query the current state of the CDC tables with dataframes or SQL.

    con = silver_connection(catalog, ["shop.orders", "payments.payments"])
    orders = con.table("shop__orders")            # every region, a _region column
    orders.group_by("_region", "status").agg(n=orders.count()).to_pyarrow()
    con.raw_sql("SELECT status, count(*) AS n FROM shop__orders GROUP BY 1").fetchall()

Each dataset's live rows (delete markers left out, regions unified as :func:`read_silver` does)
are read through pyiceberg — so a local or S3 warehouse and any catalog work alike — and handed
to DuckDB as a temporary table named ``<database>__<table>``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyiceberg.catalog import Catalog

from shopops.lake.silver import list_datasets, read_silver

if TYPE_CHECKING:
    from ibis.backends.duckdb import Backend


def view_name(dataset: str) -> str:
    """``shop.orders`` -> ``shop__orders``."""
    return dataset.replace(".", "__")


def silver_connection(
    catalog: Catalog,
    datasets: list[str] | None = None,
    regions: list[str] | None = None,
    con: Backend | None = None,
) -> Backend:
    """An Ibis DuckDB connection (``con``, or a new in-memory one) holding one table per silver
    dataset (default: every dataset in the catalog), restricted to ``regions`` if given."""
    import ibis

    con = con if con is not None else ibis.duckdb.connect()
    for dataset in datasets if datasets is not None else list(list_datasets(catalog)):
        con.create_table(
            view_name(dataset), read_silver(catalog, dataset, regions), temp=True, overwrite=True
        )
    return con
