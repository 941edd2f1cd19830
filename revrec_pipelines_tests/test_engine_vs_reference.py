"""Property tests: the production SQL engine against the independent pure-Python reference engine.

A seeded generator writes a random but valid scenario as SPEC §2 CSV files — 20–80 order lines in
USD (home), EUR (direct EUR→USD quotes) and GBP (inverse-only USD→GBP quotes, so GBP→USD is 1/Rate and
GBP↔EUR goes through the home currency), all four revenue rules, multi-line orders with product SSP /
List_Price / Sale_Price weights, upfront / periodic / late invoices, credit memos, foreign-currency
invoices, usage, commissions, invoice-as-contract lines and cancellations — and a modification batch
(price and date changes, cancellations, late invoices, changed invoice amounts, new lines and orders, a
late exchange rate, a new currency, a renamed product, a new account mapping).

Both engines then run the same operations:

    import batch 1 → close P1 (first close) → close P2 → import batch 2 → close P3
    → reopen P2 → close P2 → close P3

After every close the nine close-period export files must be byte-for-byte equal; after every step
the full current tables (rollforward, backlog, deferred expense, journals, invoices register, orders,
held lines) must agree once all-zero rows are dropped. Invariants of SPEC §4 are recomputed in plain
Python from the SQL tables, and closed-period exports must not change after a later import.

Known differences are kept out of the generator and pinned by their own tests in
test_engine_rules.py: an invoice whose currency or order line changes after it was reported in a
closed period, and an invoice-as-contract invoice re-pointed to an order line. A cancelled usage line
is not generated either: SPEC §2/§4 do not say whether its usage stops being revenue (the reference
stops it, the SQL engine keeps it). Seeds that reach a home-currency-only commission catch-up in O after
a line's last period (e.g. REVREC_ENGINE_SEEDS=10, seed 9) fail until that is fixed in the SQL engine
(test_engine_rules.py::test_home_currency_commission_catch_up_after_a_rate_revision).

REVREC_ENGINE_SEEDS=N runs N seeds instead of 5.
"""

from __future__ import annotations

import difflib
import os
import random
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import pytest

from revrec_pipelines.lib import close, engine, exports, importer, sources, warehouse
from revrec_pipelines_tests.reference_engine import ReferenceLedger
from revrec_pipelines_tests.test_engine_rules import write_csv

HOME = "USD"
TS = "2025-07-01T23:00:00Z"
SEEDS = range(int(os.environ.get("REVREC_ENGINE_SEEDS", "5")))
EXPORT_TYPES = (
    "unearned_revenue_rollforward", "revenue", "deferred_revenue_balance", "orders", "journals", "invoices",
    "control", "expenses", "revenue_backlog",
)
ACCOUNT_TYPES = (
    "Contra Revenue", "Revenue", "Deferred Revenue", "Unbilled Receivable", "Deferred Expense", "Expense Clearing",
    "Expense Recognized",
)

# ------------------------------------------------------------------------------------------------
# the scenario generator


