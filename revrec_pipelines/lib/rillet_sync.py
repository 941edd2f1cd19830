"""Rillet sync (SPEC §3): pull Rillet objects into raw tables, incrementally, and map them into the model.

Plain Python, no Dagster. One call of `sync()` is one all-or-nothing sync:

1. **Read** every object type from Rillet (`lib/rillet.py` does paging, pacing, retries). Endpoints
   that take `updated.gt` are asked for what changed since the last successful sync (minus a small
   overlap, see `DEFAULT_OVERLAP`); the others are read in full. Nothing is written while reading.
2. In **one transaction**: store the objects in `rillet_<type>` (an object identical to the stored
   version is not written), map the new and changed ones — and the documents that depend on them — to
   SPEC §2 units (customers, products, subsidiaries, sales_orders, invoices), and apply each unit with
   `importer.apply_unit(..., source_kind="rillet")`: the same validation, reference checks and
   upsert-with-history as files, one `import_batches` row per unit. Then advance the cursors.
3. Any failure — Rillet unreachable past the retry budget, an object Rillet refuses or that does not
   validate — rolls everything back and raises `RilletSyncError`, naming the Rillet object, field and
   reason. The cursors stay where they were, so the next sync reads the same objects again.

How each Rillet field becomes a model column, and why, is in docs/rillet-mapping.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import duckdb
import polars as pl

from revrec_pipelines.lib import importer, sql
from revrec_pipelines.lib.filetypes import FILE_TYPES
from revrec_pipelines.lib.reader import Unit
from revrec_pipelines.lib.rillet import ENDPOINTS, RilletError
from revrec_pipelines.lib.validation import ROW_OFFSET
from revrec_pipelines.lib.warehouse import transaction

log = logging.getLogger(__name__)

SCHEMA_FILE = "schema/rillet"
# updated.gt is sent this much before the greatest updated_at already read, so an object committed a
# moment after a listing with a slightly older timestamp is not skipped; what is read twice is
# recognised as unchanged and writes nothing.
DEFAULT_OVERLAP = timedelta(minutes=1)
OPEN_ENDED_MONTHS = 12  # the horizon given to a contract item without an end (docs/rillet-mapping.md)
MAX_PROBLEMS_SHOWN = 20
CENT = Decimal("0.01")
MICRO = Decimal("0.000001")
PATTERN_RULES = {"DAILY": "ratable_daily", "EVEN_PERIOD": "ratable_monthly"}
UNIT_ORDER = ("customers", "products", "subsidiaries", "sales_orders", "invoices")  # SPEC §2 order


class RilletSyncError(Exception):
    """The sync failed and changed nothing. `problems` holds one line per problem found."""

    def __init__(self, message: str, problems: Iterable[str] = ()):
        super().__init__(message)
        self.problems = list(problems)


@dataclass(frozen=True)
class ObjectType:
    name: str  # rillet_<name> is its raw table
    path: str  # the list endpoint
    label: str  # singular, for messages
    read: Callable[[Any, str | None], Iterable[dict[str, Any]]]

    @property
    def table(self) -> str:
        return f"rillet_{self.name}"

    @property
    def incremental(self) -> bool:
        return ENDPOINTS[self.path].incremental


OBJECT_TYPES: tuple[ObjectType, ...] = (
    ObjectType("accounts", "/accounts", "account", lambda c, gt: c.iter_accounts(updated_gt=gt)),
    ObjectType("subsidiaries", "/subsidiaries", "subsidiary", lambda c, _gt: c.iter_subsidiaries()),
    ObjectType("customers", "/customers", "customer", lambda c, gt: c.iter_customers(updated_gt=gt)),
    ObjectType("products", "/products", "product", lambda c, _gt: c.iter_products()),
    ObjectType("contracts", "/contracts", "contract", lambda c, _gt: c.iter_contracts()),
    ObjectType("invoices", "/invoices", "invoice", lambda c, gt: c.iter_invoices(updated_gt=gt)),
    ObjectType(
        "credit_memos", "/credit-memos", "credit memo", lambda c, gt: c.iter_credit_memos(updated_gt=gt)
    ),
    ObjectType(
        "invoice_payments",
        "/invoice-payments",
        "invoice payment",
        lambda c, gt: c.iter_invoice_payments(updated_gt=gt),
    ),
    ObjectType("fields", "/fields", "field", lambda c, gt: c.iter_fields(updated_gt=gt)),
)


# -- the report --------------------------------------------------------------------------------------


@dataclass
class EndpointResult:
    """What one endpoint answered in one sync."""

    endpoint: str
    incremental: bool
    updated_gt: str | None  # the updated.gt sent (None: read in full)
    read: int = 0
    new: int = 0  # objects never stored before
    changed: int = 0  # objects different from their stored version
    complete: bool = True  # False: Rillet repeated a pagination cursor and the listing stopped early
    cursor: str | None = None  # the stored cursor (greatest updated_at read) after the sync


@dataclass
class UnitResult:
    """One model unit applied (one import_batches row)."""

    file_type: str
    batch_id: int
    status: str  # applied | unchanged
    rows_read: int
    rows_new: int
    rows_changed: int
    rows_unchanged: int


@dataclass
class SyncReport:
    sync_id: int
    base_url: str
    full: bool
    endpoints: list[EndpointResult] = field(default_factory=list)
    units: list[UnitResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def objects_read(self) -> int:
        return sum(e.read for e in self.endpoints)

    @property
    def objects_changed(self) -> int:
        return sum(e.new + e.changed for e in self.endpoints)

    @property
    def rows_new(self) -> int:
        return sum(u.rows_new for u in self.units)

    @property
    def rows_changed(self) -> int:
        return sum(u.rows_changed for u in self.units)

    def summary(self) -> str:
        lines = [
            f"Rillet sync {self.sync_id} from {self.base_url}: {self.objects_read} object(s) read, "
            f"{self.objects_changed} new or changed; {self.rows_new} new and {self.rows_changed} changed row(s) applied"
        ]
        lines += [
            f"- {u.file_type}: batch {u.batch_id}, {u.rows_new} new, {u.rows_changed} changed, "
            f"{u.rows_unchanged} unchanged"
            for u in self.units
        ]
        lines += [f"! {w}" for w in self.warnings]
        return "\n".join(lines)


# -- the sync ----------------------------------------------------------------------------------------


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the rillet_* tables if missing (idempotent)."""
    sql.run_file(con, SCHEMA_FILE)


