"""An independent, pure-Python reference implementation of SPEC.md §2, §4, §5 and §6 (close export).

It is a test oracle for the DuckDB engine: it shares no code with `revrec_pipelines`, favours clarity
over speed (it runs on hundreds of lines) and never uses binary floating point for money. Every money
value is an integer number of cents; exact intermediate values are `fractions.Fraction`; rounding is
half away from zero to the cent, once, where SPEC §4 says.

The ledger holds the current input state (one dict per SPEC §2 file type, keyed by the type's key, an
upsert replacing the row) and the frozen state of closed periods (every row a closed period reports,
copied at its close). Each call to `tables()`, `close()` or `close_export()` recomputes the open periods
from the inputs and the frozen state, which is what the "closed periods never change" rule says:

* periods `<= L` (the last closed period) report their frozen rows;
* `O = L + 1` reports, per series, (current cumulative through O) - (frozen cumulative through L);
* periods `> O` report the current ideal schedule;
* balances of open periods start from the frozen balances of L.

Choices where SPEC.md is silent are listed in `CHOICES` below (and in the module's callers' docs).
"""

from __future__ import annotations

import copy
import csv
import io
import zipfile
from calendar import monthrange
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

CHOICES = """
1. Rows per line: a line's rows run from its first period F (earliest of the Order_Date period, the
   service-start period and its first invoice / usage / commission) to its last period E (latest of
   the contract's last period and its last event).  In open periods they run from max(F, O) to E.
   A line whose range ends before O (or starts after O) still gets a row at O when anything in that
   row is non-zero (a catch-up, a beginning balance to true up), and then rows run on contiguously.
   tables() lists every row of that range (zero rows included); exports omit all-zero rows.
2. Held line (no rate line currency -> home on its Order_Date, or no rate for one of its foreign-
   currency invoices on the invoice date or the Order_Date): it has no open-period rows in any table
   (rollforward, backlog, expenses, journals, invoices register, orders) and is listed in
   tables()["held_lines"]; its frozen closed-period rows stay (closed periods never change).  It
   still counts in its order's allocation and contract last period (both are line-currency only).
3. Invoices register: one row per invoice line, in max(period(Billing_Date), O).  A changed invoice
   already reported in a closed period gets a row in max(period(new Billing_Date), O) carrying the
   difference (current - already reported) per (Invoice_Number, Invoice_Line, Sales_Order_Item_Id,
   Currency); a currency or line change reverses the old row in O and reports the new one.  So the
   register of all periods always sums to the current invoices, like New_Billing.  Rows of zero
   amount are not listed.
4. Orders: closed periods keep the snapshot taken at their close (lines with Order_Date <= end of the
   period; the first close snapshots every history period too); open state: every non-held line, with
   Actg_Period = O (None before the first close).  Cancelled lines are listed with IsActive false,
   Allocated_Revenue 0.00 and MRR 0.00 (Bookings_Amount stays Quantity x Sale_Price).
5. A cancelled line's ideal schedules (revenue and backlog booking) are 0; a cancelled usage line too
   recognizes nothing.  Its invoices and commissions still count (commission amortization follows the
   line's pattern whatever its status).
6. Invoice-as-contract service period: start = Service_Start_Date or Billing_Date; end =
   Service_End_Date or start.  Its subsidiary is its customer's.
7. A line that disappears from the input after being frozen (e.g. an invoice-as-contract line whose
   invoice now names an order line) reverses everything in O: its ideal schedules are 0 and O is its
   contract's last period, so its balances are trued up there.
8. Events whose date is after the service period still extend the line's rows (E); since every
   period >= the contract's last period trues the position up, such billing is adjusted out there.
9. close() checks, for the periods it freezes: no held line anywhere, and every non-zero journal line
   has an Account_Id.  reopen(P) reopens P and every later period; all periods < P stay closed
   (L = P - 1), so the next close must be P.
"""

TYPE_ORDER = [
    "customers",
    "products",
    "subsidiaries",
    "account_mappings",
    "exchange_rates",
    "sales_orders",
    "invoices",
    "usage",
    "commissions",
]

KEYS = {
    "customers": ("customer_id",),
    "products": ("product_id",),
    "subsidiaries": ("subsidiary_id",),
    "account_mappings": ("account_type", "subsidiary_id"),
    "exchange_rates": ("from_currency", "to_currency", "rate_date"),
    "sales_orders": ("sales_order_item_id",),
    "invoices": ("invoice_number", "invoice_line"),
    "usage": ("sales_order_item_id", "usage_date"),
    "commissions": ("sales_order_item_id", "commission_date"),
}

ACCOUNT_TYPES = [
    "Contra Revenue",
    "Revenue",
    "Deferred Revenue",
    "Unbilled Receivable",
    "Deferred Expense",
    "Expense Clearing",
    "Expense Recognized",
]

CUSTOM_FIELDS = [f"BS_CustomField{i:02d}" for i in range(2, 11)]