def money(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def next_period(p: int) -> int:
    return p + 89 if p % 100 == 12 else p + 1


def last_day(p: int) -> date:
    return date(p // 100 + (p % 100 == 12), p % 100 % 12 + 1, 1) - timedelta(days=1)


def first_day(p: int) -> date:
    return date(p // 100, p % 100, 1)


PRODUCTS = [
    # id, code, name, rule, SSP
    ("P-D1", "DAY-SSP", "Platform, annual", "ratable_daily", "1200.00"),
    ("P-D2", "DAY", "Platform \"lite\"", "ratable_daily", ""),
    ("P-M1", "MON-SSP", "Seats", "ratable_monthly", "50.00"),
    ("P-M2", "+MON", "Support plan", "ratable_monthly", ""),
    ("P-P1", "SETUP", "Onboarding, premium", "point_in_time", "500.00"),
    ("P-P2", "TRAIN", "@Training", "point_in_time", ""),
    ("P-Z", "FREEBIE", "Free add-on", "ratable_monthly", "0.00"),
    ("P-U1", "API", "API calls", "usage", ""),
    ("P-U2", "STORAGE", "Storage (GB)", "usage", ""),
]
RULE = {p[0]: p[3] for p in PRODUCTS}
CUSTOMERS = [
    ("C01", "Acme", ""), ("C02", "Globex, Inc.", ""), ("C03", "Initech", "SUB-A"), ("C04", "Umbrella", "SUB-A"),
    ("C05", "Contoso GmbH", "SUB-B"), ("C06", "Müller \"&\" Söhne", ""), ("-C07", "Dash Ltd", "SUB-B"),
]


class Scenario:
    """Two batches of SPEC §2 rows (type → rows), built from one seed."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.rule_of = dict(RULE)  # product → rule (batch 2 changes one)
        self.p1 = self.rng.choice([202501, 202502, 202503])
        self.p2 = next_period(self.p1)
        self.p3 = next_period(self.p2)
        self.batch1: dict[str, list[dict[str, str]]] = defaultdict(list)
        self.batch2: dict[str, list[dict[str, str]]] = defaultdict(list)
        self.lines: dict[str, dict[str, str]] = {}  # current sales-order rows
        self.order_currency: dict[str, str] = {}
        self.invoices: dict[tuple[str, str], dict[str, str]] = {}
        self.usage_keys: set[tuple[str, str]] = set()
        self.commission_keys: set[tuple[str, str]] = set()
        self.n_invoice = 0
        self.n_order = 0
        self._batch1()
        self._batch2()

    # -- helpers
    def day(self, lo: date, hi: date) -> date:
        return lo + timedelta(days=self.rng.randint(0, max((hi - lo).days, 0)))

    def cents(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def invoice_number(self) -> str:
        self.n_invoice += 1
        return f"INV-{self.n_invoice:04d}"

    def add_invoice(self, batch: dict, item: str, on: date, amount: int, currency: str, number: str | None = None,
                    line: str = "1") -> None:
        row = {
            "Invoice_Number": number or self.invoice_number(), "Invoice_Line": line, "Billing_Date": on.isoformat(),
            "Billing_Amount": money(amount), "Currency": currency,
            "Sales_Order_Id": self.lines[item]["Sales_Order_Id"] if item else "", "Sales_Order_Item_Id": item,
            "Customer_Id": "", "Product_Id": "", "Service_Start_Date": "", "Service_End_Date": "",
            "BS_CustomField02": self.rng.choice(["", "", "PO-" + str(self.rng.randint(100, 999)), "=SUM(A1)"]),
        }
        self.invoices[(row["Invoice_Number"], line)] = row
        batch["invoices"].append(row)

    def booking(self, row: dict[str, str]) -> int:
        from decimal import ROUND_HALF_UP, Decimal

        return int((Decimal(row["Quantity"]) * Decimal(row["Sale_Price"]) * 100).quantize(Decimal(1), ROUND_HALF_UP))

    def rule(self, row: dict[str, str]) -> str:
        return row.get("Revenue_Rule") or self.rule_of[row["Product_Id"]]

    def new_line(self, batch: dict, order: str, item: str, currency: str, customer: str, order_date: date,
                 product: str | None = None) -> dict[str, str]:
        rng = self.rng
        product = product or rng.choice([p[0] for p in PRODUCTS])
        rule = self.rule_of[product]
        start = order_date + timedelta(days=rng.randint(-10, 45))
        if rule == "point_in_time":
            end = start + timedelta(days=rng.choice([0, 0, rng.randint(1, 90)]))
        elif rule == "usage":
            end = start + timedelta(days=rng.randint(60, 365))
        else:
            end = start + timedelta(days=rng.choice([rng.randint(0, 40), rng.randint(27, 420), 364, 365]))
        qty = rng.choice(["1", "1", "1", "2", "3", "10", "2.5", "1.333333"])
        if rule == "usage":
            price = rng.choice(["0", "0", "0.05", "1.25"])
        else:
            price = rng.choice([money(self.cents(1000, 600000)), money(self.cents(100, 9999)), "12.345678", "0.333333"])
        row = {
            "Sales_Order_Id": order, "Sales_Order_Item_Id": item, "Customer_Id": customer, "Product_Id": product,
            "Order_Date": order_date.isoformat(), "Quantity": qty, "Sale_Price": price,
            "Service_Start_Date": start.isoformat(), "Service_End_Date": end.isoformat(), "Currency": currency,
            "List_Price": rng.choice(["", "", money(self.cents(1000, 600000))]),
            "Subsidiary_Id": rng.choice(["", "", "", "", "", "", "", "", "", "SUB-B"]),
            "IsActive": "true", "Revenue_Rule": "",
        }
        if rule != "usage" and rng.random() < 0.08:
            row["Revenue_Rule"] = rng.choice(["ratable_daily", "ratable_monthly", "point_in_time"])
        if rule != "usage" and rng.random() < 0.05:
            row["IsActive"] = "false"
        self.lines[item] = row
        batch["sales_orders"].append(row)
        return row

    def bill_line(self, batch: dict, item: str, late_only: bool = False) -> None:
        """Invoices for a non-usage line: upfront, periodic, late, none; maybe a credit memo; maybe foreign."""
        rng = self.rng
        row = self.lines[item]
        start, end = date.fromisoformat(row["Service_Start_Date"]), date.fromisoformat(row["Service_End_Date"])
        total = self.booking(row)
        currency = row["Currency"]
        pattern = "late" if late_only else rng.choice(["upfront", "upfront", "periodic", "late", "none"])
        foreign = rng.random() < 0.15
        if foreign:
            currency = rng.choice([c for c in ("USD", "EUR", "GBP") if c != currency])
        if pattern == "upfront":
            self.add_invoice(batch, item, self.day(start - timedelta(days=10), start + timedelta(days=5)), total, currency)
        elif pattern == "periodic":
            k = rng.randint(2, 4)
            each = total // k
            for i in range(k):
                amount = each if i < k - 1 else total - each * (k - 1)
                self.add_invoice(batch, item, start + timedelta(days=30 * i), amount, currency)
        elif pattern == "late":
            self.add_invoice(batch, item, self.day(end + timedelta(days=1), end + timedelta(days=70)), total, currency)
        if pattern != "none" and rng.random() < 0.15:
            self.add_invoice(batch, item, self.day(start, end + timedelta(days=40)), -self.cents(100, max(total // 3, 101)),
                             currency)

    def use_line(self, batch: dict, item: str, lo: date | None = None, hi: date | None = None) -> None:
        """Usage rows (and the invoices billing them) of a usage line."""
        row = self.lines[item]
        start, end = date.fromisoformat(row["Service_Start_Date"]), date.fromisoformat(row["Service_End_Date"])
        lo, hi = max(lo or start, start), min(hi or end, end, date(2025, 10, 31))
        d = lo
        while d <= hi:
            if self.rng.random() < 0.6:
                on = self.day(d, min(d + timedelta(days=27), hi))
                if (item, on.isoformat()) not in self.usage_keys:
                    self.usage_keys.add((item, on.isoformat()))
                    amount = self.cents(100, 80000)
                    batch["usage"].append({"Sales_Order_Item_Id": item, "Usage_Date": on.isoformat(), "Amount": money(amount)})
                    if self.rng.random() < 0.7:
                        self.add_invoice(batch, item, on + timedelta(days=self.rng.randint(5, 40)), amount, row["Currency"])
            d += timedelta(days=30)

    def commission(self, batch: dict, item: str, lo: date, hi: date) -> None:
        on = self.day(lo, max(lo, hi)).isoformat()
        if (item, on) in self.commission_keys:
            return
        self.commission_keys.add((item, on))
        batch["commissions"].append({"Sales_Order_Item_Id": item, "Commission_Date": on, "Amount": money(self.cents(500, 90000))})

    def iac(self, batch: dict, on: date) -> None:
        """An invoice-as-contract line (no Sales_Order_Item_Id)."""
        rng = self.rng
        product = rng.choice(["P-D1", "P-D2", "P-M1", "P-M2", "P-P1", "P-P2"])
        row = {
            "Invoice_Number": self.invoice_number(), "Invoice_Line": "1", "Billing_Date": on.isoformat(),
            "Billing_Amount": money(self.cents(1000, 300000)), "Currency": rng.choice(["USD", "USD", "EUR", "GBP"]),
            "Sales_Order_Id": "", "Sales_Order_Item_Id": "", "Customer_Id": rng.choice(CUSTOMERS)[0],
            "Product_Id": product, "Service_Start_Date": "", "Service_End_Date": "",
        }
        if rng.random() < 0.5:
            row["Service_Start_Date"] = on.isoformat()
            row["Service_End_Date"] = (on + timedelta(days=rng.randint(0, 200))).isoformat()
        self.invoices[(row["Invoice_Number"], "1")] = row
        batch["invoices"].append(row)

    def rates(self, batch: dict, pair: tuple[str, str], level: float, lo: date, hi: date) -> None:
        d = lo
        while d <= hi:
            level *= 1 + self.rng.uniform(-0.04, 0.04)
            batch["exchange_rates"].append(
                {"From_Currency": pair[0], "To_Currency": pair[1], "Rate_Date": d.isoformat(), "Rate": f"{level:.6f}"}
            )
            d = (d.replace(day=1) + timedelta(days=32)).replace(day=1)

    def new_order(self, batch: dict, lo: date, hi: date, currencies: tuple[str, ...] = ("USD", "USD", "EUR", "GBP")) -> list[str]:
        rng = self.rng
        self.n_order += 1
        order = f"SO-{self.n_order:03d}"
        currency = rng.choice(currencies)
        self.order_currency[order] = currency
        customer = rng.choice(CUSTOMERS)[0]
        order_date = self.day(lo, hi)
        items = []
        for i in range(rng.choice([1, 1, 2, 2, 3, 4])):
            item = f"{order}-{i + 1}"
            self.new_line(batch, order, item, currency, customer, order_date)
            items.append(item)
        return items

    # -- batch 1
    def _batch1(self) -> None:
        rng, b = self.rng, self.batch1
        b["customers"] = [{"Customer_Id": c, "Customer_Name": n, "Subsidiary_Id": s} for c, n, s in CUSTOMERS]
        b["products"] = [
            {"Product_Id": pid, "Product_Code": code, "Product_Name": name, "Revenue_Rule": rule, "SSP": ssp,
             "Class": rule.split("_")[0].title(), "Location": "NYC", "Department": "Sales"}
            for pid, code, name, rule, ssp in PRODUCTS
        ]
        b["account_mappings"] = [
            {"Account_Type": t, "Account_Id": str(1000 + 10 * i), "Account_Name": t, "Subsidiary_Id": ""}
            for i, t in enumerate(ACCOUNT_TYPES)
        ] + [
            {"Account_Type": "Revenue", "Account_Id": "4001", "Account_Name": "Revenue A", "Subsidiary_Id": "SUB-A"},
            {"Account_Type": "Deferred Revenue", "Account_Id": "2401", "Account_Name": "DR A", "Subsidiary_Id": "SUB-A"},
            {"Account_Type": "Contra Revenue", "Account_Id": "4902", "Account_Name": "Contra B", "Subsidiary_Id": "SUB-B"},
        ]
        self.rates(b, ("EUR", "USD"), 1.08, date(2024, 10, 1), date(2025, 12, 1))
        self.rates(b, ("USD", "GBP"), 0.79, date(2024, 10, 1), date(2025, 12, 1))
        target = rng.randint(20, 80)
        while len(self.lines) < target:
            self.new_order(b, date(2024, 11, 1), date(2025, 6, 30))
        for item, row in list(self.lines.items()):
            end = date.fromisoformat(row["Service_End_Date"])
            if self.rule(row) == "usage":
                self.use_line(b, item)
            else:
                self.bill_line(b, item)
            if rng.random() < 0.2:
                self.commission(b, item, date.fromisoformat(row["Order_Date"]) - timedelta(days=10), end + timedelta(days=30))
        for _ in range(rng.randint(2, 5)):
            self.iac(b, self.day(date(2024, 12, 1), date(2025, 6, 30)))

    # -- batch 2: modifications, imported when P2 is the last closed period
    def _batch2(self) -> None:
        rng, b = self.rng, self.batch2
        closed_end = last_day(self.p2)
        history = date(2024, 12, 1)
        items = [i for i in self.lines]
        batch1_invoices = sorted(k for k, r in self.invoices.items() if r["Sales_Order_Item_Id"])
        changed: dict[str, dict[str, str]] = {}
        for item in rng.sample(items, k=max(1, len(items) * 15 // 100)):  # price changes
            row = dict(changed.get(item, self.lines[item]))
            if rng.random() < 0.5 or self.rule(row) == "usage":
                row["Quantity"] = rng.choice(["1", "2", "4", "1.5"])
            else:
                row["Sale_Price"] = money(self.cents(1000, 600000))
            changed[item] = row
        for item in rng.sample(items, k=max(1, len(items) // 10)):  # date changes
            row = dict(changed.get(item, self.lines[item]))
            start = date.fromisoformat(row["Service_Start_Date"])
            if rng.random() < 0.7:
                row["Service_End_Date"] = (start + timedelta(days=rng.randint(0, 500))).isoformat()
            else:
                new_start = start + timedelta(days=rng.randint(-40, 40))
                row["Service_Start_Date"] = new_start.isoformat()
                row["Service_End_Date"] = max(date.fromisoformat(row["Service_End_Date"]), new_start).isoformat()
            if rng.random() < 0.3:  # the Order_Date moves too (the booking period may change)
                row["Order_Date"] = (date.fromisoformat(row["Order_Date"]) + timedelta(days=rng.randint(-45, 45))).isoformat()
            changed[item] = row
        for item in rng.sample(items, k=max(1, len(items) * 8 // 100)):  # cancellations (not of usage lines)
            row = dict(changed.get(item, self.lines[item]))
            if self.rule(row) != "usage":
                row["IsActive"] = "false"
                changed[item] = row
        for item, row in changed.items():
            self.lines[item] = row
            b["sales_orders"].append(row)
        # new lines on existing orders (same order, currency, customer): reallocation in O
        for item in rng.sample(items, k=3):
            base = self.lines[item]
            order = base["Sales_Order_Id"]
            new_item = f"{order}-N{rng.randint(1, 9)}"
            if new_item in self.lines:
                continue
            self.new_line(b, order, new_item, base["Currency"], base["Customer_Id"], date.fromisoformat(base["Order_Date"]))
            if self.rule(self.lines[new_item]) != "usage":
                self.bill_line(b, new_item)
        # new orders, some dated in closed periods (late contracts), one in a new currency (CAD)
        self.rates(b, ("CAD", "USD"), 0.73, date(2024, 10, 1), date(2025, 12, 1))
        new_items = []
        for _ in range(4):
            new_items += self.new_order(b, history, date(2025, 8, 31))
        new_items += self.new_order(b, history, date(2025, 8, 31), currencies=("CAD",))
        for item in new_items:
            if self.rule(self.lines[item]) == "usage":
                self.use_line(b, item)
            else:
                self.bill_line(b, item)
        # late invoices on existing non-usage lines, dated in closed periods; a CAD invoice on a EUR line
        # (CAD→EUR through the home currency)
        non_usage = [i for i in items if self.rule(self.lines[i]) != "usage"]
        for item in rng.sample(non_usage, k=min(6, len(non_usage))):
            currency = self.lines[item]["Currency"]
            if currency == "EUR" and rng.random() < 0.5:
                currency = "CAD"
            self.add_invoice(b, item, self.day(history, closed_end), self.cents(-5000, 90000) or 100, currency)
        # changed amounts of invoices already imported (same currency, same line)
        for key in rng.sample(batch1_invoices, k=3):
            row = dict(self.invoices[key])
            row["Billing_Amount"] = money(self.cents(100, 200000))
            self.invoices[key] = row
            b["invoices"].append(row)
        # changed usage and commission amounts (same keys), then late usage and late commissions
        for row in rng.sample(self.batch1["usage"], k=min(3, len(self.batch1["usage"]))):
            b["usage"].append({**row, "Amount": money(self.cents(100, 80000))})
        for row in rng.sample(self.batch1["commissions"], k=min(2, len(self.batch1["commissions"]))):
            b["commissions"].append({**row, "Amount": money(self.cents(500, 90000))})
        usage_items = [i for i in items if self.rule(self.lines[i]) == "usage"]
        for item in usage_items[:3]:
            self.use_line(b, item, history, closed_end)
        for item in rng.sample(items, k=3):
            self.commission(b, item, history, closed_end)
        # a late invoice-as-contract line
        self.iac(b, self.day(history, closed_end))
        # late exchange rates dated in closed periods: the home rate of some lines and the conversion of
        # some invoices change, and the difference lands in O
        for pair, level in ((("EUR", "USD"), 1.13), (("USD", "GBP"), 0.83)):
            on = first_day(self.p1) + timedelta(days=14)
            b["exchange_rates"].append(
                {"From_Currency": pair[0], "To_Currency": pair[1], "Rate_Date": on.isoformat(), "Rate": f"{level:.4f}"}
            )
        # a revised quote (same key, new rate) inside the closed history
        revised = rng.choice([r for r in self.batch1["exchange_rates"] if r["Rate_Date"] <= closed_end.isoformat()])
        b["exchange_rates"].append({**revised, "Rate": f"{float(revised['Rate']) * 1.05:.6f}"})
        # a renamed product, a product whose rule changes (ratable_daily → ratable_monthly), a customer that
        # moves to another subsidiary, a subsidiary's new Revenue account
        b["products"].append({
            "Product_Id": "P-M1", "Product_Code": "MON-SSP", "Product_Name": "Seats (renamed)", "Revenue_Rule": "ratable_monthly",
            "SSP": "50.00", "Class": "Ratable", "Location": "NYC", "Department": "Sales",
        })
        b["products"].append({
            "Product_Id": "P-D2", "Product_Code": "DAY", "Product_Name": "Platform \"lite\"", "Revenue_Rule": "ratable_monthly",
            "SSP": "", "Class": "Ratable", "Location": "NYC", "Department": "Sales",
        })
        self.rule_of["P-D2"] = "ratable_monthly"
        b["customers"].append({"Customer_Id": "C04", "Customer_Name": "Umbrella", "Subsidiary_Id": "SUB-B"})
        b["account_mappings"].append(
            {"Account_Type": "Revenue", "Account_Id": "4002", "Account_Name": "Revenue B", "Subsidiary_Id": "SUB-B"}
        )


# ------------------------------------------------------------------------------------------------
# the two engines side by side


class Pair:
    def __init__(self, root: Path):
        self.root = root
        self.con = warehouse.connect(root / "w.duckdb")
        self.ref = ReferenceLedger(HOME)
        self.n = 0
        self.closed_exports: dict[int, dict[str, str]] = {}

    def load(self, batch: dict[str, list[dict[str, str]]]) -> None:
        self.n += 1
        folder = self.root / f"batch{self.n}"
        folder.mkdir()
        for file_type, rows in batch.items():
            if rows:
                write_csv(folder / f"{file_type}.csv", rows)
        report = importer.import_from_source(
            self.con, sources.LocalFolderSource(folder), incremental=True, progress=lambda _m: None
        )
        assert not report.rejected, report.failure_message()
        self.ref.load_csv_dir(folder)
        engine.compute(self.con, HOME)
        self.check_row_counts()

    def check_row_counts(self) -> None:
        """The row counts the engine reports for its views (read from the stored rows) are the views' counts."""
        for table, query in engine.ROW_COUNTS.items():
            assert self.con.execute(query).fetchall() == self.con.execute(f"SELECT count(*) FROM {table}").fetchall(), table

    def sql_export(self, period: int, folder: str) -> dict[str, str]:
        out = self.root / folder
        files = exports.write_close_exports(self.con, period, sources.LocalFolderDestination(out), export_timestamp=TS)
        return {f.type: (out / f.name).read_text(encoding="utf-8") for f in files}

    def close(self, period: int) -> None:
        close.close_period(self.con, period, home_currency=HOME, actor="property")
        self.ref.close(period)
        got = self.sql_export(period, f"exports-{period}-{self.n}")
        want = self.ref.close_export(period, export_timestamp=TS)
        assert set(got) == set(EXPORT_TYPES)
        problems = [text_diff(f"{t} {period}", want[t], got[t]) for t in EXPORT_TYPES if got[t] != want[t]]
        assert not problems, "\n".join(problems)
        self.closed_exports[period] = got
        self.check_row_counts()

    def reopen(self, period: int) -> None:
        close.reopen_period(self.con, period, home_currency=HOME, actor="property")
        self.ref.reopen(period)

    def rows(self, query: str) -> list[dict]:
        cur = self.con.execute(query)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def text_diff(name: str, want: str, got: str, limit: int = 30) -> str:
    lines = list(difflib.unified_diff(want.splitlines(), got.splitlines(), "reference", "sql", lineterm="", n=0))
    return f"--- {name} differs:\n" + "\n".join(lines[:limit])


def keyed_diff(name: str, want: dict, got: dict, limit: int = 12) -> list[str]:
    out = []
    for k in sorted(set(want) | set(got), key=repr):
        if want.get(k) != got.get(k):
            out.append(f"{name} {k}: reference {want.get(k)} | sql {got.get(k)}")
    return out[:limit] + ([f"{name}: … {len(out) - limit} more"] if len(out) > limit else [])


def s(v) -> str:
    return "" if v is None else v


def nonzero(values: tuple) -> bool:
    return any(v != 0 for v in values)


def sql_tables(pair: Pair) -> dict[str, dict]:
    lp = pair.rows("SELECT * FROM line_periods")
    out: dict[str, dict] = {"rollforward": {}, "backlog": {}, "expenses": {}, "journals": {}, "invoices": {}}
    for r in lp:
        key = (r["Actg_Period"], r["Sales_Order_Id"], r["Sales_Order_Item_Id"])
        amounts = (r["Beginning_Unearned_Revenue"], r["New_Billing"], r["Revenue"], r["Foreign_Currency_Change"],
                   r["Adjustment_To_Unearned_Revenue"], r["Ending_Unearned_Revenue"], r["Beginning_Unbilled_Receivable"],
                   r["Ending_Unbilled_Receivable"])
        if nonzero(amounts):
            out["rollforward"][key] = (s(r["Reference_Invoice_Number"]), s(r["Product_Code"]), s(r["Product_Name"]),
                                       r["Contract_Date"], r["Currency"], r["Customer_Id"], r["Booking_Amount"], *amounts)
        if r["Ending_Backlog"] is not None:
            backlog = (r["Beginning_Backlog"], r["New_Booking"], r["Revenue"], r["Ending_Backlog"])
            if nonzero(backlog):
                out["backlog"][key] = (s(r["Product_Code"]), *backlog)
        expense = (r["Beginning_Deferred_Expense"], r["New_Commissions"], r["Commission_Amortization"],
                   r["Ending_Deferred_Expense"])
        if nonzero(expense):
            out["expenses"][key] = (r["Product_Id"], *expense)
    for j in pair.rows("SELECT * FROM journal_lines"):
        key = (j["Actg_Period"], j["Sales_Order_Id"], j["Sales_Order_Item_Id"], j["Account_Type"])
        out["journals"][key] = (j["Account_Id"], j["Product_Id"], j["Customer_Id"], j["Link_Id"], s(j["Class"]),
                                j["Net_Debit"], j["Currency"], s(j["Subsidiary_Id"]))
    for i in pair.rows("SELECT * FROM invoice_register WHERE Billing_Amount <> 0"):
        key = (i["Actg_Period"], i["Sales_Order_Id"], i["Sales_Order_Item_Id"], i["Invoice_Number"], i["Invoice_Line"],
               i["Currency"])
        out["invoices"][key] = (i["Billing_Date"], i["Billing_Amount"])
    out["orders"] = {
        o["Sales_Order_Item_Id"]: (o["Sales_Order_Id"], o["Product_Id"], o["Customer_Id"], o["Order_Date"],
                                   o["Bookings_Amount"], o["Quantity"], o["List_Price"], o["Sale_Price"],
                                   o["Allocated_Revenue"], o["IsActive"], o["Service_Start_Date"], o["Service_End_Date"],
                                   o["MRR"], o["Duration_Hundredths"], o["Currency"], s(o["Reference_Invoice_Number"]))
        for o in pair.rows("SELECT * FROM orders")
    }
    out["held"] = {h["Sales_Order_Item_Id"] for h in pair.rows("SELECT * FROM held_lines")}
    return out


def ref_tables(pair: Pair) -> dict[str, dict]:
    t = pair.ref.tables()
    out: dict[str, dict] = {"rollforward": {}, "backlog": {}, "expenses": {}, "journals": {}, "invoices": {}}
    for r in t["rollforward"]:
        key = (r["Actg_Period"], r["Sales_Order_Id"], r["Sales_Order_Item_Id"])
        amounts = (r["Beginning_Unearned_Revenue"], r["New_Billing"], r["Revenue"], r["Foreign_Currency_Change"],
                   r["Adjustment_To_Unearned_Revenue"], r["Ending_Unearned_Revenue"], r["Beginning_Unbilled_Receivable"],
                   r["Ending_Unbilled_Receivable"])
        if nonzero(amounts):
            out["rollforward"][key] = (r["Reference_Invoice_Number"], r["Product_Code"], r["Product_Name"],
                                       r["Contract_Date"], r["Currency"], r["Current_Customer_Id"], r["Booking_Amount"],
                                       *amounts)
    for r in t["backlog"]:
        backlog = (r["Beginning_Backlog"], r["New_Booking"], r["Total_Revenue"], r["Ending_Backlog"])
        if nonzero(backlog):
            out["backlog"][(r["Actg_Period"], r["Sales_Order_Id"], r["Sales_Order_Item_Id"])] = (r["Product_Code"], *backlog)
    for r in t["expenses"]:
        expense = (r["Beginning_Deferred_Expense"], r["New_Commissions"], r["Commission_Amortization"],
                   r["Ending_Deferred_Expense"])
        if nonzero(expense):
            out["expenses"][(r["Actg_Period"], r["Sales_Order_Id"], r["Sales_Order_Item_Id"])] = (r["Product_Id"], *expense)
    for j in t["journals"]:
        key = (j["Actg_Period"], j["Sales_Order_Id"], j["Sales_Order_Item_Id"], j["Account_Type"])
        out["journals"][key] = (j["Account_Id"], j["Product_Id"], j["Customer_Id"], j["Link_Id"], j["Class"],
                                j["Debit_Amount"] - j["Credit_Amount"], j["Currency"], j["Subsidiary_Id"])
    for i in t["invoices"]:
        key = (i["Actg_Period"], i["Sales_Order_Id"], i["Sales_Order_Item_Id"], i["Invoice_Number"], i["Invoice_Line"],
               i["Currency"])
        out["invoices"][key] = (i["Billing_Date"], i["Billing_Amount"])
    first_open = None if pair.ref.last_closed is None else next_period(pair.ref.last_closed)
    out["orders"] = {
        o["Sales_Order_Item_Id"]: (o["Sales_Order_Id"], o["Product_Id"], o["Customer_Id"], o["Order_Date"],
                                   o["Bookings_Amount"], o["Quantity"], o["List_Price"], o["Sale_Price"],
                                   o["Allocated_Revenue"], o["IsActive"], o["Service_Start_Date"], o["Service_End_Date"],
                                   o["MRR"], o["Duration"], o["Currency"], o["Reference_Invoice_Number"])
        for o in t["orders"]
        if o["Actg_Period"] == first_open
    }
    out["held"] = {h["Sales_Order_Item_Id"] for h in t["held_lines"]}
    return out


def compare_tables(pair: Pair, step: str) -> dict[str, dict]:
    got, want = sql_tables(pair), ref_tables(pair)
    problems = []
    for name in want:
        problems += keyed_diff(name, want[name], got[name]) if name != "held" else (
            [f"held: reference {sorted(want[name])} | sql {sorted(got[name])}"] if want[name] != got[name] else []
        )
    assert not problems, f"after {step}:\n" + "\n".join(problems)
    return got


def check_invariants(pair: Pair, step: str) -> None:
    """SPEC §4 invariants recomputed in plain Python from the SQL tables."""
    problems = []
    held = {h["Sales_Order_Item_Id"] for h in pair.rows("SELECT * FROM held_lines")}
    by_line: dict[str, list[dict]] = defaultdict(list)
    for r in pair.rows("SELECT * FROM line_periods ORDER BY Sales_Order_Item_Id, Actg_Period"):
        by_line[r["Sales_Order_Item_Id"]].append(r)
    for item, rows in by_line.items():
        prev = None
        for r in rows:
            where = f"{item} {r['Actg_Period']}"
            beg = r["Beginning_Unearned_Revenue"] - r["Beginning_Unbilled_Receivable"]
            end = r["Ending_Unearned_Revenue"] - r["Ending_Unbilled_Receivable"]
            flow = r["New_Billing"] + r["Foreign_Currency_Change"] - r["Revenue"] + r["Adjustment_To_Unearned_Revenue"]
            if beg + flow != end:
                problems.append(f"{where}: rollforward {beg} + {flow} ≠ {end}")
            hbeg = r["Beginning_Unearned_Home"] - r["Beginning_Unbilled_Home"]
            hend = r["Ending_Unearned_Home"] - r["Ending_Unbilled_Home"]
            hflow = r["New_Billing_Home"] + r["Foreign_Currency_Change_Home"] - r["Revenue_Home"] + r["Adjustment_Home"]
            if hbeg + hflow != hend:
                problems.append(f"{where}: home rollforward {hbeg} + {hflow} ≠ {hend}")
            if min(r["Ending_Unearned_Revenue"], r["Ending_Unbilled_Receivable"]) != 0:
                problems.append(f"{where}: both unearned and unbilled, or a negative balance")
            if r["Ending_Backlog"] is not None and (
                r["Beginning_Backlog"] + r["New_Booking"] - r["Revenue"] != r["Ending_Backlog"]
            ):
                problems.append(f"{where}: backlog does not roll forward")
            if r["Beginning_Deferred_Expense"] + r["New_Commissions"] - r["Commission_Amortization"] != r["Ending_Deferred_Expense"]:
                problems.append(f"{where}: deferred expense does not roll forward")
            if prev is not None and next_period(prev["Actg_Period"]) == r["Actg_Period"]:
                for b, e in (("Beginning_Unearned_Revenue", "Ending_Unearned_Revenue"),
                             ("Beginning_Unbilled_Receivable", "Ending_Unbilled_Receivable"),
                             ("Beginning_Deferred_Expense", "Ending_Deferred_Expense"),
                             ("Beginning_Unearned_Home", "Ending_Unearned_Home")):
                    if r[b] != prev[e]:
                        problems.append(f"{where}: {b} {r[b]} ≠ previous {e} {prev[e]}")
            prev = r
    # debits = credits per period and subsidiary
    net: dict[tuple, int] = defaultdict(int)
    for j in pair.rows("SELECT Actg_Period, Subsidiary_Id, Net_Debit FROM journal_lines"):
        net[(j["Actg_Period"], j["Subsidiary_Id"])] += j["Net_Debit"]
    problems += [f"journals of {k} do not balance: {v}" for k, v in net.items() if v]
    # Σ revenue of each non-usage line over all periods = its allocation; allocation sums to bookings
    lines = pair.rows("SELECT * FROM order_lines")
    for ln in lines:
        if ln["Revenue_Rule"] != "usage" and ln["Sales_Order_Item_Id"] not in held:
            total = sum(r["Revenue"] for r in by_line.get(ln["Sales_Order_Item_Id"], []))
            if total != ln["Allocated_Revenue"]:
                problems.append(f"{ln['Sales_Order_Item_Id']}: Σ revenue {total} ≠ allocation {ln['Allocated_Revenue']}")
    orders: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for ln in lines:
        if ln["IsActive"] and ln["Revenue_Rule"] != "usage":
            orders[ln["Sales_Order_Id"]][0] += ln["Bookings_Amount"]
            orders[ln["Sales_Order_Id"]][1] += ln["Allocated_Revenue"]
    problems += [f"order {o}: allocation {a} ≠ bookings {t}" for o, (t, a) in orders.items() if t != a]
    assert not problems, f"after {step}:\n" + "\n".join(problems[:20])


@pytest.mark.parametrize("seed", SEEDS)
def test_sql_engine_matches_reference(tmp_path: Path, seed: int) -> None:
    sc = Scenario(seed)
    pair = Pair(tmp_path)

    def step(name: str) -> None:
        compare_tables(pair, name)
        check_invariants(pair, name)

    pair.load(sc.batch1)
    step("import batch 1")
    pair.close(sc.p1)  # the first close: every earlier period closes with it
    step(f"close {sc.p1}")
    pair.close(sc.p2)
    step(f"close {sc.p2}")
    pair.load(sc.batch2)
    step("import batch 2")
    # closed periods never change: a re-export after the modification batch is byte-for-byte the same
    for p in (sc.p1, sc.p2):
        assert pair.sql_export(p, f"again-{p}") == pair.closed_exports[p], f"export of closed {p} changed"
    first_p2 = pair.closed_exports[sc.p2]
    pair.close(sc.p3)
    step(f"close {sc.p3}")
    pair.reopen(sc.p2)
    step(f"reopen {sc.p2}")
    pair.close(sc.p2)
    step(f"re-close {sc.p2}")
    pair.close(sc.p3)
    step(f"re-close {sc.p3}")
    assert pair.sql_export(sc.p1, "again-p1-final") == pair.closed_exports[sc.p1]
    # the re-close of P2 reported the modification batch's catch-up, which the first close could not
    assert pair.closed_exports[sc.p2] != first_p2