def sync(
    con: duckdb.DuckDBPyConnection,
    client: Any,
    *,
    home_currency: str = "USD",
    full: bool = False,
    run_id: str | None = None,
    overlap: timedelta = DEFAULT_OVERLAP,
    progress: Callable[[str], None] = log.info,
) -> SyncReport:
    """Pull Rillet objects into rillet_* and apply them to the model's raw tables; all or nothing.

    `client` is a `RilletClient` (anything with its `iter_*` methods and `base_url`). `full=True`
    ignores the cursors and re-maps every stored object (after a change of the mapping rules, or to
    pick up subsidiaries mapped later in a subsidiaries file). `home_currency` is only used to warn
    about Rillet lines whose currency has no rate to it yet. Raises `RilletSyncError`.
    """
    ensure_schema(con)
    started = _utc_now()
    base_url = client.base_url
    states = _load_states(con, base_url)
    read: dict[str, list[dict[str, Any]]] = {}
    endpoints: dict[str, EndpointResult] = {}
    for ot in OBJECT_TYPES:
        previous = None if full else states.get(ot.path)
        result = EndpointResult(ot.path, ot.incremental, None, cursor=previous)
        if ot.incremental and previous:
            result.updated_gt = _iso(_parse_ts(previous) - overlap)
        try:
            with _repeated_cursor_watch(ot.path) as repeated:
                objects = _dedupe(ot.read(client, result.updated_gt))
        except RilletError as exc:
            raise RilletSyncError(
                f"Rillet sync failed reading GET {ot.path}: {exc}. Nothing was applied and the sync "
                "cursors were not advanced: the next sync reads the same objects again."
            ) from exc
        result.read = len(objects)
        result.complete = not repeated
        read[ot.name], endpoints[ot.name] = objects, result
        since = f" updated after {result.updated_gt}" if result.updated_gt else " (full)"
        progress(
            f"GET {ot.path}{since}: {len(objects)} object(s)"
            + ("" if result.complete else ", listing incomplete")
        )

    report = SyncReport(0, base_url, full, endpoints=list(endpoints.values()))
    with transaction(con):
        report.sync_id = con.execute("SELECT nextval('rillet_sync_id_seq')").fetchall()[0][0]
        _apply(con, report, read, endpoints, states, home_currency, run_id, started, progress)
    progress(report.summary())
    return report


def _apply(
    con: duckdb.DuckDBPyConnection,
    report: SyncReport,
    read: Mapping[str, list[dict[str, Any]]],
    endpoints: Mapping[str, EndpointResult],
    states: Mapping[str, str],
    home_currency: str,
    run_id: str | None,
    started: datetime,
    progress: Callable[[str], None],
) -> None:
    changed: dict[str, set[str]] = {}
    for ot in OBJECT_TYPES:
        changed[ot.name] = _store(con, ot, read[ot.name], endpoints[ot.name], report.sync_id, started)
        res = endpoints[ot.name]
        if not res.complete:
            report.warnings.append(
                f"Rillet repeated a pagination cursor on GET {ot.path}: the listing stopped after "
                f"{res.read} object(s). What was read is applied; the {ot.path} cursor was not advanced, "
                "so the next sync asks for the rest again."
            )
    mapper = _Mapper(con, report)
    units = mapper.units(changed)
    if mapper.problems:
        raise _problems_error(mapper.problems, "mapping Rillet objects")
    for ft_name in UNIT_ORDER:
        rows = units.get(ft_name)
        if rows:
            report.units.append(_apply_unit(con, report, ft_name, rows, run_id, started))
    report.warnings.extend(mapper.warnings)
    report.warnings.extend(_rate_warnings(con, report, home_currency))
    _save_states(con, report, endpoints, states)
    con.execute(
        "INSERT INTO rillet_syncs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            report.sync_id,
            run_id,
            report.base_url,
            report.full,
            started,
            _utc_now(),
            report.objects_read,
            report.objects_changed,
            report.rows_new,
            report.rows_changed,
            "\n".join(report.warnings) or None,
        ],
    )
    for u in report.units:
        progress(
            f"{u.file_type}: {u.rows_new} new, {u.rows_changed} changed, {u.rows_unchanged} unchanged row(s)"
        )


# -- reading -----------------------------------------------------------------------------------------


@contextmanager
def _repeated_cursor_watch(path: str) -> Iterator[list[str]]:
    """Notice the client's "repeated the cursor" warning for `path` (it stops paging and returns).

    The client reports a repeated cursor only in its log; a listing cut short must not advance the
    cursor, or the objects it did not reach would never be read.
    """
    seen: list[str] = []
    client_log = logging.getLogger("revrec_pipelines.lib.rillet")

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "repeated the cursor" in str(record.msg) and record.args and record.args[0] == path:
                seen.append(path)

    handler = Watch(logging.WARNING)
    level = client_log.level
    client_log.addHandler(handler)
    if level > logging.WARNING:
        client_log.setLevel(logging.WARNING)
    try:
        yield seen
    finally:
        client_log.removeHandler(handler)
        client_log.setLevel(level)