EXPORT_COLUMNS = {
    "unearned_revenue_rollforward": [
        "Actg_Period", "Reference_Invoice_Number", "Sales_Order_Id", "Sales_Order_Item_Id", "Product_Code",
        "Product_Name", "Contract_Date", "Currency", "Current_Customer_Id", "Beginning_Unearned_Revenue",
        "Booking_Amount", "New_Billing", "Revenue", "Foreign_Currency_Change",
        "Adjustment_To_Unearned_Revenue", "Ending_Unearned_Revenue", "Beginning_Unbilled_Receivable",
        "Ending_Unbilled_Receivable",
    ],
    "revenue": [
        "Actg_Period", "Reference_Invoice_Number", "Sales_Order_Id", "Sales_Order_Item_Id", "Product_Code",
        "Product_Name", "Contract_Date", "Currency", "Current_Customer_Id", "Revenue",
    ],
    "deferred_revenue_balance": [
        "Actg_Period", "Reference_Invoice_Number", "Sales_Order_Id", "Sales_Order_Item_Id", "Product_Code",
        "Product_Name", "Contract_Date", "Currency", "Current_Customer_Id", "Ending_Unearned_Revenue",
    ],
    "orders": [
        "Actg_Period", "Sales_Order_Id", "Sales_Order_Item_Id", "Product_Id", "Customer_Id", "Order_Date",
        "Bookings_Amount", "Quantity", "List_Price", "Sale_Price", "Allocated_Revenue", "IsActive",
        "Service_Start_Date", "Service_End_Date", "MRR", "Duration", "Currency", "Reference_Invoice_Number",
    ],
    "journals": [
        "Actg_Period", "Sales_Order_Id", "Sales_Order_Item_Id", "Account_Id", "Product_Id", "Customer_Id",
        "Link_Id", "Class", "Account_Type", "Credit_Amount", "Debit_Amount", "Currency",
    ],
    "invoices": [
        "Actg_Period", "Sales_Order_Id", "Sales_Order_Item_Id", "Invoice_Number", *CUSTOM_FIELDS,
        "Billing_Date", "Billing_Amount", "Currency",
    ],
    "control": ["Closed_Period", "Export_Timestamp"],
    "expenses": [
        "Actg_Period", "Sales_Order_Id", "Sales_Order_Item_Id", "Product_Id", "Beginning_Deferred_Expense",
        "New_Commissions", "Commission_Amortization", "Ending_Deferred_Expense",
    ],
    "revenue_backlog": [
        "Actg_Period", "Sales_Order_Id", "Sales_Order_Item_Id", "Product_Code", "Beginning_Backlog",
        "New_Booking", "Total_Revenue", "Ending_Backlog",
    ],
}

# Columns whose all-zero rows are omitted from exports (SPEC §6); orders and control are never omitted.
AMOUNT_COLUMNS = {
    "unearned_revenue_rollforward": [
        "Beginning_Unearned_Revenue", "New_Billing", "Revenue", "Foreign_Currency_Change",
        "Adjustment_To_Unearned_Revenue", "Ending_Unearned_Revenue", "Beginning_Unbilled_Receivable",
        "Ending_Unbilled_Receivable",
    ],
    "revenue": ["Revenue"],
    "deferred_revenue_balance": ["Ending_Unearned_Revenue"],
    "journals": ["Credit_Amount", "Debit_Amount"],
    "invoices": ["Billing_Amount"],
    "expenses": [
        "Beginning_Deferred_Expense", "New_Commissions", "Commission_Amortization", "Ending_Deferred_Expense",
    ],
    "revenue_backlog": ["Beginning_Backlog", "New_Booking", "Total_Revenue", "Ending_Backlog"],
}

CENT_COLUMNS = {
    "Beginning_Unearned_Revenue", "Booking_Amount", "New_Billing", "Revenue", "Foreign_Currency_Change",
    "Adjustment_To_Unearned_Revenue", "Ending_Unearned_Revenue", "Beginning_Unbilled_Receivable",
    "Ending_Unbilled_Receivable", "Bookings_Amount", "Allocated_Revenue", "MRR", "Credit_Amount",
    "Debit_Amount", "Billing_Amount", "Beginning_Deferred_Expense", "New_Commissions",
    "Commission_Amortization", "Ending_Deferred_Expense", "Beginning_Backlog", "New_Booking",
    "Total_Revenue", "Ending_Backlog",
    "Duration",  # stored in hundredths of a month, written with 2 decimals like money
}
PLAIN_DECIMAL_COLUMNS = {"Quantity", "List_Price", "Sale_Price"}
DATE_COLUMNS = {"Contract_Date", "Order_Date", "Service_Start_Date", "Service_End_Date", "Billing_Date"}
RAW_COLUMNS = {"Actg_Period", "Closed_Period", "Export_Timestamp"}

# Series of a line that the freeze rule applies to: line currency, and their home-currency twins.
LINE_SERIES = ("new_booking", "billing", "fcc", "revenue", "commissions", "amort")
HOME_SERIES = ("billing", "fcc", "revenue", "commissions", "amort")
BALANCES = ("P", "BL", "DE", "HP")


# ----------------------------------------------------------------------------------------------------
# Numbers, dates, periods


def round_half_away(x: Fraction | int) -> int:
    """Round an exact value to the nearest integer, halves away from zero."""
    x = Fraction(x)
    sign = -1 if x < 0 else 1
    n = abs(x)
    return sign * int(n + Fraction(1, 2)) if n.denominator != 1 else int(x)


def to_cents(value: str | Decimal | Fraction) -> int:
    return round_half_away(Fraction(Decimal(value) if isinstance(value, str) else value) * 100)


