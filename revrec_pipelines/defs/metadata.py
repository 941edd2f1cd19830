"""Metadata a person can read in the UI: row counts, totals per period, previews, column schemas."""


import dagster as dg
import duckdb
import polars as pl

from revrec_pipelines.lib.engine import ROW_COUNTS

PREVIEW_ROWS = 10


def _markdown(frame: pl.DataFrame) -> str:
    if frame.height == 0:
        return "_no rows_"
    cols = frame.columns
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in frame.iter_rows():
        lines.append("| " + " | ".join("" if v is None else str(v) for v in row) + " |")
    return "\n".join(lines)


def markdown_table(con: duckdb.DuckDBPyConnection, query: str) -> dg.MetadataValue:
    return dg.MetadataValue.md(_markdown(con.sql(query).pl()))


def column_schema(con: duckdb.DuckDBPyConnection, table: str) -> dg.TableSchema:
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return dg.TableSchema(columns=[dg.TableColumn(name, dtype) for name, dtype in rows])


def table_metadata(
    con: duckdb.DuckDBPyConnection,
    table: str,
    *,
    preview_order: str | None = None,
    totals_by_period: str | None = None,
    extra: dict[str, object] | None = None,
) -> dict[str, object]:
    """Row count, column schema, a Markdown preview and (optionally) totals per period of `table`."""
    # a view's count comes from the rows it is assembled from where that is cheaper (lib/engine.py ROW_COUNTS)
    rows = con.execute(ROW_COUNTS.get(table, f"SELECT count(*) FROM {table}")).fetchall()[0][0]
    md: dict[str, object] = {
        "dagster/row_count": dg.MetadataValue.int(int(rows)),
        "dagster/column_schema": column_schema(con, table),
        "dagster/table_name": dg.MetadataValue.text(f"warehouse.main.{table}"),
    }
    order = f" ORDER BY {preview_order}" if preview_order else ""
    md["preview"] = markdown_table(con, f"SELECT * FROM {table}{order} LIMIT {PREVIEW_ROWS}")
    if totals_by_period:
        md["totals_by_period"] = markdown_table(con, totals_by_period)
    md.update(extra or {})
    return md