def _dedupe(objects: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One object per id: pages can overlap when objects change while they are read."""
    by_id: dict[str, dict[str, Any]] = {}
    for obj in objects:
        key = str(obj.get("id"))
        old = by_id.get(key)
        if old is None or str(obj.get("updated_at") or "") >= str(old.get("updated_at") or ""):
            by_id[key] = obj
    return list(by_id.values())


# -- raw tables and cursors --------------------------------------------------------------------------


def _canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _store(
    con: duckdb.DuckDBPyConnection,
    ot: ObjectType,
    objects: list[dict[str, Any]],
    result: EndpointResult,
    sync_id: int,
    now: datetime,
) -> set[str]:
    """Upsert the objects into rillet_<type>; returns the ids of the new and changed ones."""
    if not objects:
        return set()
    texts = [_canonical_json(o) for o in objects]
    frame = pl.DataFrame(
        {
            "id": [str(o.get("id")) for o in objects],
            "updated_at": [o.get("updated_at") for o in objects],
            "object": texts,
            "_object_hash": [hashlib.md5(t.encode()).hexdigest() for t in texts],
        },
        schema={"id": pl.String, "updated_at": pl.String, "object": pl.String, "_object_hash": pl.String},
    )
    con.register("rillet_fetched_frame", frame.to_arrow())
    try:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE rillet_changed AS "
            "SELECT f.*, r.id IS NULL AS is_new FROM rillet_fetched_frame f "
            f"LEFT JOIN {ot.table} r USING (id) WHERE r.id IS NULL OR r._object_hash <> f._object_hash"
        )
        con.execute(f"DELETE FROM {ot.table} WHERE id IN (SELECT id FROM rillet_changed)")
        con.execute(
            f"INSERT INTO {ot.table} SELECT id, try_cast(updated_at AS TIMESTAMPTZ), CAST(object AS JSON), "
            "_object_hash, ?, ?, ? FROM rillet_changed",
            [now, sync_id, sync_id],
        )
        con.execute(
            f"UPDATE {ot.table} SET _last_seen_sync_id = ? WHERE id IN (SELECT id FROM rillet_fetched_frame)",
            [sync_id],
        )
    finally:
        con.unregister("rillet_fetched_frame")
    rows = con.execute("SELECT id, is_new FROM rillet_changed").fetchall()
    result.new = sum(1 for _, is_new in rows if is_new)
    result.changed = len(rows) - result.new
    if ot.incremental and result.complete:
        stamps = [o["updated_at"] for o in objects if o.get("updated_at")]
        if result.cursor:
            stamps.append(result.cursor)
        if stamps:
            result.cursor = max(stamps, key=_parse_ts)
    return {r[0] for r in rows}


def _load_states(con: duckdb.DuckDBPyConnection, base_url: str) -> dict[str, str]:
    """The cursor of every incremental endpoint last synced from this base URL."""
    rows = con.execute(
        "SELECT endpoint, last_updated_at FROM rillet_sync_state WHERE base_url = ? AND last_updated_at IS NOT NULL",
        [base_url],
    ).fetchall()
    return dict(rows)


def _save_states(
    con: duckdb.DuckDBPyConnection,
    report: SyncReport,
    endpoints: Mapping[str, EndpointResult],
    states: Mapping[str, str],
) -> None:
    now = _utc_now()
    for res in endpoints.values():
        cursor = res.cursor if res.incremental else None
        if res.incremental and not res.complete:
            cursor = states.get(res.endpoint)
        con.execute("DELETE FROM rillet_sync_state WHERE endpoint = ?", [res.endpoint])
        con.execute(
            "INSERT INTO rillet_sync_state VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                res.endpoint,
                report.base_url,
                res.incremental,
                cursor,
                now,
                report.sync_id,
                res.complete,
                res.read,
                res.new + res.changed,
            ],
        )


# -- mapping -----------------------------------------------------------------------------------------


@dataclass
class _Row:
    """One model row built from a Rillet object, with where it came from for error messages."""

    values: dict[str, str | None]  # SPEC column → text
    origin: str  # "contract 'Globex 2025' (id …) item 2 (id …)"
    sources: Mapping[str, str]  # SPEC column → the Rillet field it came from
    extra: dict[str, Any]  # kept in _extra: the Rillet ids behind the row


CUSTOMER_SOURCES = {
    "Customer_Id": "id",
    "Customer_Name": "name",
    "Email": "emails[].email",
    "Country": "address.country",
    "Subsidiary_Id": "subsidiary_id of the customer's contracts and invoices",
}
PRODUCT_SOURCES = {
    "Product_Id": "id",
    "Product_Code": "external_references[0].id, else name",
    "Product_Name": "name",
    "Revenue_Rule": "revenue_pattern / price.type",
}
SUBSIDIARY_SOURCES = {"Subsidiary_Id": "id", "Subsidiary_Name": "trade_name", "Rillet_Subsidiary_Id": "id"}
SALES_ORDER_SOURCES = {
    "Sales_Order_Id": "id",
    "Sales_Order_Item_Id": "items[].id",
    "Customer_Id": "customer_id",
    "Product_Id": "items[].product_id",
    "Order_Date": "close_date, else start_date",
    "Quantity": "items[].quantity",
    "Sale_Price": "items[].total_value / items[].quantity",
    "Service_Start_Date": "items[].start_date, else the contract's start_date",
    "Service_End_Date": "items[].end_date, else the contract's end_date",
    "Currency": "items[].price currency",
    "Subsidiary_Id": "subsidiary_id",
    "IsActive": "status",
    "Revenue_Rule": "items[].revenue_pattern / items[].price.type",
}
INVOICE_SOURCES = {
    "Invoice_Number": "invoice_number",
    "Invoice_Line": "position in items[]",
    "Billing_Date": "invoice_date",
    "Billing_Amount": "items[].total_amount",
    "Currency": "items[].total_amount.currency",
    "Sales_Order_Id": "contract_id",
    "Sales_Order_Item_Id": "the contract item with the item's product_id",
    "Customer_Id": "customer_id",
    "Product_Id": "items[].product_id",
    "Service_Start_Date": "items[].revenue.period.start",
    "Service_End_Date": "items[].revenue.period.end",
}
CREDIT_MEMO_SOURCES = {
    **INVOICE_SOURCES,
    "Invoice_Number": "credit_memo_number",
    "Billing_Date": "credit_memo_date",
    "Billing_Amount": "-items[].net_amount",
    "Currency": "items[].net_amount.currency",
    "Sales_Order_Id": "applications[].invoice_id → the invoice's contract_id",
    "Sales_Order_Item_Id": "applications[].invoice_id → the invoice line of the same product",
}


class _Mapper:
    """Builds the model rows of the objects a sync must (re-)apply; collects problems and warnings."""

    def __init__(self, con: duckdb.DuckDBPyConnection, report: SyncReport):
        self.con = con
        self.full = report.full
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self._contracts: dict[str, dict[str, Any]] = {}
        self._invoices: dict[str, dict[str, Any]] = {}
        self._subsidiary_ids: dict[str, str] | None = None
        self._product_rules: dict[str, str] | None = None

    # which objects
    def units(self, changed: Mapping[str, set[str]]) -> dict[str, list[_Row]]:
        def pick(name: str) -> dict[str, dict[str, Any]]:
            return self._objects(name, None if self.full else changed[name])

        contracts = pick("contracts")
        invoices = pick("invoices")
        if not self.full and contracts:
            invoices.update(self._objects_where("invoices", "object->>'contract_id'", contracts))
        memos = pick("credit_memos")
        if not self.full and invoices:
            memos.update(self._memos_applied_to(invoices))
        self._preload(contracts, invoices, memos)
        documents = [*contracts.values(), *invoices.values(), *memos.values()]
        customers = pick("customers")
        customers.update(self._customers_needing_subsidiary(documents, customers))
        products = pick("products")
        subsidiaries = pick("subsidiaries")
        return {
            "customers": self._customers(customers),
            "products": self._products(products),
            "subsidiaries": self._subsidiaries(subsidiaries),
            "sales_orders": [row for c in contracts.values() for row in self._contract_lines(c)],
            "invoices": [
                *(row for i in invoices.values() for row in self._invoice_lines(i)),
                *(row for m in memos.values() for row in self._credit_memo_lines(m)),
                *self._vanished_lines([*invoices, *memos]),
            ],
        }

    def _objects(self, name: str, ids: Iterable[str] | None) -> dict[str, dict[str, Any]]:
        query = f"SELECT id, CAST(object AS VARCHAR) FROM rillet_{name}"
        params: list[Any] = []
        if ids is not None:
            wanted = sorted(set(ids))
            if not wanted:
                return {}
            query += " WHERE list_contains(?, id)"
            params.append(wanted)
        return {i: json.loads(o) for i, o in self.con.execute(query + " ORDER BY id", params).fetchall()}

    def _objects_where(self, name: str, expr: str, values: Iterable[str]) -> dict[str, dict[str, Any]]:
        query = f"SELECT id, CAST(object AS VARCHAR) FROM rillet_{name} WHERE list_contains(?, {expr}) ORDER BY id"
        return {i: json.loads(o) for i, o in self.con.execute(query, [sorted(values)]).fetchall()}

    def _memos_applied_to(self, invoices: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        query = (
            "SELECT DISTINCT id, CAST(object AS VARCHAR) FROM rillet_credit_memos, "
            "unnest(json_extract_string(object, '$.applications[*].invoice_id')) AS a(invoice_id) "
            "WHERE list_contains(?, a.invoice_id)"
        )
        return {i: json.loads(o) for i, o in self.con.execute(query, [sorted(invoices)]).fetchall()}

    def _preload(
        self, contracts: Mapping[str, Any], invoices: Mapping[str, Any], memos: Mapping[str, Any]
    ) -> None:
        """Load, in two queries, the invoices credit memos are applied to and the contracts invoices bill."""
        applied = {
            str(a["invoice_id"])
            for m in memos.values()
            for a in m.get("applications") or []
            if a.get("invoice_id")
        }
        self._invoices = {**self._objects("invoices", applied - set(invoices)), **invoices}
        referenced = {str(i["contract_id"]) for i in self._invoices.values() if i.get("contract_id")}
        self._contracts = {**self._objects("contracts", referenced - set(contracts)), **contracts}

    def _current(
        self, table: str, key: str, keys: Iterable[str], columns: Iterable[str]
    ) -> dict[str, dict[str, Any]]:
        """Current values of `columns` in raw_<table> for `keys`, as text."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        cols = list(columns)
        select = ", ".join(f"CAST({c} AS VARCHAR) AS {c}" for c in cols)
        rows = self.con.execute(
            f"SELECT {key}, {select} FROM raw_{table} WHERE _is_current AND list_contains(?, {key})", [wanted]
        ).fetchall()
        return {r[0]: dict(zip(cols, r[1:], strict=True)) for r in rows}

    # dimensions
    def _customers_needing_subsidiary(
        self, documents: list[dict[str, Any]], mapped: Mapping[str, Any]
    ) -> dict[str, dict[str, Any]]:
        """Customers of this sync's documents whose current row has no subsidiary yet: re-map them."""
        ids = {str(d.get("customer_id")) for d in documents if d.get("customer_id")} - set(mapped)
        current = self._current("customers", "Customer_Id", ids, ["Subsidiary_Id"])
        return self._objects("customers", {i for i, v in current.items() if v["Subsidiary_Id"] is None})

    def _customer_subsidiaries(self, customer_ids: Iterable[str]) -> dict[str, list[str]]:
        wanted = sorted(set(customer_ids))
        if not wanted:
            return {}
        rows = self.con.execute(
            "SELECT customer_id, list(DISTINCT subsidiary_id ORDER BY subsidiary_id) FROM ("
            " SELECT object->>'customer_id' AS customer_id, object->>'subsidiary_id' AS subsidiary_id FROM rillet_contracts"
            " UNION ALL SELECT object->>'customer_id', object->>'subsidiary_id' FROM rillet_invoices"
            " UNION ALL SELECT object->>'customer_id', object->>'subsidiary_id' FROM rillet_credit_memos)"
            " WHERE subsidiary_id IS NOT NULL AND list_contains(?, customer_id) GROUP BY customer_id",
            [wanted],
        ).fetchall()
        return dict(rows)

    def _customers(self, customers: Mapping[str, dict[str, Any]]) -> list[_Row]:
        kept = self._current("customers", "Customer_Id", customers, ["Subsidiary_Id"])
        # Rillet customers have no subsidiary: a customer billed from one subsidiary only gets it, so
        # its invoice-as-contract lines post there rather than to the default entity.
        seen = self._customer_subsidiaries(
            c for c in customers if kept.get(c, {}).get("Subsidiary_Id") is None
        )
        rows = []
        for cid, c in customers.items():
            subsidiary = kept.get(cid, {}).get("Subsidiary_Id")
            if subsidiary is None and len(seen.get(cid, [])) == 1:
                subsidiary = self._subsidiary_id(seen[cid][0])
            emails = c.get("emails") or []
            main = next((e for e in emails if e.get("type") == "MAIN_SENDER"), emails[0] if emails else {})
            values = {
                "Customer_Id": cid,
                "Customer_Name": c.get("name"),
                "Subsidiary_Id": subsidiary,
                "Email": main.get("email"),
                "Country": (c.get("address") or {}).get("country"),
            }
            rows.append(
                _Row(
                    values,
                    f"customer {c.get('name')!r} (id {cid})",
                    CUSTOMER_SOURCES,
                    {"rillet_customer_id": cid},
                )
            )
        return rows

    def _products(self, products: Mapping[str, dict[str, Any]]) -> list[_Row]:
        kept = self._current("products", "Product_Id", products, ["SSP", "Class", "Location", "Department"])
        rows = []
        for pid, p in products.items():
            refs = p.get("external_references") or []
            own = kept.get(pid, {})
            values = {
                "Product_Id": pid,
                "Product_Code": str(refs[0]["id"]) if refs and refs[0].get("id") else p.get("name"),
                "Product_Name": p.get("name"),
                "Revenue_Rule": _rule(p.get("revenue_pattern"), p.get("price")),
                # Rillet has no SSP or posting dimensions on products: keep what a products file set
                "SSP": own.get("SSP"),
                "Class": own.get("Class"),
                "Location": own.get("Location"),
                "Department": own.get("Department"),
            }
            rows.append(
                _Row(
                    values,
                    f"product {p.get('name')!r} (id {pid})",
                    PRODUCT_SOURCES,
                    {"rillet_product_id": pid},
                )
            )
        return rows

    def _subsidiary_id(self, rillet_id: str | None) -> str | None:
        """Our Subsidiary_Id for a Rillet subsidiary: the subsidiaries row that maps to it, else its id."""
        if rillet_id is None:
            return None
        if self._subsidiary_ids is None:
            rows = self.con.execute(
                "SELECT Rillet_Subsidiary_Id, min(Subsidiary_Id) FROM raw_subsidiaries WHERE _is_current "
                "AND Rillet_Subsidiary_Id IS NOT NULL AND Subsidiary_Id <> Rillet_Subsidiary_Id GROUP BY ALL"
            ).fetchall()
            self._subsidiary_ids = dict(rows)
        return self._subsidiary_ids.get(rillet_id, rillet_id)

    def _subsidiaries(self, subsidiaries: Mapping[str, dict[str, Any]]) -> list[_Row]:
        # a subsidiary a subsidiaries file already maps one of ours to keeps that row as it is
        own = {sid: s for sid, s in subsidiaries.items() if self._subsidiary_id(sid) == sid}
        kept = self._current("subsidiaries", "Subsidiary_Id", own, ["Intacct_Location_Id"])
        return [
            _Row(
                {
                    "Subsidiary_Id": sid,
                    "Subsidiary_Name": s.get("trade_name"),
                    "Rillet_Subsidiary_Id": sid,
                    "Intacct_Location_Id": kept.get(sid, {}).get("Intacct_Location_Id"),
                },
                f"subsidiary {s.get('trade_name')!r} (id {sid})",
                SUBSIDIARY_SOURCES,
                {"rillet_subsidiary_id": sid},
            )
            for sid, s in own.items()
        ]

    # contracts
    def _contract_lines(self, c: dict[str, Any]) -> list[_Row]:
        cid = str(c.get("id"))
        items = c.get("items") or []
        rows = []
        for n, item in enumerate(items, 1):
            origin = f"contract {c.get('name')!r} (id {cid}) item {n} (id {item.get('id')})"
            try:
                rows.append(self._contract_line(c, item, items, origin))
            except _MappingProblem as exc:
                self.problems.append(f"{origin}: {exc}")
        return rows

    def _contract_line(
        self, c: dict[str, Any], item: dict[str, Any], items: list[dict[str, Any]], origin: str
    ) -> _Row:
        start = item.get("start_date") or c.get("start_date")
        end = item.get("end_date") or c.get("end_date")
        total = _decimal(item.get("total_value"), "total_value")
        quantity = _decimal_number(item.get("quantity"), "quantity")
        active = c.get("status") != "CANCELLED"
        extra: dict[str, Any] = {"rillet_contract_id": c.get("id"), "rillet_contract_item_id": item.get("id")}
        if end is None and start:
            end, total = self._open_ended_term(item, start, quantity, total, origin)
            extra["open_ended"] = True
        if item.get("status") == "AMENDED" and start and end:
            end, total, active = self._amended_term(item, items, start, end, total, active, origin)
        currency = _price_currency(item.get("price")) or (item.get("total_value") or {}).get("currency")
        value_currency = (item.get("total_value") or {}).get("currency")
        if currency and value_currency and currency != value_currency:
            raise _MappingProblem(f"the price is in {currency} but total_value in {value_currency}")
        sale_price = _unit_price(total, quantity)
        if quantity > 0 and _round_cents(quantity * sale_price) != total:
            # a term value that no 6-decimal unit price reproduces: book the value as one unit
            extra["rillet_quantity"] = _plain(quantity)
            quantity, sale_price = Decimal(1), total
        values = {
            "Sales_Order_Id": str(c.get("id")),
            "Sales_Order_Item_Id": item.get("id"),
            "Customer_Id": c.get("customer_id"),
            "Product_Id": item.get("product_id"),
            "Order_Date": c.get("close_date") or c.get("start_date"),
            "Quantity": _plain(quantity),
            "Sale_Price": _plain(sale_price),
            "Service_Start_Date": start,
            "Service_End_Date": end,
            "Currency": currency,
            "List_Price": None,
            "Subsidiary_Id": self._subsidiary_id(c.get("subsidiary_id")),
            "IsActive": "true" if active else "false",
            "Revenue_Rule": _rule(item.get("revenue_pattern"), item.get("price")),
        }
        return _Row(values, origin, SALES_ORDER_SOURCES, extra)

    def _open_ended_term(
        self, item: dict[str, Any], start: str, quantity: Decimal, total: Decimal, origin: str
    ) -> tuple[str, Decimal]:
        """An item with no end (nor a contract end): its first 12 months, in whole billing intervals."""
        price = item.get("price") or {}
        first = _date(start, "start_date")
        kind = price.get("type")
        if kind == "ONE_TIME":
            return start, total  # a one-time charge without a term is earned when it starts
        if kind != "FIXED_RECURRING":
            end = _add_months(first, OPEN_ENDED_MONTHS) - timedelta(days=1)
            return end.isoformat(), total
        interval = int(price.get("interval_months") or 1)
        intervals = math.ceil(OPEN_ENDED_MONTHS / interval)
        per_interval = _decimal(price.get("amount"), "price.amount") * quantity
        discount = item.get("discount") or {}
        if discount.get("type") == "PERCENTAGE" or "percentage_off" in discount:
            per_interval *= 1 - Decimal(str(discount.get("percentage_off", 0))) / 100
        elif discount.get("amount_off"):
            per_interval -= _decimal(discount.get("amount_off"), "discount.amount_off")
        value = _round_cents(per_interval) * intervals
        end = _add_months(first, intervals * interval) - timedelta(days=1)
        self.warnings.append(
            f"{origin} is open-ended: booked for {intervals * interval} months ({start} to {end}) at "
            f"{_plain(value)}; end it in Rillet and the next sync books the real term as a modification."
        )
        return end.isoformat(), value

    def _amended_term(
        self,
        item: dict[str, Any],
        items: list[dict[str, Any]],
        start: str,
        end: str,
        total: Decimal,
        active: bool,
        origin: str,
    ) -> tuple[str, Decimal, bool]:
        """An AMENDED item earns until the item amending it starts (a prospective modification)."""
        successors = [i for i in items if i.get("amending") == item.get("id") and i.get("start_date")]
        if not successors:
            return end, total, active
        cut = min(_date(i["start_date"], "start_date") for i in successors) - timedelta(days=1)
        first, last = _date(start, "start_date"), _date(end, "end_date")
        if cut >= last:
            return end, total, active  # Rillet already ended it before its amendment
        if cut < first:
            self.warnings.append(f"{origin} was amended from its start: it is cancelled (IsActive false)")
            return end, total, False
        if item.get("revenue_pattern") == "EVEN_PERIOD" and (cut + timedelta(days=1)).day == 1:
            share = Decimal(_months_touched(first, cut)) / Decimal(_months_touched(first, last))
            how = "months"
        else:
            share = Decimal((cut - first).days + 1) / Decimal((last - first).days + 1)
            how = "days"
        value = _round_cents(total * share)
        self.warnings.append(
            f"{origin} is AMENDED from {cut + timedelta(days=1)}: it earns {_plain(value)} of its "
            f"{_plain(total)} until {cut} (prorated by {how}); the amending item carries the rest"
        )
        return cut.isoformat(), value, active

    # invoices and credit memos
    def _invoice_lines(self, inv: dict[str, Any]) -> list[_Row]:
        if inv.get("status") == "UNBILLED":
            return []  # not billed yet: no billing event (lines mapped earlier are zeroed)
        iid = str(inv.get("id"))
        rows = []
        for n, item in enumerate(inv.get("items") or [], 1):
            origin = f"invoice {inv.get('invoice_number')!r} (id {iid}) item {n} (id {item.get('id')})"
            try:
                link = self._invoice_link(inv, item, origin)
                amount = _money(_decimal(item.get("total_amount"), "total_amount"))
            except _MappingProblem as exc:
                self.problems.append(f"{origin}: {exc}")
                continue
            rows.append(
                self._billing_row(
                    inv,
                    item,
                    n,
                    inv.get("invoice_number"),
                    inv.get("invoice_date"),
                    amount,
                    (item.get("total_amount") or {}).get("currency"),
                    link,
                    origin,
                    INVOICE_SOURCES,
                    {"rillet_object": "invoice", "rillet_document_id": iid},
                )
            )
        return rows

    def _credit_memo_lines(self, memo: dict[str, Any]) -> list[_Row]:
        mid = str(memo.get("id"))
        rows = []
        for n, item in enumerate(memo.get("items") or [], 1):
            origin = (
                f"credit memo {memo.get('credit_memo_number')!r} (id {mid}) item {n} (id {item.get('id')})"
            )
            try:
                link = self._credit_memo_link(memo, item, origin)
                amount = _money(-_decimal(item.get("net_amount"), "net_amount"))
            except _MappingProblem as exc:
                self.problems.append(f"{origin}: {exc}")
                continue
            rows.append(
                self._billing_row(
                    memo,
                    item,
                    n,
                    memo.get("credit_memo_number"),
                    memo.get("credit_memo_date"),
                    amount,
                    (item.get("net_amount") or {}).get("currency"),
                    link,
                    origin,
                    CREDIT_MEMO_SOURCES,
                    {"rillet_object": "credit_memo", "rillet_document_id": mid},
                )
            )
        return rows

    def _billing_row(
        self,
        doc: dict[str, Any],
        item: dict[str, Any],
        n: int,
        number: Any,
        billing_date: Any,
        amount: str,
        currency: Any,
        link: tuple[str, str] | None,
        origin: str,
        sources: Mapping[str, str],
        extra: dict[str, Any],
    ) -> _Row:
        period = (item.get("revenue") or {}).get("period") or {}
        values = {
            "Invoice_Number": number,
            "Invoice_Line": str(n),
            "Billing_Date": billing_date,
            "Billing_Amount": amount,
            "Currency": currency,
            "Sales_Order_Id": link[0] if link else None,
            "Sales_Order_Item_Id": link[1] if link else None,
            "Customer_Id": doc.get("customer_id"),
            "Product_Id": item.get("product_id"),
            "Service_Start_Date": period.get("start"),
            "Service_End_Date": period.get("end"),
        }
        if link is None:
            self._check_pattern(item, origin)
        return _Row(values, origin, sources, {**extra, "rillet_item_id": item.get("id")})

    def _check_pattern(self, item: dict[str, Any], origin: str) -> None:
        """Invoice-as-contract lines take their product's rule: say so when Rillet's item says otherwise."""
        pattern = (item.get("revenue") or {}).get("pattern")
        if not pattern:
            return
        if self._product_rules is None:
            self._product_rules = dict(
                self.con.execute(
                    "SELECT Product_Id, Revenue_Rule FROM raw_products WHERE _is_current"
                ).fetchall()
            )
        rule = self._product_rules.get(str(item.get("product_id")))
        if rule and rule != PATTERN_RULES.get(pattern, rule):
            self.warnings.append(
                f"{origin}: Rillet recognises it {pattern}, but an invoice line without a contract follows "
                f"its product's rule ({rule})"
            )

    def _invoice_link(self, inv: dict[str, Any], item: dict[str, Any], origin: str) -> tuple[str, str] | None:
        """The contract item an invoice item bills: same contract, same product, covering its period."""
        contract_id = inv.get("contract_id")
        if not contract_id:
            return None
        contract = self._contracts.get(str(contract_id))
        if contract is None:
            raise _MappingProblem(
                f"contract_id {contract_id!r} is not a contract Rillet listed; sync again once it is, "
                "or check the invoice in Rillet"
            )
        candidates = [i for i in contract.get("items") or [] if i.get("product_id") == item.get("product_id")]
        if not candidates:
            self.warnings.append(
                f"{origin}: its product is not on contract {contract.get('name')!r}: billed as its own "
                "contract (invoice-as-contract)"
            )
            return None
        day = ((item.get("revenue") or {}).get("period") or {}).get("start") or inv.get("invoice_date") or ""

        def covers(i: dict[str, Any]) -> bool:
            end = i.get("end_date") or contract.get("end_date") or "9999-12-31"
            return str(i.get("start_date") or "") <= day <= end

        pool = [i for i in candidates if covers(i)] or candidates
        # prefer the item in force (ACTIVE over AMENDED), then the latest start, then the smallest id
        best = min(
            pool,
            key=lambda i: (i.get("status") != "ACTIVE", _neg_date(i.get("start_date")), str(i.get("id"))),
        )
        return str(contract["id"]), str(best["id"])

    def _credit_memo_link(
        self, memo: dict[str, Any], item: dict[str, Any], origin: str
    ) -> tuple[str, str] | None:
        """A credit memo credits what the invoices it is applied to billed for the same product."""
        invoice_ids = {
            str(a.get("invoice_id")) for a in memo.get("applications") or [] if a.get("invoice_id")
        }
        if not invoice_ids:
            return None
        targets: set[tuple[str, str]] = set()
        for inv in (self._invoices[i] for i in sorted(invoice_ids) if i in self._invoices):
            for inv_item in inv.get("items") or []:
                if inv_item.get("product_id") == item.get("product_id"):
                    link = self._invoice_link(inv, inv_item, origin)
                    if link:
                        targets.add(link)
        if len(targets) == 1:
            return targets.pop()
        if len(targets) > 1:
            self.warnings.append(
                f"{origin}: applied to invoices of several contract lines of its product: credited as "
                "its own contract (invoice-as-contract)"
            )
        return None

    def _vanished_lines(self, document_ids: list[str]) -> list[_Row]:
        """Lines mapped earlier from these documents that they no longer have: their billing becomes 0."""
        if not document_ids:
            return []
        cols = [c.name for c in FILE_TYPES["invoices"].columns]
        select = ", ".join(f"CAST({c} AS VARCHAR)" for c in cols)
        rows = self.con.execute(
            f"SELECT _extra, {select} FROM raw_invoices WHERE _is_current AND _source = 'rillet' "
            f"AND list_contains(?, json_extract_string(_extra, '$.rillet_document_id')) ORDER BY Invoice_Number, Invoice_Line",
            [sorted(document_ids)],
        ).fetchall()
        return [
            _Row(
                {**dict(zip(cols, r[1:], strict=True)), "Billing_Amount": "0.00"},
                f"invoice line {r[1]} / {r[2]} (no longer on its Rillet document)",
                INVOICE_SOURCES,
                {**json.loads(r[0] or "{}"), "vanished": True},
            )
            for r in rows
        ]


class _MappingProblem(Exception):
    pass


# -- applying ----------------------------------------------------------------------------------------


def _unit(ft_name: str, rows: list[_Row]) -> Unit:
    ft = FILE_TYPES[ft_name]
    data: dict[str, list[str | None]] = {c.name: [r.values.get(c.name) for r in rows] for c in ft.columns}
    data["_extra"] = [_canonical_json(r.extra) for r in rows]
    frame = pl.DataFrame(data, schema=dict.fromkeys(data, pl.String)).with_columns(
        # "row" n + 1 of the unit is rows[n - 1], as a file's first record is its row 2
        pl.Series("_row_number", range(ROW_OFFSET, len(rows) + ROW_OFFSET), dtype=pl.Int64)
    )
    return Unit(ft, f"rillet:{ft_name}", frame, [])


def _drop_duplicates_of_vanished(rows: list[_Row], ft_name: str) -> list[_Row]:
    """A vanished line whose key a current line of this sync reuses is not a vanished line."""
    key = FILE_TYPES[ft_name].key
    live = {tuple(r.values.get(k) for k in key) for r in rows if not r.extra.get("vanished")}
    return [r for r in rows if not (r.extra.get("vanished") and tuple(r.values.get(k) for k in key) in live)]


def _apply_unit(
    con: duckdb.DuckDBPyConnection,
    report: SyncReport,
    ft_name: str,
    rows: list[_Row],
    run_id: str | None,
    started: datetime,
) -> UnitResult:
    rows = _drop_duplicates_of_vanished(rows, ft_name)
    unit = _unit(ft_name, rows)
    batch_id = con.execute("SELECT nextval('batch_id_seq')").fetchall()[0][0]
    errors, counts = importer.apply_unit(con, unit, batch_id, source_kind="rillet")
    if errors.height:
        problems = []
        for e in errors.iter_rows(named=True):
            n = e["row_number"]
            row = rows[n - ROW_OFFSET] if n is not None and 0 <= n - ROW_OFFSET < len(rows) else None
            where = row.origin if row else f"the {ft_name} mapped from Rillet"
            column = e["column_name"]
            source = f" (from {row.sources[column]})" if row and column in row.sources else ""
            value = f" {e['value']!r}" if e["value"] is not None else ""
            problems.append(f"{where}: {column}{source}{value}: {e['reason']}")
        raise _problems_error(problems, f"validating the {ft_name} mapped from Rillet")
    result = UnitResult(
        ft_name,
        batch_id,
        "applied" if counts["new"] + counts["changed"] else "unchanged",
        counts["read"],
        counts["new"],
        counts["changed"],
        counts["unchanged"],
    )
    content = unit.frame.drop("_extra", "_row_number").write_csv()
    con.execute(
        "INSERT INTO import_batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            batch_id,
            run_id,
            f"rillet:{report.base_url}",
            f"sync-{report.sync_id}/{ft_name}",
            hashlib.sha256(content.encode()).hexdigest(),
            result.status,
            1,
            result.rows_read,
            result.rows_new,
            result.rows_changed,
            result.rows_unchanged,
            0,
            f"Rillet sync {report.sync_id}",
            started,
            _utc_now(),
        ],
    )
    return result


