"""Metadata a person can read in the UI: row counts, totals per period, previews, column schemas."""


import dagster as dg
import duckdb
import polars as pl

from revrec_pipelines.lib.engine import ROW_COUNTS, ROWS_BY_PERIOD

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


def preview_frame(con: duckdb.DuckDBPyConnection, table: str, order: str | None, limit: int = PREVIEW_ROWS) -> pl.DataFrame:
    """The first `limit` rows of `table` in `order`. A view whose rows are keyed first by period (ROWS_BY_PERIOD)
    is read only through the first periods that hold that many rows: the rows of those periods come before all
    others in the order, so the first rows are the same, without assembling every period's rows to sort them
    (at a million lines, 1.7–3.6 s per view). If those periods hold fewer rows after all (a view that shows only
    some of the rows counted), the whole view is read."""
    order_by = f" ORDER BY {order}" if order else ""
    counts = ROWS_BY_PERIOD.get(table)
    if counts and order and order.split(",")[0].strip() == "Actg_Period":
        through = con.execute(
            f"SELECT min(Actg_Period) FROM (SELECT Actg_Period, sum(n) OVER (ORDER BY Actg_Period) AS upto "
            f"FROM ({counts})) WHERE upto >= {limit}"
        ).fetchall()[0][0]
        if through is not None:
            frame = con.sql(f"SELECT * FROM {table} WHERE Actg_Period <= {through}{order_by} LIMIT {limit}").pl()
            if frame.height == limit:
                return frame
    return con.sql(f"SELECT * FROM {table}{order_by} LIMIT {limit}").pl()


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
    rows: int | None = None,
) -> dict[str, object]:
    """Row count, column schema, a Markdown preview and (optionally) totals per period of `table`. `rows`: the
    count the caller already has (the engine's step counts its table), else it is counted here."""
    if rows is None:
        # a view's count comes from the rows it is assembled from where that is cheaper (lib/engine.py ROW_COUNTS)
        rows = con.execute(ROW_COUNTS.get(table, f"SELECT count(*) FROM {table}")).fetchall()[0][0]
    md: dict[str, object] = {
        "dagster/row_count": dg.MetadataValue.int(int(rows)),
        "dagster/column_schema": column_schema(con, table),
        "dagster/table_name": dg.MetadataValue.text(f"warehouse.main.{table}"),
    }
    md["preview"] = dg.MetadataValue.md(_markdown(preview_frame(con, table, preview_order)))
    if totals_by_period:
        md["totals_by_period"] = markdown_table(con, totals_by_period)
    md.update(extra or {})
    return md