def money(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def plain_decimal(d: Decimal | None) -> str:
    if d is None:
        return ""
    text = format(d.normalize(), "f")
    return "0" if text in ("-0", "") else text


def parse_date(s: str) -> date:
    return date.fromisoformat(s.strip())


def period_of(d: date) -> int:
    return d.year * 100 + d.month


def next_period(p: int) -> int:
    y, m = divmod(p, 100)
    return (y + 1) * 100 + 1 if m == 12 else p + 1


def prev_period(p: int) -> int:
    y, m = divmod(p, 100)
    return (y - 1) * 100 + 12 if m == 1 else p - 1


def period_range(a: int, b: int) -> list[int]:
    out = []
    p = a
    while p <= b:
        out.append(p)
        p = next_period(p)
    return out


def period_first_day(p: int) -> date:
    return date(p // 100, p % 100, 1)


def period_last_day(p: int) -> date:
    y, m = divmod(p, 100)
    return date(y, m, monthrange(y, m)[1])


def add_months(d: date, k: int) -> date:
    y, m = divmod(d.month - 1 + k, 12)
    y += d.year
    m += 1
    return date(y, m, min(d.day, monthrange(y, m)[1]))


def duration_hundredths(start: date, end: date) -> int:
    """SPEC §6 Duration x 100: whole months k (the largest with start + k months <= end + 1 day, the
    k months added at once, day clamped) plus the remaining days over the length of the month in which
    they begin; rounded to 2 decimals half away from zero."""
    stop = end + timedelta(days=1)
    k = 0
    while add_months(start, k + 1) <= stop:
        k += 1
    base = add_months(start, k)
    rest = (stop - base).days
    month_len = monthrange(base.year, base.month)[1]
    return round_half_away((k + Fraction(rest, month_len)) * 100)


def fraction(value: str) -> Fraction:
    return Fraction(Decimal(value.strip()))


# ----------------------------------------------------------------------------------------------------
# Ideal schedules (SPEC §4): amount A in cents over [start, end]


def schedule_ratable_daily(amount: int, start: date, end: date) -> dict[int, int]:
    total_days = (end - start).days + 1
    out: dict[int, int] = {}
    periods = period_range(period_of(start), period_of(end))
    for p in periods[:-1]:
        lo = max(start, period_first_day(p))
        hi = min(end, period_last_day(p))
        out[p] = round_half_away(Fraction(amount * ((hi - lo).days + 1), total_days))
    out[periods[-1]] = amount - sum(out.values())
    return out


def schedule_ratable_monthly(amount: int, start: date, end: date) -> dict[int, int]:
    periods = period_range(period_of(start), period_of(end))
    each = round_half_away(Fraction(amount, len(periods)))
    out = {p: each for p in periods[:-1]}
    out[periods[-1]] = amount - each * (len(periods) - 1)
    return out


def schedule(rule: str, amount: int, start: date, end: date) -> dict[int, int]:
    if rule == "ratable_daily":
        return schedule_ratable_daily(amount, start, end)
    if rule == "ratable_monthly":
        return schedule_ratable_monthly(amount, start, end)
    if rule == "point_in_time":
        return {period_of(start): amount}
    raise ValueError(f"no amount schedule for rule {rule!r}")


def allocate_largest_remainder(total: int, weights: dict[str, Fraction]) -> dict[str, int]:
    """Distribute `total` cents in proportion to `weights`: floor each share, then one cent each to the
    largest remainders, ties to the smallest key (code point)."""
    wsum = sum(weights.values())
    shares = {k: Fraction(total) * w / wsum for k, w in weights.items()}
    floors = {k: s.numerator // s.denominator for k, s in shares.items()}
    left = total - sum(floors.values())
    order = sorted(weights, key=lambda k: (-(shares[k] - floors[k]), k))
    for k in order[:left]:
        floors[k] += 1
    return floors


# ----------------------------------------------------------------------------------------------------
# The model of a line


@dataclass
class Line:
    item: str
    order: str
    customer: str
    product_id: str
    order_date: date
    quantity: Decimal
    sale_price: Decimal
    list_price: Decimal | None
    start: date
    end: date
    currency: str
    subsidiary: str
    active: bool
    rule: str
    ref_invoice: str
    product_code: str
    product_name: str
    product_class: str
    booking: int = 0
    allocated: int = 0
    invoices: list[dict] = field(default_factory=list)

    @property
    def is_usage(self) -> bool:
        return self.rule == "usage"


class HeldLineError(RuntimeError):
    pass


class UnmappedAccountError(RuntimeError):
    pass


class ReferenceLedger:
    """Input state + frozen closed periods; see the module docstring."""

    def __init__(self, home_currency: str = "USD") -> None:
        self.home = home_currency
        self.inputs: dict[str, dict[tuple, dict[str, str]]] = {t: {} for t in TYPE_ORDER}
        self.last_closed: int | None = None
        # frozen[item][period] = record (see _line_records); only periods <= last_closed
        self.frozen: dict[str, dict[int, dict]] = {}
        self.frozen_invoices: dict[int, list[dict]] = {}
        self.frozen_orders: dict[int, list[dict]] = {}
        self._index: dict[str, dict] = {}  # lookups built lazily, dropped whenever an input changes

    # ------------------------------------------------------------------ loading

    @staticmethod
    def file_type(name: str) -> str:
        stem = Path(name).stem.lower()
        for t in TYPE_ORDER:
            if stem.startswith(t):
                return t
        raise ValueError(f"unknown file type for {name!r}")

    def load_rows(self, file_type: str, rows: list[dict[str, str]]) -> None:
        """Apply one unit (upsert by key). Column names match case-insensitively after trimming."""
        table = self.inputs[file_type]
        self._index = {}
        for raw in rows:
            row = {(k or "").strip().lstrip("\ufeff").lower(): (v or "").strip() for k, v in raw.items()}
            key = tuple(row.get(k, "") for k in KEYS[file_type])
            if file_type == "exchange_rates":
                key = (key[0].upper(), key[1].upper(), key[2])
            table[key] = row

    def load_csv_dir(self, path: str | Path) -> None:
        """Apply every CSV (and ZIP of CSVs) of a folder, by type in dependency order, then by name."""
        units: list[tuple[int, str, list[dict[str, str]]]] = []
        for f in sorted(Path(path).iterdir()):
            if f.suffix.lower() == ".csv":
                units.append(self._unit(f.name, f.read_bytes()))
            elif f.suffix.lower() == ".zip":
                with zipfile.ZipFile(f) as z:
                    for name in sorted(z.namelist()):
                        if name.lower().endswith(".csv"):
                            units.append(self._unit(Path(name).name, z.read(name)))
        for _, _, rows_and_type in sorted(units, key=lambda u: (u[0], u[1])):
            file_type, rows = rows_and_type
            self.load_rows(file_type, rows)

    def _unit(self, name: str, data: bytes):
        file_type = self.file_type(name)
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
        return (TYPE_ORDER.index(file_type), name, (file_type, rows))

    # ------------------------------------------------------------------ rates

    def _pair_rate(self, x: str, y: str, on: date) -> Fraction | None:
        pairs = self._index.get("rates")
        if pairs is None:
            pairs = defaultdict(list)
            for (f, t, d), row in self.inputs["exchange_rates"].items():
                pairs[(f, t)].append((parse_date(d), fraction(row["rate"])))
            self._index["rates"] = pairs
        dated = [(d, r) for d, r in pairs.get((x, y), []) if d <= on]
        return max(dated)[1] if dated else None

    def _direct_or_inverse(self, x: str, y: str, on: date) -> Fraction | None:
        if x == y:
            return Fraction(1)
        r = self._pair_rate(x, y, on)
        if r is not None:
            return r
        r = self._pair_rate(y, x, on)
        if r is not None and r != 0:
            return 1 / r
        return None

    def rate(self, x: str, y: str, on: date) -> Fraction | None:
        """SPEC §4 Rates: direct; else exact 1/Rate of the inverse pair; else through home; 1 if X = Y."""
        r = self._direct_or_inverse(x, y, on)
        if r is not None:
            return r
        if self.home not in (x, y):
            a = self._direct_or_inverse(x, self.home, on)
            b = self._direct_or_inverse(self.home, y, on)
            if a is not None and b is not None:
                return a * b
        return None

    # ------------------------------------------------------------------ current lines

    def _lines(self) -> dict[str, Line]:
        products = {k[0]: r for k, r in self.inputs["products"].items()}
        customers = {k[0]: r for k, r in self.inputs["customers"].items()}
        lines: dict[str, Line] = {}
        for (item,), r in self.inputs["sales_orders"].items():
            product = products.get(r["product_id"], {})
            customer = customers.get(r["customer_id"], {})
            active = r.get("isactive", "").lower() not in ("false", "0", "no", "n", "f")
            lines[item] = Line(
                item=item,
                order=r["sales_order_id"],
                customer=r["customer_id"],
                product_id=r["product_id"],
                order_date=parse_date(r["order_date"]),
                quantity=Decimal(r["quantity"]),
                sale_price=Decimal(r["sale_price"]),
                list_price=Decimal(r["list_price"]) if r.get("list_price") else None,
                start=parse_date(r["service_start_date"]),
                end=parse_date(r["service_end_date"]),
                currency=r["currency"].upper(),
                subsidiary=r.get("subsidiary_id") or customer.get("subsidiary_id", ""),
                active=active,
                rule=(r.get("revenue_rule") or product.get("revenue_rule", "")).lower(),
                ref_invoice="",
                product_code=product.get("product_code", ""),
                product_name=product.get("product_name", ""),
                product_class=product.get("class", ""),
            )
            lines[item].booking = round_half_away(
                Fraction(lines[item].quantity) * Fraction(lines[item].sale_price) * 100
            )
        for (number, line_no), r in self.inputs["invoices"].items():
            inv = dict(r)
            inv["billing_date_d"] = parse_date(r["billing_date"])
            inv["cents"] = to_cents(r["billing_amount"])
            inv["currency_u"] = r["currency"].upper()
            if r.get("sales_order_item_id"):
                target = r["sales_order_item_id"]
            else:
                target = f"{number}-{line_no}"
                product = products.get(r["product_id"], {})
                customer = customers.get(r["customer_id"], {})
                start = parse_date(r["service_start_date"]) if r.get("service_start_date") else inv["billing_date_d"]
                end = parse_date(r["service_end_date"]) if r.get("service_end_date") else start
                lines[target] = Line(
                    item=target,
                    order=target,
                    customer=r["customer_id"],
                    product_id=r["product_id"],
                    order_date=inv["billing_date_d"],
                    quantity=Decimal(1),
                    sale_price=Decimal(inv["cents"]) / 100,
                    list_price=None,
                    start=start,
                    end=end,
                    currency=inv["currency_u"],
                    subsidiary=customer.get("subsidiary_id", ""),
                    active=True,
                    rule=product.get("revenue_rule", "").lower(),
                    ref_invoice=number,
                    product_code=product.get("product_code", ""),
                    product_name=product.get("product_name", ""),
                    product_class=product.get("class", ""),
                    booking=inv["cents"],
                    allocated=inv["cents"],
                )
            inv["target"] = target
            if target in lines:
                lines[target].invoices.append(inv)
        # Allocation (relative SSP, largest remainder) within each Sales_Order_Id of order lines.
        by_order: dict[str, list[Line]] = defaultdict(list)
        for ln in lines.values():
            if not ln.ref_invoice:
                by_order[ln.order].append(ln)
        for members in by_order.values():
            for ln in members:
                ln.allocated = 0
            eligible = [ln for ln in members if ln.active and not ln.is_usage]
            if not eligible:
                continue
            total = sum(ln.booking for ln in eligible)
            weights = {}
            for ln in eligible:
                ssp = products.get(ln.product_id, {}).get("ssp", "")
                if ssp:
                    unit = fraction(ssp)
                elif ln.list_price is not None:
                    unit = Fraction(ln.list_price)
                else:
                    unit = Fraction(ln.sale_price)
                weights[ln.item] = Fraction(ln.quantity) * unit
            if sum(weights.values()) == 0:
                for ln in eligible:
                    ln.allocated = ln.booking
            else:
                shares = allocate_largest_remainder(total, weights)
                for ln in eligible:
                    ln.allocated = shares[ln.item]
        return lines

    def _contract_last_period(self, lines: dict[str, Line]) -> dict[str, int]:
        last: dict[str, int] = {}
        for ln in lines.values():
            p = period_of(ln.end)
            last[ln.order] = max(last.get(ln.order, p), p)
        return {ln.item: last[ln.order] for ln in lines.values()}

    def _hold_reason(self, ln: Line) -> str | None:
        if self.rate(ln.currency, self.home, ln.order_date) is None:
            return f"no rate {ln.currency}->{self.home} on {ln.order_date.isoformat()}"
        for inv in ln.invoices:
            if inv["currency_u"] != ln.currency:
                for on in (inv["billing_date_d"], ln.order_date):
                    if self.rate(inv["currency_u"], ln.currency, on) is None:
                        return f"no rate {inv['currency_u']}->{ln.currency} on {on.isoformat()}"
        return None

    # ------------------------------------------------------------------ ideal series of a line

    def _ideal(self, ln: Line) -> dict[str, dict[int, int]]:
        ideal: dict[str, dict[int, int]] = {s: defaultdict(int) for s in LINE_SERIES}
        amount = ln.allocated if ln.active else 0
        if ln.is_usage:
            if ln.active:
                for u in self._by_item("usage", ln.item):
                    ideal["revenue"][period_of(parse_date(u["usage_date"]))] += to_cents(u["amount"])
        else:
            for p, v in schedule(ln.rule, amount, ln.start, ln.end).items():
                ideal["revenue"][p] += v
            ideal["new_booking"][min(period_of(ln.order_date), period_of(ln.start))] += amount
        for inv in ln.invoices:
            p = period_of(inv["billing_date_d"])
            if inv["currency_u"] == ln.currency:
                ideal["billing"][p] += inv["cents"]
            else:
                at_invoice = round_half_away(
                    inv["cents"] * self.rate(inv["currency_u"], ln.currency, inv["billing_date_d"])
                )
                at_order = round_half_away(inv["cents"] * self.rate(inv["currency_u"], ln.currency, ln.order_date))
                ideal["billing"][p] += at_invoice
                ideal["fcc"][p] += at_order - at_invoice
        for c in self._by_item("commissions", ln.item):
            cdate = parse_date(c["commission_date"])
            cp = period_of(cdate)
            cents = to_cents(c["amount"])
            ideal["commissions"][cp] += cents
            if ln.is_usage:
                ideal["amort"][cp] += cents
            else:
                for p, v in schedule(ln.rule, cents, ln.start, ln.end).items():
                    ideal["amort"][max(p, cp)] += v
        return ideal

    def _by_item(self, file_type: str, item: str) -> list[dict[str, str]]:
        """Usage or commission rows of one line (indexed once per computation)."""
        index = self._index.get(file_type)
        if index is None:
            index = defaultdict(list)
            for (key_item, _), row in self.inputs[file_type].items():
                index[key_item].append(row)
            self._index[file_type] = index
        return index.get(item, [])

    def _event_periods(self, ln: Line) -> list[int]:
        out = [period_of(inv["billing_date_d"]) for inv in ln.invoices]
        out += [period_of(parse_date(u["usage_date"])) for u in self._by_item("usage", ln.item)]
        out += [period_of(parse_date(c["commission_date"])) for c in self._by_item("commissions", ln.item)]
        return out

    # ------------------------------------------------------------------ records

    def _account(self, account_type: str, subsidiary: str) -> str | None:
        """The subsidiary's own mapping, else the default (empty Subsidiary_Id) one."""
        mappings = self.inputs["account_mappings"]
        for key in ((account_type, subsidiary), (account_type, "")):
            if key in mappings:
                return mappings[key]["account_id"]
        return None

    def _attrs(self, ln: Line) -> dict:
        return {
            "Reference_Invoice_Number": ln.ref_invoice,
            "Sales_Order_Id": ln.order,
            "Sales_Order_Item_Id": ln.item,
            "Product_Id": ln.product_id,
            "Product_Code": ln.product_code,
            "Product_Name": ln.product_name,
            "Class": ln.product_class,
            "Contract_Date": ln.order_date,
            "Currency": ln.currency,
            "Current_Customer_Id": ln.customer,
            "Subsidiary_Id": ln.subsidiary,
            "Booking_Amount": ln.booking,
            "is_usage": ln.is_usage,
        }

    def _record(self, period: int, attrs: dict, flows: dict, beg: dict, last_period: int) -> dict:
        """One line-period: reported flows (line + home), derived adjustment and balances, table rows."""
        P = beg["P"] + flows["billing"] + flows["fcc"] - flows["revenue"]
        adj = -P if period >= last_period else 0
        P += adj
        HP = beg["HP"] + flows["h_billing"] + flows["h_fcc"] - flows["h_revenue"]
        hadj = -HP if period >= last_period else 0
        HP += hadj
        BL = beg["BL"] + flows["new_booking"] - flows["revenue"]
        DE = beg["DE"] + flows["commissions"] - flows["amort"]
        end = {"P": P, "HP": HP, "BL": BL, "DE": DE}
        keys = {
            "Actg_Period": period,
            "Sales_Order_Id": attrs["Sales_Order_Id"],
            "Sales_Order_Item_Id": attrs["Sales_Order_Item_Id"],
        }
        rf = {
            **keys,
            "Reference_Invoice_Number": attrs["Reference_Invoice_Number"],
            "Product_Code": attrs["Product_Code"],
            "Product_Name": attrs["Product_Name"],
            "Contract_Date": attrs["Contract_Date"],
            "Currency": attrs["Currency"],
            "Current_Customer_Id": attrs["Current_Customer_Id"],
            "Beginning_Unearned_Revenue": max(beg["P"], 0),
            "Booking_Amount": attrs["Booking_Amount"],
            "New_Billing": flows["billing"],
            "Revenue": flows["revenue"],
            "Foreign_Currency_Change": flows["fcc"],
            "Adjustment_To_Unearned_Revenue": adj,
            "Ending_Unearned_Revenue": max(P, 0),
            "Beginning_Unbilled_Receivable": max(-beg["P"], 0),
            "Ending_Unbilled_Receivable": max(-P, 0),
        }
        backlog = None
        if not attrs["is_usage"]:
            backlog = {
                **keys,
                "Product_Code": attrs["Product_Code"],
                "Beginning_Backlog": beg["BL"],
                "New_Booking": flows["new_booking"],
                "Total_Revenue": flows["revenue"],
                "Ending_Backlog": BL,
            }
        expenses = {
            **keys,
            "Product_Id": attrs["Product_Id"],
            "Beginning_Deferred_Expense": beg["DE"],
            "New_Commissions": flows["commissions"],
            "Commission_Amortization": flows["amort"],
            "Ending_Deferred_Expense": DE,
        }
        net = {
            "Contra Revenue": flows["h_billing"] + flows["h_fcc"] + hadj,
            "Revenue": -flows["h_revenue"],
            "Deferred Revenue": -(max(HP, 0) - max(beg["HP"], 0)),
            "Unbilled Receivable": max(-HP, 0) - max(-beg["HP"], 0),
            "Deferred Expense": flows["h_commissions"] - flows["h_amort"],
            "Expense Clearing": -flows["h_commissions"],
            "Expense Recognized": flows["h_amort"],
        }
        journals = []
        for account_type in ACCOUNT_TYPES:
            amount = net[account_type]
            if amount == 0:
                continue
            journals.append(
                {
                    **keys,
                    "Account_Id": self._account(account_type, attrs["Subsidiary_Id"]),
                    "Product_Id": attrs["Product_Id"],
                    "Customer_Id": attrs["Current_Customer_Id"],
                    "Link_Id": f"{period}_{account_type}",
                    "Class": attrs["Class"],
                    "Account_Type": account_type,
                    "Credit_Amount": -amount if amount < 0 else 0,
                    "Debit_Amount": amount if amount > 0 else 0,
                    "Currency": self.home,
                    "Subsidiary_Id": attrs["Subsidiary_Id"],
                }
            )
        return {
            "period": period,
            "attrs": attrs,
            "flows": dict(flows),
            "end": end,
            "rollforward": rf,
            "backlog": backlog,
            "expenses": expenses,
            "journals": journals,
        }

    def _line_records(self, ln: Line | None, item: str, last_period: int | None) -> list[dict]:
        """Open-period records of one line (all periods before the first close)."""
        frozen = self.frozen.get(item, {})
        closed = self.last_closed
        first_open = None if closed is None else next_period(closed)
        if ln is not None:
            attrs = self._attrs(ln)
            ideal = self._ideal(ln)
            r = self.rate(ln.currency, self.home, ln.order_date)
            home = {
                f"h_{s}": {p: round_half_away(v * r) for p, v in ideal[s].items()} for s in HOME_SERIES
            }
            ideal = {**ideal, **home}
            first = min(
                [period_of(ln.order_date), period_of(ln.start), *self._event_periods(ln)]
            )
            last = max([last_period, *self._event_periods(ln)])
        else:  # the line vanished from the input after being frozen: reverse it in O
            attrs = frozen[max(frozen)]["attrs"]
            ideal = {}
            # no rows unless something is left to reverse at O, which is also its contract's last period
            first = last = prev_period(first_open)
            last_period = first_open
        series = [*LINE_SERIES, *(f"h_{s}" for s in HOME_SERIES)]
        beg = dict.fromkeys(BALANCES, 0)
        if closed is None:
            periods = period_range(first, last)
            flows_of = {p: {s: ideal.get(s, {}).get(p, 0) for s in series} for p in periods}
        else:
            if frozen:
                beg = dict(frozen[max(frozen)]["end"])
            at_o = {
                s: sum(v for p, v in ideal.get(s, {}).items() if p <= first_open)
                - sum(rec["flows"][s] for rec in frozen.values())
                for s in series
            }
            nonzero_at_o = any(at_o.values()) or any(beg.values())
            start = first_open if (first <= first_open or nonzero_at_o) else first
            # a line whose range ended before O gets a row at O only for something non-zero there
            periods = ([first_open] if nonzero_at_o else []) if last < first_open else period_range(start, last)
            flows_of = {}
            for p in periods:
                flows_of[p] = at_o if p == first_open else {s: ideal.get(s, {}).get(p, 0) for s in series}
        records = []
        for p in periods:
            rec = self._record(p, attrs, flows_of[p], beg, last_period)
            records.append(rec)
            beg = rec["end"]
        return records

    def _state(self) -> dict:
        self._index = {}
        lines = self._lines()
        last_periods = self._contract_last_period(lines)
        held = {}
        records: dict[str, list[dict]] = {}
        for item, ln in sorted(lines.items()):
            reason = self._hold_reason(ln)
            if reason:
                held[item] = reason
                continue
            records[item] = self._line_records(ln, item, last_periods[item])
        for item in sorted(set(self.frozen) - set(lines)):
            records[item] = self._line_records(None, item, 0)
        return {
            "lines": lines,
            "held": held,
            "records": records,
            "invoices": self._open_invoices(lines, held),
            "orders": [self._order_row(ln) for ln in lines.values() if ln.item not in held],
        }

    # ------------------------------------------------------------------ invoices register and orders

    def _open_invoices(self, lines: dict[str, Line], held: dict[str, str]) -> list[dict]:
        first_open = None if self.last_closed is None else next_period(self.last_closed)
        reported: dict[tuple, int] = defaultdict(int)
        last_seen: dict[tuple, dict] = {}
        for period in sorted(self.frozen_invoices):
            for row in self.frozen_invoices[period]:
                key = (row["Invoice_Number"], row["Invoice_Line"], row["Sales_Order_Item_Id"], row["Currency"])
                reported[key] += row["Billing_Amount"]
                last_seen[key] = row
        current: dict[tuple, dict] = {}
        for ln in lines.values():
            for inv in ln.invoices:
                key = (inv["invoice_number"], inv["invoice_line"], ln.item, inv["currency_u"])
                row = {
                    "Actg_Period": None,
                    "Sales_Order_Id": ln.order,
                    "Sales_Order_Item_Id": ln.item,
                    "Invoice_Number": inv["invoice_number"],
                    "Invoice_Line": inv["invoice_line"],
                    **{c: inv.get(c.lower(), "") for c in CUSTOM_FIELDS},
                    "Billing_Date": inv["billing_date_d"],
                    "Billing_Amount": inv["cents"],
                    "Currency": inv["currency_u"],
                }
                current[key] = row
        out = []
        for key in sorted(set(current) | set(reported)):
            if key[2] in held:
                continue
            amount = (current[key]["Billing_Amount"] if key in current else 0) - reported.get(key, 0)
            if amount == 0:
                continue
            row = dict(current.get(key) or last_seen[key])
            p = period_of(row["Billing_Date"]) if key in current else first_open
            row["Actg_Period"] = p if first_open is None else max(p, first_open)
            row["Billing_Amount"] = amount
            out.append(row)
        return out

    @staticmethod
    def _order_row(ln: Line) -> dict:
        allocated = 0 if (ln.is_usage or not ln.active) else ln.allocated
        dur = duration_hundredths(ln.start, ln.end)
        ratable = ln.rule in ("ratable_daily", "ratable_monthly")
        mrr = round_half_away(Fraction(allocated * 100, dur)) if (ratable and dur) else 0
        return {
            "Actg_Period": None,
            "Sales_Order_Id": ln.order,
            "Sales_Order_Item_Id": ln.item,
            "Product_Id": ln.product_id,
            "Customer_Id": ln.customer,
            "Order_Date": ln.order_date,
            "Bookings_Amount": ln.booking,
            "Quantity": ln.quantity,
            "List_Price": ln.list_price,
            "Sale_Price": ln.sale_price,
            "Allocated_Revenue": allocated,
            "IsActive": ln.active,
            "Service_Start_Date": ln.start,
            "Service_End_Date": ln.end,
            "MRR": mrr,
            "Duration": dur,
            "Currency": ln.currency,
            "Reference_Invoice_Number": ln.ref_invoice,
        }

    # ------------------------------------------------------------------ close / reopen

    def close(self, period: int) -> None:
        if self.last_closed is not None and period != next_period(self.last_closed):
            raise ValueError(f"close {period}: the first open period is {next_period(self.last_closed)}")
        state = self._state()
        if state["held"]:
            raise HeldLineError(f"close {period}: held lines {sorted(state['held'])}")
        def closing(p: int) -> bool:
            return p <= period

        for recs in state["records"].values():
            for rec in recs:
                if closing(rec["period"]):
                    for j in rec["journals"]:
                        if j["Account_Id"] is None:
                            raise UnmappedAccountError(
                                f"close {period}: no account for {j['Account_Type']!r}"
                                f" (subsidiary {j['Subsidiary_Id']!r})"
                            )
        for item, recs in state["records"].items():
            for rec in recs:
                if closing(rec["period"]):
                    self.frozen.setdefault(item, {})[rec["period"]] = copy.deepcopy(rec)
        for row in state["invoices"]:
            if closing(row["Actg_Period"]):
                self.frozen_invoices.setdefault(row["Actg_Period"], []).append(dict(row))
        if self.last_closed is None:
            dates = [row["Order_Date"] for row in state["orders"]]
            snapshot_periods = period_range(min(period_of(min(dates)), period) if dates else period, period)
        else:
            snapshot_periods = [period]
        for p in snapshot_periods:
            end = period_last_day(p)
            self.frozen_orders[p] = [
                {**row, "Actg_Period": p} for row in state["orders"] if row["Order_Date"] <= end
            ]
        self.last_closed = period

    def reopen(self, period: int) -> None:
        if self.last_closed is None or period > self.last_closed:
            raise ValueError(f"reopen {period}: not a closed period")
        for item in list(self.frozen):
            self.frozen[item] = {p: r for p, r in self.frozen[item].items() if p < period}
            if not self.frozen[item]:
                del self.frozen[item]
        self.frozen_invoices = {p: r for p, r in self.frozen_invoices.items() if p < period}
        self.frozen_orders = {p: r for p, r in self.frozen_orders.items() if p < period}
        self.last_closed = prev_period(period)

    # ------------------------------------------------------------------ reported tables

    def tables(self) -> dict[str, list[dict]]:
        """Every reported row, all periods (frozen closed periods + open periods), integer cents.

        Keys: rollforward, backlog, expenses, journals (home currency), invoices, orders, held_lines.
        Rollforward / backlog / expenses hold every row of each line's range (zero rows included);
        journals hold only non-zero lines.  Orders: the snapshot of each closed period, plus the current
        lines with Actg_Period = first open period (None before any close).
        """
        state = self._state()
        all_records = [rec for recs in self.frozen.values() for rec in recs.values()]
        all_records += [rec for recs in state["records"].values() for rec in recs]

        def key(row: dict) -> tuple:
            return (row["Actg_Period"], row["Sales_Order_Id"], row["Sales_Order_Item_Id"])

        rollforward = sorted((rec["rollforward"] for rec in all_records), key=key)
        backlog = sorted((rec["backlog"] for rec in all_records if rec["backlog"] is not None), key=key)
        expenses = sorted((rec["expenses"] for rec in all_records), key=key)
        journals = sorted(
            (j for rec in all_records for j in rec["journals"]), key=lambda r: (*key(r), r["Account_Type"])
        )
        invoices = [r for rows in self.frozen_invoices.values() for r in rows] + state["invoices"]
        invoices.sort(key=lambda r: sort_key("invoices", r))
        first_open = None if self.last_closed is None else next_period(self.last_closed)
        orders = [r for p in sorted(self.frozen_orders) for r in self.frozen_orders[p]]
        orders += sorted(({**r, "Actg_Period": first_open} for r in state["orders"]), key=lambda r: key(r)[1:])
        held = [
            {
                "Sales_Order_Id": state["lines"][i].order,
                "Sales_Order_Item_Id": i,
                "Currency": state["lines"][i].currency,
                "Order_Date": state["lines"][i].order_date,
                "Reason": reason,
            }
            for i, reason in sorted(state["held"].items())
        ]
        return {
            "rollforward": copy.deepcopy(rollforward),
            "backlog": copy.deepcopy(backlog),
            "expenses": copy.deepcopy(expenses),
            "journals": copy.deepcopy(journals),
            "invoices": copy.deepcopy(invoices),
            "orders": copy.deepcopy(orders),
            "held_lines": held,
        }

    # ------------------------------------------------------------------ close-period export

    def close_export(self, period: int, export_timestamp: str | None = None) -> dict[str, str]:
        """The nine close-period export files of a closed period, as CSV text (SPEC §6)."""
        if self.last_closed is None or period > self.last_closed:
            raise ValueError(f"{period} is not closed")
        recs = [r[period] for r in self.frozen.values() if period in r]
        rows: dict[str, list[dict]] = {
            "unearned_revenue_rollforward": [r["rollforward"] for r in recs],
            "revenue": [r["rollforward"] for r in recs],
            "deferred_revenue_balance": [r["rollforward"] for r in recs],
            "orders": self.frozen_orders.get(period, []),
            "journals": [j for r in recs for j in r["journals"]],
            "invoices": self.frozen_invoices.get(period, []),
            "expenses": [r["expenses"] for r in recs],
            "revenue_backlog": [r["backlog"] for r in recs if r["backlog"] is not None],
        }
        if export_timestamp is None:
            export_timestamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        out = {}
        for file_type, table in rows.items():
            out[file_type] = render_csv(file_type, table)
        out["control"] = render_csv("control", [{"Closed_Period": period, "Export_Timestamp": export_timestamp}])
        return out


# ----------------------------------------------------------------------------------------------------
# CSV rendering (SPEC §6)


def _text(value: str) -> str:
    value = "" if value is None else str(value)
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


def format_value(column: str, value) -> str:
    if column in RAW_COLUMNS:
        return "" if value is None else str(value)
    if column in CENT_COLUMNS:
        return money(value)
    if column in PLAIN_DECIMAL_COLUMNS:
        return plain_decimal(value)
    if column in DATE_COLUMNS:
        return value.isoformat()
    if column == "IsActive":
        return "true" if value else "false"
    return _text(value)


def sort_key(file_type: str, row: dict) -> tuple:
    key = [row.get("Actg_Period") or 0, row.get("Sales_Order_Id", ""), row.get("Sales_Order_Item_Id", "")]
    if file_type == "journals":
        key.append(row["Account_Type"])
    if file_type == "invoices":
        line_no = row.get("Invoice_Line", "")
        key += [row["Invoice_Number"], (0, int(line_no), "") if line_no.isdigit() else (1, 0, line_no)]
    return tuple(key)


def render_csv(file_type: str, rows: list[dict]) -> str:
    columns = EXPORT_COLUMNS[file_type]
    amounts = AMOUNT_COLUMNS.get(file_type)
    kept = [r for r in rows if amounts is None or any(r[c] != 0 for c in amounts)]
    kept.sort(key=lambda r: sort_key(file_type, r))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for r in kept:
        writer.writerow([format_value(c, r[c]) for c in columns])
    return buf.getvalue()