def _problems_error(problems: list[str], doing: str) -> RilletSyncError:
    shown = problems[:MAX_PROBLEMS_SHOWN]
    lines = [
        f"Rillet sync failed {doing}: {len(problems)} problem(s); nothing was applied and the sync cursors were not advanced."
    ]
    lines += [f"- {p}" for p in shown]
    if len(problems) > len(shown):
        lines.append(f"- … and {len(problems) - len(shown)} more")
    lines.append("Correct the objects in Rillet; the next sync reads them again.")
    return RilletSyncError("\n".join(lines), problems)


def _rate_warnings(con: duckdb.DuckDBPyConnection, report: SyncReport, home_currency: str) -> list[str]:
    """Currencies of lines this sync applied that have no rate to the home currency at all."""
    batches = [u.batch_id for u in report.units if u.file_type in ("sales_orders", "invoices")]
    if not batches:
        return []
    home = home_currency.strip().upper()
    rows = con.execute(
        "SELECT DISTINCT Currency FROM ("
        " SELECT Currency FROM raw_sales_orders WHERE list_contains(?, _batch_id)"
        " UNION ALL SELECT Currency FROM raw_invoices WHERE list_contains(?, _batch_id)) c "
        "WHERE Currency <> ? AND NOT EXISTS (SELECT 1 FROM raw_exchange_rates r WHERE r._is_current AND "
        " ((r.From_Currency = c.Currency AND r.To_Currency = ?) OR (r.From_Currency = ? AND r.To_Currency = c.Currency)))"
        " ORDER BY 1",
        [batches, batches, home, home, home],
    ).fetchall()
    return [
        f"Rillet lines in {c} have no {c}→{home} exchange rate yet: they are held until an exchange_rates file brings one"
        for (c,) in rows
    ]


