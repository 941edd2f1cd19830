"""Row validation of one input unit (SPEC §2 Import semantics), with pandera on a polars frame.

Every value arrives as text. The checks here are the ones a row can fail on its own: required values,
formats (dates, amounts with at most 2 decimals, unit prices and quantities with at most 6),
`Quantity > 0`, prices ≥ 0, ISO currency codes, a known `Revenue_Rule`, `Service_End_Date ≥
Service_Start_Date`, and unique keys within the unit. Checks against the warehouse (known customers,
products and order lines, one currency per sales order) are SQL, in sql/ingest/checks_<type>.sql.

Each check is a `Rule`: a polars expression and the reason a failing row gets. The pandera schema is built
from the rules. Most files are clean, and pandera evaluates one check at a time, so `row_errors` first
evaluates every rule of the unit in one vectorized pass and asks pandera for the failing rows (row,
value, reason) only of the columns where some rule failed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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
DATE_ORDER = (("Service_Start_Date", "Service_End_Date"),)

# Formats allow a sign so that a negative value gets the reason that matters ("must be greater than 0").
_PATTERNS = {
    MONEY: (r"^-?\d{1,15}(\.\d{1,2})?$", "must be an amount with at most 2 decimals, written with '.' (e.g. 1250.00)"),
    UNIT_PRICE: (r"^-?\d{1,12}(\.\d{1,6})?$", "must be a price with at most 6 decimals, written with '.'"),
    QUANTITY: (r"^-?\d{1,12}(\.\d{1,6})?$", "must be a quantity with at most 6 decimals, written with '.'"),
    RATE: (r"^-?\d{1,12}(\.\d{1,12})?$", "must be an exchange rate with at most 12 decimals, written with '.'"),
}


@dataclass(frozen=True)
class Rule:
    """One check of a column: `test` maps the column to True for a valid value (null: not checked, as
    pandera's ignore_na), `error` is the reason a failing row gets."""

    test: Callable[[pl.Expr], pl.Expr]
    error: str

    def check(self) -> pa.Check:
        return pa.Check(lambda data: data.lazyframe.select(self.test(pl.col(data.key))), error=self.error)

    def passes(self, col: pl.Expr) -> pl.Expr:
        """Whether every value passes, as pandera decides it (a null outcome is a pass)."""
        outcome = self.test(col)
        return (outcome | outcome.is_null()).all()


def _valid_date(col: pl.Expr) -> pl.Expr:
    return col.is_null() | (col.str.contains(r"^\d{4}-\d{2}-\d{2}$") & _as_date(col).is_not_null())


def _as_date(col: pl.Expr) -> pl.Expr:
    return col.str.to_date("%Y-%m-%d", strict=False)


def _positive(col: pl.Expr) -> pl.Expr:
    return col.is_null() | (~col.str.starts_with("-") & col.str.contains(r"[1-9]"))


def _not_negative(col: pl.Expr) -> pl.Expr:
    return col.is_null() | ~col.str.starts_with("-") | ~col.str.contains(r"[1-9]")


def _matches(pattern: str) -> Callable[[pl.Expr], pl.Expr]:
    return lambda col: col.str.contains(pattern)


def _one_of(allowed: list[str]) -> Callable[[pl.Expr], pl.Expr]:
    return lambda col: col.is_in(allowed)


def _rules(kind: str) -> list[Rule]:
    if kind == DATE:
        return [Rule(_valid_date, "must be a real date written YYYY-MM-DD")]
    if kind in _PATTERNS:
        pattern, message = _PATTERNS[kind]
        rules = [Rule(_matches(pattern), message)]
        if kind in (QUANTITY, RATE):
            rules.append(Rule(_positive, "must be greater than 0"))
        if kind == UNIT_PRICE:
            rules.append(Rule(_not_negative, "must be 0 or more (prices cannot be negative)"))
        return rules
    if kind == CURRENCY:
        return [Rule(_one_of(sorted(ISO_4217)), "must be an ISO 4217 currency code such as USD or EUR")]
    if kind == RULE:
        return [Rule(_one_of(list(REVENUE_RULES)), "must be one of " + ", ".join(REVENUE_RULES))]
    if kind == BOOL:
        return [Rule(_one_of(["true", "false"]), "must be true or false")]
    return []


def rules_for(ft: FileType) -> dict[str, list[Rule]]:
    """The rules of each column of a file type."""
    rules = {c.name: _rules(c.kind) for c in ft.columns}
    if ft.name == "account_mappings":
        rules["Account_Type"] = [Rule(_one_of(list(ACCOUNT_TYPES)), "must be one of " + ", ".join(ACCOUNT_TYPES))]
    return rules


def schema_for(ft: FileType, columns: list[str] | None = None) -> pa.DataFrameSchema:
    """The pandera schema of a file type (of only `columns`, when given)."""
    rules = rules_for(ft)
    return pa.DataFrameSchema(
        {
            c.name: pa.Column(pl.String, checks=[r.check() for r in rules[c.name]], nullable=not c.required, required=True)
            for c in ft.columns
            if columns is None or c.name in columns
        },
        name=ft.name,
        strict=False,
    )


def normalized(ft: FileType) -> list[pl.Expr]:
    """Each column trimmed, empty text as null, codes and booleans in the case the rules expect."""
    exprs = []
    for c in ft.columns:
        e = pl.col(c.name).cast(pl.String).str.strip_chars().replace("", None)
        if c.kind == CURRENCY:
            e = e.str.to_uppercase()
        elif c.kind in (RULE, BOOL):
            e = e.str.to_lowercase()
        exprs.append(e.alias(c.name))
    return exprs


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


def _date_orders(frame: pl.DataFrame) -> list[tuple[str, str]]:
    return [(s, e) for s, e in DATE_ORDER if s in frame.columns and e in frame.columns]


def _screen(ft: FileType, frame: pl.DataFrame) -> tuple[list[str], bool, bool]:
    """One vectorized pass over the unit: (the columns where pandera would report a problem, whether some
    service end date is before its start, whether some key is repeated)."""
    rules = rules_for(ft)
    unknown = [c.name for c in ft.columns if frame.schema.get(c.name) != pl.String]  # pandera says why
    flags: dict[str, pl.Expr] = {}
    for c in ft.columns:
        col = pl.col(c.name)
        tests = [r.passes(col) for r in rules[c.name]] + ([col.is_not_null().all()] if c.required else [])
        if tests and c.name not in unknown:
            flags[c.name] = pl.all_horizontal(tests)
    order = [(_as_date(pl.col(e)) < _as_date(pl.col(s))).any() for s, e in _date_orders(frame)]
    flags["_date_order"] = pl.any_horizontal(order) if order else pl.lit(False)
    # Equal keys have equal hashes, so distinct hashes prove the keys unique; a collision only means that
    # the exact check below runs and finds nothing.
    flags["_duplicate_key"] = pl.struct(list(ft.key)).hash().n_unique() < pl.len()
    result = frame.lazy().select(**flags).collect().row(0, named=True)
    failing = [c.name for c in ft.columns if c.name in unknown or (c.name in flags and not result[c.name])]
    return failing, bool(result["_date_order"]), bool(result["_duplicate_key"])


def row_errors(ft: FileType, frame: pl.DataFrame) -> pl.DataFrame:
    """Every problem a row has on its own, as (row_number, column_name, value, reason).

    `frame` holds the unit's text columns and `_row_number`, the row of each record in its file.
    """
    failing, misordered, duplicated = _screen(ft, frame)
    if not (failing or misordered or duplicated):
        return pl.DataFrame(schema=ERROR_COLUMNS)
    parts = []
    row_numbers = frame["_row_number"]
    values = frame.drop("_row_number")
    if failing:
        try:
            schema_for(ft, failing).validate(values, lazy=True)
        except pa.errors.SchemaErrors as exc:
            parts.append(_failure_rows(exc.failure_cases, row_numbers))
    rows = frame.rename({"_row_number": "_i"}).with_columns(pl.col("_i").cast(pl.Int64) - ROW_OFFSET)
    for start, end in _date_orders(frame) if misordered else ():
        s = _as_date(pl.col(start))
        e = _as_date(pl.col(end))
        parts.append(
            rows.filter(e < s).select(
                (pl.col("_i").cast(pl.Int64) + ROW_OFFSET).alias("row_number"),
                pl.lit(end).alias("column_name"),
                pl.col(end).alias("value"),
                (pl.lit("is before Service_Start_Date ") + pl.col(start)).alias("reason"),
            )
        )
    if duplicated:
        key = list(ft.key)
        parts.append(
            rows.filter(pl.struct(key).is_duplicated()).select(
                (pl.col("_i").cast(pl.Int64) + ROW_OFFSET).alias("row_number"),
                pl.lit(", ".join(key)).alias("column_name"),
                pl.concat_str([pl.col(k).fill_null("") for k in key], separator=" / ").alias("value"),
                pl.lit("the same key appears more than once in this file").alias("reason"),
            )
        )
    if not parts:
        return pl.DataFrame(schema=ERROR_COLUMNS)
    return pl.concat([p.cast(ERROR_COLUMNS) for p in parts]).unique().sort("row_number", "column_name")
