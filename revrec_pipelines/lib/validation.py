"""Row validation of one input unit (SPEC §2 Import semantics), with pandera on a polars frame.

Every value arrives as text. The checks here are the ones a row can fail on its own: required values,
formats (dates, amounts with at most 2 decimals, unit prices and quantities with at most 6),
`Quantity > 0`, prices ≥ 0, ISO currency codes, a known `Revenue_Rule`, `Service_End_Date ≥
Service_Start_Date`, and unique keys within the unit. Checks against the warehouse (known customers,
products and order lines, one currency per sales order) are SQL, in sql/ingest/reference_checks.sql.
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from revrec_pipelines.lib.currencies import ISO_4217
from revrec_pipelines.lib.filetypes import (
    ACCOUNT_TYPES,
    BOOL,
    CURRENCY,
    DATE,
    MONEY,
    QUANTITY,
    RATE,
    REVENUE_RULES,
    RULE,
    UNIT_PRICE,
    FileType,
)

ERROR_COLUMNS = {"row_number": pl.Int64, "column_name": pl.String, "value": pl.String, "reason": pl.String}
ROW_OFFSET = 2  # the header is row 1 of the file; the first data row is row 2

# Formats allow a sign so that a negative value gets the reason that matters ("must be greater than 0").
_PATTERNS = {
    MONEY: (r"^-?\d{1,15}(\.\d{1,2})?$", "must be an amount with at most 2 decimals, written with '.' (e.g. 1250.00)"),
    UNIT_PRICE: (r"^-?\d{1,12}(\.\d{1,6})?$", "must be a price with at most 6 decimals, written with '.'"),
    QUANTITY: (r"^-?\d{1,12}(\.\d{1,6})?$", "must be a quantity with at most 6 decimals, written with '.'"),
    RATE: (r"^-?\d{1,12}(\.\d{1,12})?$", "must be an exchange rate with at most 12 decimals, written with '.'"),
}


def _valid_date(data: pa.PolarsData) -> pl.LazyFrame:
    col = pl.col(data.key)
    return data.lazyframe.select(
        col.is_null() | (col.str.contains(r"^\d{4}-\d{2}-\d{2}$") & col.str.to_date("%Y-%m-%d", strict=False).is_not_null())
    )


def _positive(data: pa.PolarsData) -> pl.LazyFrame:
    col = pl.col(data.key)
    return data.lazyframe.select(col.is_null() | (~col.str.starts_with("-") & col.str.contains(r"[1-9]")))


def _not_negative(data: pa.PolarsData) -> pl.LazyFrame:
    col = pl.col(data.key)
    return data.lazyframe.select(col.is_null() | ~col.str.starts_with("-") | ~col.str.contains(r"[1-9]"))


def _checks(kind: str) -> list[pa.Check]:
    if kind == DATE:
        return [pa.Check(_valid_date, error="must be a real date written YYYY-MM-DD")]
    if kind in _PATTERNS:
        pattern, message = _PATTERNS[kind]
        checks = [pa.Check.str_matches(pattern, error=message)]
        if kind in (QUANTITY, RATE):
            checks.append(pa.Check(_positive, error="must be greater than 0"))
        if kind == UNIT_PRICE:
            checks.append(pa.Check(_not_negative, error="must be 0 or more (prices cannot be negative)"))
        return checks
    if kind == CURRENCY:
        return [pa.Check.isin(sorted(ISO_4217), error="must be an ISO 4217 currency code such as USD or EUR")]
    if kind == RULE:
        return [pa.Check.isin(list(REVENUE_RULES), error="must be one of " + ", ".join(REVENUE_RULES))]
    if kind == BOOL:
        return [pa.Check.isin(["true", "false"], error="must be true or false")]
    return []


def schema_for(ft: FileType) -> pa.DataFrameSchema:
    columns = {}
    for c in ft.columns:
        checks = _checks(c.kind)
        if ft.name == "account_mappings" and c.name == "Account_Type":
            checks = [pa.Check.isin(list(ACCOUNT_TYPES), error="must be one of " + ", ".join(ACCOUNT_TYPES))]
        columns[c.name] = pa.Column(pl.String, checks=checks, nullable=not c.required, required=True)
    return pa.DataFrameSchema(columns, name=ft.name, strict=False)


def normalize(ft: FileType, frame: pl.DataFrame) -> pl.DataFrame:
    """Trim every value, turn empty text into null, and normalize case of codes and booleans."""
    exprs = []
    for name in frame.columns:
        e = pl.col(name).cast(pl.String).str.strip_chars()
        e = pl.when(e == "").then(None).otherwise(e)
        kind = next((c.kind for c in ft.columns if c.name == name), None)
        if kind == CURRENCY:
            e = e.str.to_uppercase()
        elif kind in (RULE, BOOL):
            e = e.str.to_lowercase()
        exprs.append(e.alias(name))
    return frame.select(exprs)


def _failure_rows(failures: pl.DataFrame, row_numbers: pl.Series) -> pl.DataFrame:
    reason = (
        pl.when(pl.col("check") == "not_nullable")
        .then(pl.lit("is required but empty"))
        .otherwise(pl.col("check"))
    )
    lookup = pl.DataFrame({"index": pl.Series(range(len(row_numbers)), dtype=pl.Int64), "row_number": row_numbers.cast(pl.Int64)})
    failures = failures.filter(pl.col("index").is_not_null()).with_columns(pl.col("index").cast(pl.Int64)).join(lookup, on="index")
    return failures.select(
        pl.col("row_number"),
        pl.col("column").alias("column_name"),
        pl.col("failure_case").cast(pl.String).alias("value"),
        reason.alias("reason"),
    )


def row_errors(ft: FileType, frame: pl.DataFrame) -> pl.DataFrame:
    """Every problem a row has on its own, as (row_number, column_name, value, reason).

    `frame` holds the unit's text columns and `_row_number`, the row of each record in its file.
    """
    parts = []
    row_numbers = frame["_row_number"]
    values = frame.drop("_row_number")
    try:
        schema_for(ft).validate(values, lazy=True)
    except pa.errors.SchemaErrors as exc:
        parts.append(_failure_rows(exc.failure_cases, row_numbers))
    rows = frame.rename({"_row_number": "_i"}).with_columns(pl.col("_i").cast(pl.Int64) - ROW_OFFSET)
    for start, end in (("Service_Start_Date", "Service_End_Date"),):
        if start in frame.columns and end in frame.columns:
            s = pl.col(start).str.to_date("%Y-%m-%d", strict=False)
            e = pl.col(end).str.to_date("%Y-%m-%d", strict=False)
            parts.append(
                rows.filter(e < s).select(
                    (pl.col("_i").cast(pl.Int64) + ROW_OFFSET).alias("row_number"),
                    pl.lit(end).alias("column_name"),
                    pl.col(end).alias("value"),
                    (pl.lit("is before Service_Start_Date ") + pl.col(start)).alias("reason"),
                )
            )
    key = list(ft.key)
    dupes = rows.filter(pl.struct(key).is_duplicated())
    if dupes.height:
        parts.append(
            dupes.select(
                (pl.col("_i").cast(pl.Int64) + ROW_OFFSET).alias("row_number"),
                pl.lit(", ".join(key)).alias("column_name"),
                pl.concat_str([pl.col(k).fill_null("") for k in key], separator=" / ").alias("value"),
                pl.lit("the same key appears more than once in this file").alias("reason"),
            )
        )
    if not parts:
        return pl.DataFrame(schema=ERROR_COLUMNS)
    return pl.concat([p.cast(ERROR_COLUMNS) for p in parts]).unique().sort("row_number", "column_name")