# -- values ------------------------------------------------------------------------------------------


def _rule(pattern: Any, price: Any) -> str | None:
    if isinstance(price, dict) and price.get("type") == "USAGE":
        return "usage"
    if pattern is None:
        return None
    return PATTERN_RULES.get(str(pattern), str(pattern))  # an unknown pattern is refused by validation


def _price_currency(price: Any) -> str | None:
    if not isinstance(price, dict):
        return None
    amount = price.get("amount") or (price.get("billing_scheme") or {}).get("amount")
    if not amount:
        tiers = (price.get("billing_scheme") or {}).get("tiers") or [{}]
        amount = tiers[0].get("per_unit_price") or tiers[0].get("flat_price")
    return (amount or {}).get("currency")


def _decimal(money: Any, name: str) -> Decimal:
    """The amount of a Rillet MonetaryAmount."""
    if not isinstance(money, dict) or money.get("amount") is None:
        raise _MappingProblem(f"{name} is missing")
    try:
        value = Decimal(str(money["amount"]))
    except InvalidOperation:
        raise _MappingProblem(f"{name} {money['amount']!r} is not a decimal amount") from None
    if not value.is_finite():
        raise _MappingProblem(f"{name} {money['amount']!r} is not a decimal amount")
    return value


def _decimal_number(value: Any, name: str) -> Decimal:
    if value is None or isinstance(value, bool):
        raise _MappingProblem(f"{name} is missing")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise _MappingProblem(f"{name} {value!r} is not a number") from None
    if not number.is_finite():
        raise _MappingProblem(f"{name} {value!r} is not a number")
    return number


def _round_cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)  # half away from zero, as SPEC §4


def _unit_price(total: Decimal, quantity: Decimal) -> Decimal:
    if quantity <= 0:
        return total  # validation refuses the quantity; the price must not hide it
    return (total / quantity).quantize(MICRO, rounding=ROUND_HALF_UP)


def _money(value: Decimal) -> str:
    """A money text with 2 decimals; more decimals are passed on for validation to refuse."""
    if value == value.quantize(CENT):
        value = value.quantize(CENT)
        return format(abs(value) if value == 0 else value, "f")
    return format(value, "f")


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def _date(text: Any, name: str) -> date:
    try:
        return date.fromisoformat(str(text))
    except ValueError:
        raise _MappingProblem(f"{name} {text!r} is not a date (YYYY-MM-DD)") from None


def _neg_date(text: Any) -> int:
    try:
        return -date.fromisoformat(str(text)).toordinal()
    except ValueError:
        return 0


def _add_months(d: date, months: int) -> date:
    """`d` plus whole months, the day clamped to the end of the month."""
    index = d.year * 12 + d.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    last_day = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    return date(year, month, min(d.day, last_day))


def _months_touched(first: date, last: date) -> int:
    return (last.year * 12 + last.month) - (first.year * 12 + first.month) + 1


def _parse_ts(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
