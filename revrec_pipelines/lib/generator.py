"""Realistic synthetic input files (SPEC §2) for the demo, the tests and the benchmarks.

`generate` writes one CSV per input type for a software company that sells subscriptions, services and
usage in several currencies through three subsidiaries; `generate_modifications` writes the next drop
for such a data set (contract modifications, new and late invoices, credit memos, new lines).

Everything is vectorized with polars, so a million order lines take seconds. Money is integer cents and
quantities and prices integer millionths, formatted as decimals: no binary float ever reaches a file.

Random numbers come from a counter-based generator evaluated inside polars (SplitMix64 of a key per
named stream plus the row index), not from a library's RNG stream: a seed gives byte-identical files
whatever the number of threads, and a new stream never shifts the values of another.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import polars as pl

# The header of every file we write (SPEC §2 column names, required columns first).
COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": ("Customer_Id", "Customer_Name", "Subsidiary_Id", "Email", "Country"),
    "products": (
        "Product_Id", "Product_Code", "Product_Name", "Revenue_Rule", "SSP", "Class", "Location", "Department",
    ),
    "subsidiaries": ("Subsidiary_Id", "Subsidiary_Name", "Rillet_Subsidiary_Id", "Intacct_Location_Id"),
    "account_mappings": ("Account_Type", "Account_Id", "Account_Name", "Subsidiary_Id"),
    "exchange_rates": ("From_Currency", "To_Currency", "Rate_Date", "Rate"),
    "sales_orders": (
        "Sales_Order_Id", "Sales_Order_Item_Id", "Customer_Id", "Product_Id", "Order_Date", "Quantity",
        "Sale_Price", "Service_Start_Date", "Service_End_Date", "Currency", "List_Price", "Subsidiary_Id",
        "IsActive", "Revenue_Rule",
    ),
    "invoices": (
        "Invoice_Number", "Invoice_Line", "Billing_Date", "Billing_Amount", "Currency", "Sales_Order_Id",
        "Sales_Order_Item_Id", "Customer_Id", "Product_Id", "Service_Start_Date", "Service_End_Date",
        "BS_CustomField02",
    ),
    "usage": ("Sales_Order_Item_Id", "Usage_Date", "Amount"),
    "commissions": ("Sales_Order_Item_Id", "Commission_Date", "Amount"),
}  # fmt: skip

# Rough value of one unit in US dollars: the starting point of each currency's monthly random walk.
USD_PER_UNIT: dict[str, float] = {
    "USD": 1.0, "EUR": 1.08, "GBP": 1.27, "CAD": 0.73, "AUD": 0.66, "NZD": 0.61, "CHF": 1.13, "JPY": 0.0067,
    "SEK": 0.095, "NOK": 0.093, "DKK": 0.145, "SGD": 0.74, "HKD": 0.128, "MXN": 0.058, "BRL": 0.19,
    "INR": 0.012, "PLN": 0.25, "ZAR": 0.054, "CNY": 0.138,
}  # fmt: skip
assert len(USD_PER_UNIT) <= 32  # a currency's position fits the 5 bits it has in an invoice key


@dataclass(frozen=True)
class GenerationSummary:
    """What was written. The files cover the days [first_date, as_of): a base data set's orders, invoices,
    usage and commissions are dated in it (service periods run past it, rates start before it); a
    modification batch covers the month after its base, but for its late invoices, dated before."""

    out_dir: Path
    rows: dict[str, int]  # file name → data rows
    first_date: date
    as_of: date
    seconds: float

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


# --- random numbers -----------------------------------------------------------------------------------

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


def _u64(value: int) -> pl.Expr:
    return pl.lit(value, dtype=pl.UInt64)


class _Rng:
    """Uniform numbers for (stream, index): SplitMix64(index × golden + key(seed, stream))."""

    def __init__(self, seed: int):
        self.seed = seed

    def key(self, stream: str) -> int:
        digest = hashlib.blake2b(f"{self.seed}/{stream}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little")

    def bits(self, stream: str, index: pl.Expr) -> pl.Expr:
        # UInt64 arithmetic wraps in polars, exactly like the reference algorithm; x // 2^k is x >> k.
        z = index.cast(pl.UInt64) * _u64(_GOLDEN) + _u64(self.key(stream))
        z = (z ^ (z // _u64(1 << 30))) * _u64(_MIX1)
        z = (z ^ (z // _u64(1 << 27))) * _u64(_MIX2)
        return z ^ (z // _u64(1 << 31))

    def uniform(self, stream: str, index: pl.Expr) -> pl.Expr:
        """Floats in [0, 1)."""
        return (self.bits(stream, index) // _u64(1 << 11)).cast(pl.Float64) * 2.0**-53

    def integers(self, stream: str, index: pl.Expr, low: int | pl.Expr, high: int | pl.Expr) -> pl.Expr:
        """Integers in [low, high); `high` must exceed `low`."""
        return (low + (self.uniform(stream, index) * (high - low)).floor()).cast(pl.Int64)

    def choice(self, stream: str, index: pl.Expr, weights: Sequence[float]) -> pl.Expr:
        """The position (0-based) drawn from `weights`."""
        total, acc, bounds = sum(weights), 0.0, []
        for w in weights[:-1]:
            acc += w / total
            bounds.append(acc)
        if not bounds:
            return pl.lit(0, dtype=pl.Int64)
        u = self.uniform(stream, index)
        return pl.lit(pl.Series(bounds, dtype=pl.Float64)).search_sorted(u, side="right").cast(pl.Int64)

    def py_uniform(self, stream: str, index: int) -> float:
        z = (index * _GOLDEN + self.key(stream)) & _MASK
        z = ((z ^ (z >> 30)) * _MIX1) & _MASK
        z = ((z ^ (z >> 27)) * _MIX2) & _MASK
        return ((z ^ (z >> 31)) >> 11) * 2.0**-53

    def few(self, stream: str, index: pl.Expr, eligible: pl.Expr, share: float, at_least: int) -> pl.Expr:
        """About `share` of the eligible rows, and never fewer than `at_least` of them (if there are)."""
        u = self.uniform(stream, index)
        threshold = u.filter(eligible).bottom_k(at_least).max()
        return (eligible & ((u < share) | (u <= threshold))).fill_null(False)


# --- formatting and dates -----------------------------------------------------------------------------


def _money(cents: pl.Expr) -> pl.Expr:
    """Integer cents → "-1234.05"."""
    magnitude = cents.abs()
    sign = pl.when(cents < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    return pl.concat_str(
        [sign, (magnitude // 100).cast(pl.Utf8), pl.lit("."), (magnitude % 100).cast(pl.Utf8).str.zfill(2)]
    )


def _decimal(micro: pl.Expr) -> pl.Expr:
    """Non-negative integer millionths → a plain decimal without trailing zeros ("2", "12.5", "0.000125")."""
    fraction = (micro % 1_000_000).cast(pl.Utf8).str.zfill(6).str.strip_chars_end("0")
    dot_fraction = pl.when(fraction == "").then(pl.lit("")).otherwise(pl.concat_str([pl.lit("."), fraction]))
    return pl.concat_str([(micro // 1_000_000).cast(pl.Utf8), dot_fraction])


def _price(micro: pl.Expr) -> pl.Expr:
    """A unit price: 2 decimals when it is whole cents, else up to 6."""
    return pl.when(micro % 10_000 == 0).then(_money(micro // 10_000)).otherwise(_decimal(micro))


def _parse_scaled(text: pl.Expr, decimals: int) -> pl.Expr:
    """A decimal string → an Int128 of 10^-decimals units, exactly (input has at most `decimals` places)."""
    negative = text.str.starts_with("-")
    parts = text.str.strip_chars_start("+-").str.split_exact(".", 1)
    whole = parts.struct.field("field_0").cast(pl.Int128)
    fraction = parts.struct.field("field_1").fill_null("").str.pad_end(decimals, "0").cast(pl.Int128)
    value = whole * 10**decimals + fraction
    return pl.when(negative).then(value * -1).otherwise(value)


def _booking(quantity_micro: pl.Expr, price_micro: pl.Expr) -> pl.Expr:
    """round(Quantity × Sale_Price) in cents, half away from zero (both are non-negative), exactly."""
    product = quantity_micro.cast(pl.Int128) * price_micro.cast(pl.Int128)
    return ((product + 5_000_000_000) // 10_000_000_000).cast(pl.Int64).alias("booking")


def _add_months(day: pl.Expr, months: int | pl.Expr) -> pl.Expr:
    """`day` plus whole months, the day clamped to the end of the target month."""
    by = pl.lit(f"{months}mo") if isinstance(months, int) else pl.format("{}mo", months)
    return day.dt.offset_by(by)


def _month_index(day: pl.Expr) -> pl.Expr:
    return day.dt.year().cast(pl.Int64) * 12 + day.dt.month().cast(pl.Int64) - 1


def _days(n: int | pl.Expr) -> pl.Expr:
    return pl.duration(days=n)


def _add_months_py(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    first_of_next = date(year + (month + 1) // 12, (month + 1) % 12 + 1, 1)
    return date(year, month + 1, min(day.day, (first_of_next - timedelta(days=1)).day))


def _ids(prefix: str, number: pl.Expr, width: int) -> pl.Expr:
    return pl.concat_str([pl.lit(prefix), number.cast(pl.Utf8).str.zfill(width)])


def _lookup(index: pl.Expr, values: Sequence, dtype: pl.DataType) -> pl.Expr:
    return index.replace_strict(list(range(len(values))), list(values), return_dtype=dtype)


# --- the catalog --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Offering:
    code: str
    name: str
    rule: str
    price_cents: int  # a year of a subscription, or one unit of a one-off or usage
    ssp: bool  # the product carries an SSP
    list_price: bool  # order lines carry a List_Price
    quantity: str  # one | seats | days | tb
    product_class: str
    location: str
    department: str
    weight_first: float  # how often it is an order's first line
    weight_other: float  # ... or one of its other lines


_OFFERINGS = (
    _Offering("PLAT-STD", "Platform Standard", "ratable_daily", 1_200_000, True, True, "one", "SaaS", "NYC", "Sales", 0.40, 0.0),
    _Offering("PLAT-ENT", "Platform Enterprise", "ratable_daily", 6_000_000, True, True, "one", "SaaS", "NYC", "Sales", 0.12, 0.0),
    _Offering("SEAT", "User seats", "ratable_monthly", 48_000, True, True, "seats", "SaaS", "BER", "Sales", 0.28, 0.07),
    _Offering("ANALYTICS", "Analytics add-on", "ratable_daily", 600_000, True, True, "one", "SaaS", "LON", "Product", 0.0, 0.14),
    _Offering("SUPPORT-PREM", "Premium support", "ratable_monthly", 900_000, False, True, "one", "Support", "LON", "Support", 0.0, 0.11),
    _Offering("STORAGE", "Storage per TB", "ratable_daily", 120_000, False, True, "tb", "Infrastructure", "TOR", "Engineering", 0.0, 0.09),
    _Offering("SANDBOX", "Sandbox environment", "ratable_daily", 240_000, False, False, "one", "SaaS", "TOR", "Engineering", 0.0, 0.04),
    _Offering("ONBOARD", "Onboarding", "point_in_time", 300_000, True, True, "one", "Services", "NYC", "Services", 0.05, 0.13),
    _Offering("TRAINING", "Training day", "point_in_time", 150_000, True, True, "days", "Services", "LON", "Services", 0.03, 0.10),
    _Offering("IMPL", "Implementation", "point_in_time", 1_500_000, False, True, "one", "Services", "BER", "Services", 0.02, 0.06),
    _Offering("APPLIANCE", "Edge appliance", "point_in_time", 250_000, False, False, "one", "Hardware", "TOR", "Operations", 0.0, 0.06),
    _Offering("API", "API calls", "usage", 0, False, False, "one", "Usage", "NYC", "Sales", 0.05, 0.10),
    _Offering("MESSAGES", "Messages", "usage", 0, False, False, "one", "Usage", "LON", "Sales", 0.03, 0.05),
    _Offering("OVERAGE", "Data overage", "usage", 0, False, False, "one", "Usage", "TOR", "Engineering", 0.02, 0.05),
)  # fmt: skip

# Subscription terms: months, code suffix, name suffix, price factor in percent of the annual price pro rata.
_TERMS = (
    (1, "MONTHLY", "monthly", 120),
    (12, "ANNUAL", "annual", 100),
    (24, "2YR", "2 years", 95),
    (36, "3YR", "3 years", 90),
)
_TERM_WEIGHTS = (0.12, 0.63, 0.10, 0.15)
_RATABLE = ("ratable_daily", "ratable_monthly")

_SUBSIDIARIES = (
    # id, name, natural currency, Intacct location
    ("SUB-US", "Northbeam Software Inc.", "USD", "100"),
    ("SUB-UK", "Northbeam Software Ltd", "GBP", "200"),
    ("SUB-DE", "Northbeam Software GmbH", "EUR", "300"),
)

_ACCOUNT_MAPPINGS = (
    ("Contra Revenue", "4900", "Billings contra revenue", None),
    ("Revenue", "4000", "Subscription and services revenue", None),
    ("Deferred Revenue", "2400", "Deferred revenue", None),
    ("Unbilled Receivable", "1250", "Unbilled receivable", None),
    ("Deferred Expense", "1400", "Deferred commissions", None),
    ("Expense Clearing", "2150", "Commissions clearing", None),
    ("Expense Recognized", "6100", "Commission expense", None),
    ("Revenue", "4002", "Revenue UK", "SUB-UK"),
    ("Deferred Revenue", "2402", "Deferred revenue UK", "SUB-UK"),
    ("Revenue", "4001", "Revenue DE", "SUB-DE"),
    ("Deferred Revenue", "2401", "Deferred revenue DE", "SUB-DE"),
    ("Unbilled Receivable", "1251", "Unbilled receivable DE", "SUB-DE"),
    ("Expense Recognized", "6101", "Commission expense US", "SUB-US"),
)

_NAME_FIRST = (
    "Northwind", "Contoso", "Fabrikam", "Tailspin", "Wingtip", "Litware", "Adventure Works", "Proseware",
    "Lucerne", "Alpine Ski", "Blue Yonder", "Coho", "Fourth Coffee", "Humongous", "Margie's", "Trey",
    "Wide World", "Woodgrove", "Graphic Design", "A. Datum", "Hart, Mercer & Vale", "Müller", "Bellows",
    "Cedar Point", "Silver Lake", "Redwood", "Harbor", "Summit", "Ironbridge", "Quarry", "Lakeshore", "Orchid",
)  # fmt: skip
_NAME_SLUG = (
    "northwind", "contoso", "fabrikam", "tailspin", "wingtip", "litware", "adventure-works", "proseware",
    "lucerne", "alpineski", "blueyonder", "coho", "fourthcoffee", "humongous", "margies", "trey",
    "wideworld", "woodgrove", "graphicdesign", "adatum", "hartmercervale", "mueller", "bellows",
    "cedarpoint", "silverlake", "redwood", "harbor", "summit", "ironbridge", "quarry", "lakeshore", "orchid",
)  # fmt: skip
_NAME_SECOND = (
    "Traders", "Systems", "Analytics", "Logistics", "Health", "Foods", "Energy", "Media", "Labs", "Works",
    "Capital", "Robotics", "Retail", "Insurance", "Studios", "Pharma",
)  # fmt: skip
_COMPANY_SUFFIX = {"US": "Inc.", "CA": "Ltd.", "GB": "Ltd", "DE": "GmbH", "FR": "SAS", "NL": "B.V.", "IE": "Ltd",
                   "ES": "S.L.", "JP": "Co., Ltd.", "AU": "Pty Ltd", "CH": "AG"}  # fmt: skip
_EURO_COUNTRIES = ("DE", "FR", "NL", "IE", "ES")


def _products_frame() -> pl.DataFrame:
    """The catalog: a product per offering, and per term for subscriptions (one SKU per term)."""
    rows = []
    for o_idx, o in enumerate(_OFFERINGS):
        terms = _TERMS if o.rule in _RATABLE else ((0, "", "", 100),)
        for t_pos, (months, code_suffix, name_suffix, factor) in enumerate(terms):
            if months:
                price = o.price_cents * months * factor // 1200
                product_id, code = f"P-{o.code}-{months}M", f"{o.code}-{code_suffix}"
                name = f"{o.name}, {name_suffix}"
            else:
                price, product_id, code, name = o.price_cents, f"P-{o.code}", o.code, o.name
            rows.append({
                "o_idx": o_idx, "t_pos": t_pos, "Product_Id": product_id, "Product_Code": code,
                "Product_Name": name, "Revenue_Rule": o.rule, "ssp_cents": price if o.ssp else None,
                "list_cents": price if o.list_price else None, "catalog_cents": price, "qty_style": o.quantity,
                "Class": o.product_class, "Location": o.location, "Department": o.department,
            })  # fmt: skip
    schema = {"ssp_cents": pl.Int64, "list_cents": pl.Int64, "catalog_cents": pl.Int64}
    return (
        pl.DataFrame(rows, schema_overrides=schema)
        .with_row_index("p_idx")
        .with_columns(pl.col("p_idx").cast(pl.Int64))
    )


def _product_index(products: pl.DataFrame, offering: pl.Expr, term_pos: pl.Expr) -> pl.Expr:
    """The product of an offering; subscriptions come in one SKU per term."""
    first = (
        products.group_by("o_idx")
        .agg(pl.col("p_idx").min())
        .sort("o_idx", maintain_order=True)["p_idx"]
        .to_list()
    )
    ratable = [o.rule in _RATABLE for o in _OFFERINGS]
    base = _lookup(offering, first, pl.Int64)
    return base + pl.when(_lookup(offering, ratable, pl.Boolean)).then(term_pos).otherwise(0)


def _join_products(frame: pl.LazyFrame, products: pl.DataFrame, columns: Sequence[str]) -> pl.LazyFrame:
    return frame.join(
        products.lazy().select("p_idx", *columns), on="p_idx", how="left", maintain_order="left"
    )


# --- the base data set --------------------------------------------------------------------------------


def _check_arguments(
    lines: int, months: int, currencies: Sequence[str], home_currency: str
) -> tuple[str, ...]:
    if lines < 1:
        raise ValueError(f"lines must be at least 1, got {lines}")
    if months < 1:
        raise ValueError(f"months must be at least 1, got {months}")
    currencies = tuple(currencies)
    if not currencies or len(set(currencies)) != len(currencies):
        raise ValueError(f"currencies must be a non-empty list without repeats, got {currencies}")
    unknown = [c for c in (*currencies, home_currency) if c not in USD_PER_UNIT]
    if unknown:
        raise ValueError(f"unsupported currencies {unknown}: the generator knows {sorted(USD_PER_UNIT)}")
    return currencies


def _customers(rng: _Rng, count: int, currencies: tuple[str, ...]) -> pl.DataFrame:
    idx = pl.col("c_idx")
    sub_pos = rng.choice("customer.subsidiary", idx, (0.45, 0.20, 0.20, 0.15))  # 3 = no subsidiary
    natural = [currencies.index(s[2]) if s[2] in currencies else -1 for s in _SUBSIDIARIES] + [-1]
    natural_pos = _lookup(sub_pos, natural, pl.Int64)
    currency_pos = (
        pl.when((natural_pos >= 0) & (rng.uniform("customer.loyal", idx) < 0.85))
        .then(natural_pos)
        .otherwise(rng.integers("customer.currency", idx, 0, len(currencies)))
    )
    euro_country = _lookup(
        rng.integers("customer.country", idx, 0, len(_EURO_COUNTRIES)), _EURO_COUNTRIES, pl.Utf8
    )
    frame = (
        pl.LazyFrame()
        .select(pl.int_range(count, dtype=pl.Int64).alias("c_idx"))
        .with_columns(
            Customer_Id=_ids("C", idx + 1, 6),
            Subsidiary_Id=_lookup(sub_pos, [s[0] for s in _SUBSIDIARIES] + [None], pl.Utf8),
            currency=_lookup(currency_pos, currencies, pl.Utf8),
            name_pos=rng.integers("customer.name", idx, 0, len(_NAME_FIRST)),
            second_pos=rng.integers("customer.name2", idx, 0, len(_NAME_SECOND)),
        )
    )
    country = (
        pl.when(pl.col("currency") != "EUR")
        .then(pl.col("currency").str.slice(0, 2))
        .when(pl.col("Subsidiary_Id") == "SUB-DE")
        .then(pl.lit("DE"))
        .otherwise(euro_country)
    )
    frame = frame.with_columns(Country=country)
    suffix = pl.col("Country").replace_strict(_COMPANY_SUFFIX, default="Ltd", return_dtype=pl.Utf8)
    name_parts = [
        _lookup(pl.col("name_pos"), _NAME_FIRST, pl.Utf8),
        _lookup(pl.col("second_pos"), _NAME_SECOND, pl.Utf8),
        suffix,
    ]
    email_parts = [
        pl.lit("ap."), pl.col("Customer_Id").str.to_lowercase(), pl.lit("@"),
        _lookup(pl.col("name_pos"), _NAME_SLUG, pl.Utf8), pl.lit(".example"),
    ]  # fmt: skip
    return frame.with_columns(
        Customer_Name=pl.concat_str(name_parts, separator=" "), Email=pl.concat_str(email_parts)
    ).collect()


def _exchange_rates(
    rng: _Rng, start: date, as_of: date, currencies: tuple[str, ...], home: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Monthly rates of every other currency to home, from three months before `start` to `as_of`.

    One pair (CAD if present) is quoted only as home → currency, so that readers must invert it. Returns
    the file's rows and, for the generator's own conversions, (currency, month index, value in home).
    """
    first = _add_months_py(date(start.year, start.month, 1), -3)
    count = (as_of.year - first.year) * 12 + as_of.month - first.month + (1 if as_of.day > 1 else 0)
    dates = [_add_months_py(first, m) for m in range(count)]
    others = [c for c in currencies if c != home]
    inverse = "CAD" if "CAD" in others else (others[-1] if others else None)
    quoted, values = [], []
    for currency in currencies:
        value = USD_PER_UNIT[currency] / USD_PER_UNIT[home]
        for m, day in enumerate(dates):
            month = day.year * 12 + day.month - 1
            if currency == home:
                values.append((currency, month, 1.0))
                continue
            value *= 1 + 0.03 * (rng.py_uniform(f"rate.{currency}", m) - 0.5)
            if currency == inverse:
                micro = max(1, round(1e6 / value))
                quoted.append((home, currency, day, micro))
                values.append((currency, month, 1e6 / micro))
            else:
                micro = max(1, round(value * 1e6))
                quoted.append((currency, home, day, micro))
                values.append((currency, month, micro / 1e6))
    schema = {"From_Currency": pl.Utf8, "To_Currency": pl.Utf8, "Rate_Date": pl.Date, "micro": pl.Int64}
    rates = pl.DataFrame(quoted, schema=schema, orient="row").sort(
        "From_Currency", "To_Currency", "Rate_Date", maintain_order=True
    )
    rates = rates.with_columns(Rate=_decimal(pl.col("micro")))
    to_home = pl.DataFrame(
        values, schema={"currency": pl.Utf8, "month": pl.Int64, "to_home": pl.Float64}, orient="row"
    )
    return rates, to_home


def _orders(rng: _Rng, lines: int, start: date, as_of: date, customers: pl.DataFrame) -> pl.DataFrame:
    """Orders of 1-5 lines adding up to `lines`, numbered in order-date order."""
    idx = pl.col("o_idx")
    size = rng.choice("order.size", idx, (0.35, 0.25, 0.20, 0.12, 0.08)) + 1
    # orders average 2.3 lines, so lines / 2 + 64 draws reach `lines` but for a freak draw (then: all)
    for draws in (min(lines, lines // 2 + 64), lines):
        sizes = pl.select(pl.int_range(draws, dtype=pl.Int64).alias("o_idx")).with_columns(size=size)
        sizes = sizes.with_columns(cum=pl.col("size").cum_sum())
        if sizes["cum"][-1] >= lines:
            break
    orders = sizes.lazy().filter(pl.col("cum") - pl.col("size") < lines)
    orders = orders.with_columns(
        size=pl.min_horizontal(pl.col("size"), pl.col("size") - pl.col("cum") + lines)
    )
    term_pos = rng.choice("order.term", idx, _TERM_WEIGHTS)
    orders = orders.with_columns(
        c_idx=rng.integers("order.customer", idx, 0, customers.height),
        Order_Date=pl.lit(start) + _days(rng.integers("order.date", idx, 0, (as_of - start).days)),
        term_pos=term_pos,
        term=_lookup(term_pos, [t[0] for t in _TERMS], pl.Int64),
        sub_override=pl.when(rng.uniform("order.sub_override", idx) < 0.06).then(
            _lookup(rng.integers("order.sub", idx, 0, 3), [s[0] for s in _SUBSIDIARIES], pl.Utf8)
        ),
    )
    start_kind = rng.choice("order.start", idx, (0.45, 0.35, 0.20))  # at order, 1st of next month, later
    service_start = (
        pl.when(start_kind == 0)
        .then(pl.col("Order_Date"))
        .when(start_kind == 1)
        .then(_add_months(pl.col("Order_Date").dt.month_start(), 1))
        .otherwise(pl.col("Order_Date") + _days(rng.integers("order.start_gap", idx, 1, 31)))
    )
    orders = orders.with_columns(order_start=service_start)
    orders = orders.with_columns(order_end=_add_months(pl.col("order_start"), pl.col("term")) - _days(1))
    orders = (
        orders.sort("Order_Date", "o_idx", maintain_order=True)
        .with_row_index("o_no")
        .with_columns(pl.col("o_no").cast(pl.Int64))
    )
    orders = orders.join(
        customers.lazy().select("c_idx", "Customer_Id", pl.col("currency").alias("Currency")),
        on="c_idx", how="left", maintain_order="left",
    )  # fmt: skip
    return orders.with_columns(Sales_Order_Id=_ids("SO-", pl.col("o_no") + 1, 7)).drop("cum").collect()


def _order_lines(rng: _Rng, orders: pl.DataFrame, products: pl.DataFrame) -> pl.DataFrame:
    lines = orders.lazy().with_columns(line_no=pl.int_ranges(1, pl.col("size") + 1)).explode("line_no")
    lines = lines.with_row_index("l_idx").with_columns(pl.col("l_idx").cast(pl.Int64))
    idx = pl.col("l_idx")
    offering = (
        pl.when(pl.col("line_no") == 1)
        .then(rng.choice("line.offering.first", idx, [o.weight_first for o in _OFFERINGS]))
        .otherwise(rng.choice("line.offering.other", idx, [o.weight_other for o in _OFFERINGS]))
    )
    lines = lines.with_columns(offering=offering)
    lines = lines.with_columns(p_idx=_product_index(products, pl.col("offering"), pl.col("term_pos")))
    lines = _join_products(
        lines, products, ("Product_Id", "Revenue_Rule", "catalog_cents", "list_cents", "qty_style")
    ).rename({"Revenue_Rule": "product_rule"})
    lines = _line_terms(rng, _quantities_and_prices(rng, lines))
    return lines.select(
        "l_idx", "o_no", "line_no", "Sales_Order_Id", "Sales_Order_Item_Id", "Customer_Id", "Product_Id",
        "Order_Date", "q_micro", "p_micro", "list_micro", "booking", "start", "end", "term", "Currency",
        "sub_override", "IsActive", "Revenue_Rule", "product_rule", "rule",
    ).collect()  # fmt: skip


def _quantities_and_prices(rng: _Rng, lines: pl.LazyFrame) -> pl.LazyFrame:
    idx = pl.col("l_idx")
    u = rng.uniform("line.quantity", idx)
    tb_fractional = (pl.col("qty_style") == "tb") & (rng.uniform("line.tb_fraction", idx) < 0.3)
    quantity = (
        pl.when(pl.col("qty_style") == "seats")
        .then((1 + (u * u * u * 200).floor()).cast(pl.Int64) * 1_000_000)
        .when(pl.col("qty_style") == "days")
        .then((1 + (u * 5).floor()).cast(pl.Int64) * 1_000_000)
        .when(tb_fractional)
        .then(500_000 + (u * 40_000_000).floor().cast(pl.Int64))  # e.g. 12.345678 TB
        .when(pl.col("qty_style") == "tb")
        .then((1 + (u * 40).floor()).cast(pl.Int64) * 1_000_000)
        .otherwise(pl.lit(1_000_000, dtype=pl.Int64))
    )
    discount = _lookup(
        rng.choice("line.discount", idx, (0.40, 0.08, 0.15, 0.10, 0.10, 0.07, 0.06, 0.04)),
        (0, 5, 10, 15, 20, 25, 30, 40),
        pl.Int64,
    )
    sandbox = pl.col("offering") == [o.code for o in _OFFERINGS].index("SANDBOX")
    discount = pl.when(sandbox & (rng.uniform("line.free", idx) < 0.05)).then(100).otherwise(discount)
    price = (pl.col("catalog_cents") * (100 - discount) + 50) // 100 * 10_000
    sub_cent = tb_fractional & (rng.uniform("line.sub_cent", idx) < 0.5)
    price = (
        pl.when(sub_cent).then(price - rng.integers("line.sub_cent_amount", idx, 1, 10_000)).otherwise(price)
    )
    usage = pl.col("product_rule") == "usage"
    lines = lines.with_columns(
        q_micro=pl.when(usage).then(1_000_000).otherwise(quantity),
        p_micro=pl.when(usage).then(0).otherwise(price),
        list_micro=pl.col("list_cents") * 10_000,
    )
    return lines.with_columns(_booking(pl.col("q_micro"), pl.col("p_micro")))


def _line_terms(rng: _Rng, lines: pl.LazyFrame) -> pl.LazyFrame:
    """Status, rule override and service period of each line."""
    idx = pl.col("l_idx")
    cancelled = rng.few("line.cancel", idx, pl.col("line_no") >= 2, 0.015, 2)
    override = rng.few("line.override", idx, pl.col("product_rule") != "usage", 0.06, 3)
    other_rule = pl.when(pl.col("product_rule") == "ratable_daily").then(pl.lit("ratable_monthly")).otherwise(
        pl.lit("ratable_daily")
    )  # fmt: skip
    one_off = pl.col("product_rule") == "point_in_time"
    one_off_start = pl.col("order_start") + _days(rng.integers("line.pit_start", idx, 0, 15))
    one_off_length = (
        pl.when(rng.uniform("line.pit_same_day", idx) < 0.4)
        .then(0)
        .otherwise(rng.integers("line.pit_length", idx, 1, 45))
    )
    lines = lines.with_columns(
        IsActive=~cancelled,
        Revenue_Rule=pl.when(override).then(other_rule),
        start=pl.when(one_off).then(one_off_start).otherwise(pl.col("order_start")),
    )
    return lines.with_columns(
        end=pl.when(one_off).then(pl.col("start") + _days(one_off_length)).otherwise(pl.col("order_end")),
        rule=pl.coalesce(pl.col("Revenue_Rule"), pl.col("product_rule")),
        Sales_Order_Item_Id=pl.concat_str(
            [pl.col("Sales_Order_Id"), pl.lit("-"), pl.col("line_no").cast(pl.Utf8)]
        ),
    )


def _usage(rng: _Rng, lines: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Several usage records a month for every active usage line, up to `as_of`."""
    usage_lines = (
        lines.lazy()
        .filter(pl.col("IsActive") & (pl.col("rule") == "usage"))
        .select(
            "l_idx", "o_no", "line_no", "Sales_Order_Id", "Sales_Order_Item_Id", "Currency", "start", "end"
        )
        .with_columns(
            last=pl.min_horizontal(pl.col("end"), pl.lit(as_of - timedelta(days=1))),
            billed=rng.uniform("usage.billed", pl.col("l_idx")) < 0.8,
        )
        .filter(pl.col("start") <= pl.col("last"))
    )
    month_count = _month_index(pl.col("last")) - _month_index(pl.col("start")) + 1
    months = usage_lines.with_columns(m=pl.int_ranges(0, month_count)).explode("m").with_row_index("um_idx")
    months = months.with_columns(month_first=_add_months(pl.col("start").dt.month_start(), pl.col("m")))
    months = months.with_columns(
        lo=pl.max_horizontal(pl.col("start"), pl.col("month_first")),
        hi=pl.min_horizontal(pl.col("last"), pl.col("month_first").dt.month_end()),
    )
    span = (pl.col("hi") - pl.col("lo")).dt.total_days() + 1
    um = pl.col("um_idx")
    # k records on distinct days: one in each of k equal slices of the month's service days
    months = months.with_columns(k=pl.min_horizontal(rng.integers("usage.count", um, 2, 5), span))
    months = months.with_columns(step=span // pl.col("k"))
    months = months.with_columns(offset=rng.integers("usage.offset", um, 0, pl.col("step")))
    records = months.with_columns(j=pl.int_ranges(0, pl.col("k"))).explode("j").with_row_index("u_idx")
    u = rng.uniform("usage.amount", pl.col("u_idx"))
    return records.select(
        "l_idx", "o_no", "line_no", "Sales_Order_Id", "Sales_Order_Item_Id", "Currency", "billed", "month_first",
        (pl.col("lo") + _days(pl.col("offset") + pl.col("j") * pl.col("step"))).alias("usage_date"),
        (100 + (u * u * 60_000).floor()).cast(pl.Int64).alias("amount"),
    ).collect()  # fmt: skip


# Billing kinds of a line: how its booking is invoiced.
_UPFRONT, _MONTHLY, _QUARTERLY, _ANNUAL, _ARREARS_M, _ARREARS_Q, _ON_COMPLETION, _PARTIAL, _UNBILLED = range(
    9
)
_KIND_WEIGHTS = {  # per category: one-off, 1-month term, annual term, multi-year term
    0: (0.60, 0, 0, 0, 0, 0, 0.25, 0.10, 0.05),
    1: (0.80, 0, 0, 0, 0.10, 0, 0, 0.05, 0.05),
    2: (0.40, 0.15, 0.20, 0, 0.05, 0.08, 0, 0.07, 0.05),
    3: (0.20, 0.05, 0.15, 0.45, 0, 0.05, 0, 0.05, 0.05),
}
_PERIOD_MONTHS = {_MONTHLY: 1, _QUARTERLY: 3, _ANNUAL: 12, _ARREARS_M: 1, _ARREARS_Q: 3}


def _line_invoices(rng: _Rng, lines: pl.DataFrame, as_of: date) -> pl.LazyFrame:
    """Invoice lines of the order lines' billing schedules that are dated before `as_of`."""
    idx = pl.col("l_idx")
    billable = (
        lines.lazy()
        .filter(pl.col("IsActive") & (pl.col("product_rule") != "usage") & (pl.col("booking") > 0))
        .select("l_idx", "o_no", "line_no", "Sales_Order_Id", "Sales_Order_Item_Id", "Currency", "Order_Date",
                "start", "end", "term", "booking", "product_rule")
    )  # fmt: skip
    category = (
        pl.when(pl.col("product_rule") == "point_in_time")
        .then(0)
        .when(pl.col("term") == 1)
        .then(1)
        .when(pl.col("term") == 12)
        .then(2)
        .otherwise(3)
    )
    kind = pl.lit(None, dtype=pl.Int64)
    for cat, weights in _KIND_WEIGHTS.items():
        kind = pl.when(category == cat).then(rng.choice(f"invoice.kind.{cat}", idx, weights)).otherwise(kind)
    billable = billable.with_columns(kind=kind)
    kind = pl.col("kind")
    period = kind.replace_strict(_PERIOD_MONTHS, default=1, return_dtype=pl.Int64)
    periodic = kind.is_in(list(_PERIOD_MONTHS))
    count = (
        pl.when(periodic)
        .then((pl.col("term") + period - 1) // period)
        .when(kind == _UNBILLED)
        .then(0)
        .otherwise(1)
    )
    share = pl.when(kind == _PARTIAL).then(rng.integers("invoice.partial", idx, 30, 71)).otherwise(100)
    upfront_at_order = rng.uniform("invoice.upfront_at_order", idx) < 0.4
    billable = billable.with_columns(
        period=period,
        n=count,
        total=pl.col("booking") * share // 100,
        upfront_date=pl.when(upfront_at_order).then(pl.col("Order_Date")).otherwise(pl.col("start")),
    )
    rows = billable.filter(pl.col("n") > 0).with_columns(j=pl.int_ranges(0, pl.col("n"))).explode("j")
    in_advance = kind.is_in([_MONTHLY, _QUARTERLY, _ANNUAL])
    in_arrears = kind.is_in([_ARREARS_M, _ARREARS_Q])
    # instalment j covers months [j, j + 1) × period from the service start; arrears bill at its end
    shifted = _add_months(pl.col("start"), (pl.col("j") + in_arrears.cast(pl.Int64)) * pl.col("period"))
    day_after_end = pl.col("end") + _days(1)
    billing_date = (
        pl.when(in_advance)
        .then(shifted)
        .when(in_arrears)
        .then(pl.min_horizontal(shifted, day_after_end))
        .when(kind == _ON_COMPLETION)
        .then(day_after_end)
        .when(kind == _PARTIAL)
        .then(pl.col("start"))
        .otherwise(pl.col("upfront_date"))
    )
    instalment = pl.col("total") // pl.col("n")
    last = pl.col("j") == pl.col("n") - 1
    amount = pl.when(last).then(pl.col("total") - instalment * (pl.col("n") - 1)).otherwise(instalment)
    rows = rows.with_columns(date=billing_date, amount=amount, invoice_currency=pl.col("Currency"))
    return rows.filter((pl.col("date") < as_of) & (pl.col("amount") != 0))


def _foreign_currency_lines(
    rng: _Rng, rows: pl.LazyFrame, currencies: tuple[str, ...], to_home: pl.DataFrame
) -> pl.LazyFrame:
    """A few invoice lines billed in another currency than their order's, converted at the billing date."""
    if len(currencies) < 2:
        return rows
    rows = rows.with_row_index("r_idx").with_columns(
        flip=rng.few("invoice.foreign", pl.col("r_idx"), pl.lit(True), 0.003, 3)
    )
    # only the few flipped rows are converted; the row order is restored afterwards
    flipped = rows.filter(pl.col("flip"))
    idx = pl.col("r_idx")
    position = pl.col("Currency").replace_strict(
        list(currencies), list(range(len(currencies))), return_dtype=pl.Int64
    )
    shift = rng.integers("invoice.foreign_currency", idx, 1, len(currencies))
    flipped = flipped.with_columns(
        invoice_currency=_lookup((position + shift) % len(currencies), currencies, pl.Utf8),
        month=_month_index(pl.col("date")),
    )
    rates = to_home.lazy().rename({"currency": "Currency", "to_home": "rate_from"})
    flipped = flipped.join(rates, on=["Currency", "month"], how="left", maintain_order="left")
    rates = to_home.lazy().rename({"currency": "invoice_currency", "to_home": "rate_to"})
    flipped = flipped.join(rates, on=["invoice_currency", "month"], how="left", maintain_order="left")
    converted = (pl.col("amount") * pl.col("rate_from") / pl.col("rate_to")).round(0).cast(pl.Int64)
    flipped = flipped.with_columns(amount=pl.max_horizontal(converted, 1)).drop(
        "month", "rate_from", "rate_to"
    )
    return pl.concat([rows.filter(~pl.col("flip")), flipped]).sort("r_idx").drop("r_idx", "flip")


def _usage_invoices(usage: pl.DataFrame, lines: pl.DataFrame, as_of: date) -> pl.LazyFrame:
    """A month's usage is billed on the first day of the next month (most usage lines)."""
    monthly = (
        usage.lazy()
        .filter(pl.col("billed"))
        .group_by("l_idx", "month_first", maintain_order=True)
        .agg(pl.col("amount").sum())
        .with_columns(date=_add_months(pl.col("month_first"), 1))
        .filter(pl.col("date") < as_of)
    )
    line_columns = ("l_idx", "o_no", "line_no", "Sales_Order_Id", "Sales_Order_Item_Id", "Currency")
    monthly = monthly.join(lines.lazy().select(line_columns), on="l_idx", how="left", maintain_order="left")
    return monthly.with_columns(invoice_currency=pl.col("Currency"))


def _invoice_as_contract(
    rng: _Rng,
    count: int,
    start: date,
    as_of: date,
    customers: pl.DataFrame,
    products: pl.DataFrame,
    first_key: int,
) -> pl.LazyFrame:
    """Invoice lines without an order line: one-off services and a few annual support renewals."""
    idx = pl.col("i_idx")
    codes = [o.code for o in _OFFERINGS]
    offerings = [codes.index(c) for c in ("ONBOARD", "TRAINING", "APPLIANCE", "SUPPORT-PREM", "ANALYTICS")]
    frame = (
        pl.LazyFrame()
        .select(pl.int_range(count, dtype=pl.Int64).alias("i_idx"))
        .with_columns(
            c_idx=rng.integers("iac.customer", idx, 0, customers.height),
            offering=_lookup(
                rng.choice("iac.offering", idx, (0.3, 0.2, 0.15, 0.2, 0.15)), offerings, pl.Int64
            ),
            date=pl.lit(start) + _days(rng.integers("iac.date", idx, 0, (as_of - start).days)),
            units=rng.integers("iac.units", idx, 1, 4),
            dated=rng.uniform("iac.dated", idx) < 0.5,
        )
    )
    frame = frame.with_columns(p_idx=_product_index(products, pl.col("offering"), pl.lit(1)))  # annual SKUs
    frame = _join_products(frame, products, ("Product_Id", "Revenue_Rule", "catalog_cents"))
    frame = frame.join(
        customers.lazy().select("c_idx", "Customer_Id", pl.col("currency").alias("invoice_currency")),
        on="c_idx", how="left", maintain_order="left",
    )  # fmt: skip
    one_off = pl.col("Revenue_Rule") == "point_in_time"
    one_off_end = pl.col("date") + _days(rng.integers("iac.length", idx, 0, 10))
    return frame.with_columns(
        amount=pl.col("catalog_cents") * pl.col("units"),
        o_no=first_key + idx,
        line_no=pl.lit(1, dtype=pl.Int64),
        svc_start=pl.when(~one_off | pl.col("dated")).then(pl.col("date")),
        svc_end=pl.when(~one_off)
        .then(_add_months(pl.col("date"), 12) - _days(1))
        .when(pl.col("dated"))
        .then(one_off_end),
    ).select(
        "date",
        "o_no",
        "invoice_currency",
        "line_no",
        "amount",
        "Customer_Id",
        "Product_Id",
        "svc_start",
        "svc_end",
    )


def _number_invoices(rng: _Rng, rows: pl.LazyFrame, prefix: str, first_number: int) -> pl.LazyFrame:
    """Lines of one order billed on one date in one currency share an invoice; numbers follow the date."""
    # one integer key for (date, order, currency) sorts and groups much faster than the three columns
    currency = pl.col("invoice_currency").replace_strict(
        list(USD_PER_UNIT), list(range(len(USD_PER_UNIT))), return_dtype=pl.Int64
    )
    invoice_key = (pl.col("date").cast(pl.Int64) * (1 << 32) + pl.col("o_no")) * 32 + currency
    rows = rows.with_columns(invoice_key=invoice_key).sort("invoice_key", "line_no", maintain_order=True)
    rows = rows.with_row_index("r").with_columns(
        seq=pl.col("invoice_key").rle_id().cast(pl.Int64) + first_number
    )
    seq = pl.col("seq")
    first_row = pl.when(seq != seq.shift(1).fill_null(-1)).then(pl.col("r")).forward_fill()
    po_number = rng.integers("invoice.po_number", seq, 100_000, 1_000_000).cast(pl.Utf8)
    po = pl.when(rng.uniform("invoice.po", seq) < 0.3).then(pl.concat_str([pl.lit("PO-"), po_number]))
    return rows.with_columns(
        Invoice_Number=_ids(prefix, seq, 7),
        Invoice_Line=(pl.col("r") - first_row + 1).cast(pl.Int64),
        BS_CustomField02=po,
    )


def _credit_memos(rng: _Rng, rows: pl.LazyFrame, as_of: date, first_number: int) -> pl.LazyFrame:
    """A few credit memos, each crediting part or all of an invoice line some days later."""
    rows = rows.with_row_index("r")
    idx = pl.col("r")
    credited = rows.filter(rng.few("credit.pick", idx, pl.col("amount") > 0, 0.004, 3))
    credit = pl.max_horizontal(pl.col("amount") * rng.integers("credit.share", idx, 10, 101) // 100, 1)
    credit_date = pl.col("date") + _days(rng.integers("credit.delay", idx, 5, 46))
    credited = credited.with_columns(
        amount=-credit, date=pl.min_horizontal(credit_date, pl.lit(as_of - timedelta(days=1)))
    ).sort("date", "r", maintain_order=True)
    return credited.with_row_index("seq").with_columns(
        Invoice_Number=_ids("CM-", pl.col("seq").cast(pl.Int64) + first_number, 6),
        Invoice_Line=pl.lit(1, dtype=pl.Int64),
        BS_CustomField02=pl.lit(None, dtype=pl.Utf8),
    )


def _invoice_file(frame: pl.LazyFrame) -> pl.LazyFrame:
    names = frame.collect_schema().names()
    missing = [pl.lit(None, dtype=pl.Utf8).alias(c) for c in ("Customer_Id", "Product_Id", "Sales_Order_Id",
               "Sales_Order_Item_Id") if c not in names]  # fmt: skip
    missing += [pl.lit(None, dtype=pl.Date).alias(c) for c in ("svc_start", "svc_end") if c not in names]
    return frame.with_columns(missing).select(
        "Invoice_Number",
        "Invoice_Line",
        pl.col("date").alias("Billing_Date"),
        _money(pl.col("amount")).alias("Billing_Amount"),
        pl.col("invoice_currency").alias("Currency"),
        "Sales_Order_Id",
        "Sales_Order_Item_Id",
        "Customer_Id",
        "Product_Id",
        pl.col("svc_start").alias("Service_Start_Date"),
        pl.col("svc_end").alias("Service_End_Date"),
        "BS_CustomField02",
    )


_INVOICE_ROW = (
    "date",
    "o_no",
    "invoice_currency",
    "line_no",
    "amount",
    "Sales_Order_Id",
    "Sales_Order_Item_Id",
)


def _invoices(
    rng: _Rng,
    lines: pl.DataFrame,
    usage_billed: pl.LazyFrame,
    customers: pl.DataFrame,
    products: pl.DataFrame,
    to_home: pl.DataFrame,
    currencies: tuple[str, ...],
    start: date,
    as_of: date,
) -> pl.DataFrame:
    scheduled = _line_invoices(rng, lines, as_of)
    scheduled = (
        _foreign_currency_lines(rng, scheduled, currencies, to_home).select(_INVOICE_ROW).collect().lazy()
    )
    first_key = int(lines["o_no"].max()) + 1  # invoice-as-contract lines group apart from every order
    as_contract = _invoice_as_contract(
        rng, max(3, lines.height // 400), start, as_of, customers, products, first_key
    )
    regular = pl.concat([scheduled, usage_billed.select(_INVOICE_ROW), as_contract], how="diagonal")
    numbered = _number_invoices(rng, regular, "INV-", 1)
    memos = _credit_memos(rng, scheduled, as_of, 1)
    return pl.concat([_invoice_file(numbered), _invoice_file(memos)]).collect()


def _commissions(rng: _Rng, lines: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Commissions on about a fifth of the booked lines, some paid after the service start."""
    idx = pl.col("l_idx")
    usage = pl.col("product_rule") == "usage"
    booked = ~usage & (pl.col("booking") > 0)
    picked = rng.few("commission.pick", idx, pl.col("IsActive") & booked, 0.2, 3) | rng.few(
        "commission.usage", idx, pl.col("IsActive") & usage, 0.05, 1
    )
    chosen = (
        lines.lazy()
        .filter(picked)
        .select("l_idx", "Sales_Order_Item_Id", "Order_Date", "start", "booking", "product_rule")
    )
    late = rng.uniform("commission.late", idx) < 0.35
    after_start = pl.col("start") + _days(rng.integers("commission.late_days", idx, 15, 75))
    after_order = pl.col("Order_Date") + _days(rng.integers("commission.days", idx, 0, 15))
    rate = rng.integers("commission.rate", idx, 5, 13)
    usage_amount = 10_000 + rng.integers("commission.usage_amount", idx, 0, 40_000)
    chosen = chosen.with_columns(
        date=pl.when(late).then(after_start).otherwise(after_order),
        amount=pl.when(usage).then(usage_amount).otherwise((pl.col("booking") * rate + 50) // 100),
        kicker=rng.uniform("commission.kicker", idx) < 0.1,
    )
    kicker = chosen.filter(pl.col("kicker")).with_columns(
        date=pl.col("date") + _days(90),
        amount=pl.col("amount") // rng.integers("commission.kicker_share", idx, 3, 8),
    )
    rows = pl.concat([chosen, kicker]).filter((pl.col("date") < as_of) & (pl.col("amount") > 0))
    return (
        rows.sort("l_idx", "date", maintain_order=True)
        .select(
            "Sales_Order_Item_Id",
            pl.col("date").alias("Commission_Date"),
            _money(pl.col("amount")).alias("Amount"),
        )
        .collect()
    )


def _sales_order_file(lines: pl.DataFrame) -> pl.DataFrame:
    return (
        lines.lazy()
        .select(
            "Sales_Order_Id",
            "Sales_Order_Item_Id",
            "Customer_Id",
            "Product_Id",
            "Order_Date",
            _decimal(pl.col("q_micro")).alias("Quantity"),
            _price(pl.col("p_micro")).alias("Sale_Price"),
            pl.col("start").alias("Service_Start_Date"),
            pl.col("end").alias("Service_End_Date"),
            "Currency",
            _price(pl.col("list_micro")).alias("List_Price"),
            pl.col("sub_override").alias("Subsidiary_Id"),
            "IsActive",
            "Revenue_Rule",
        )
        .collect()
    )


def _static_files(products: pl.DataFrame) -> dict[str, pl.DataFrame]:
    subsidiaries = pl.DataFrame(
        [(sid, name, str(uuid.uuid5(uuid.NAMESPACE_URL, f"revrec-pipelines/{sid}")), location)
         for sid, name, _, location in _SUBSIDIARIES],
        schema=list(COLUMNS["subsidiaries"]), orient="row",
    )  # fmt: skip
    mappings = pl.DataFrame(
        _ACCOUNT_MAPPINGS, schema={c: pl.Utf8 for c in COLUMNS["account_mappings"]}, orient="row"
    )
    product_file = products.with_columns(SSP=_money(pl.col("ssp_cents"))).select(COLUMNS["products"])
    return {"products": product_file, "subsidiaries": subsidiaries, "account_mappings": mappings}


def _write(out_dir: Path, kind: str, frame: pl.DataFrame, suffix: str = "") -> tuple[str, int]:
    name = f"{kind}{suffix}.csv"
    frame.select(COLUMNS[kind]).write_csv(out_dir / name, date_format="%Y-%m-%d")
    return name, frame.height


def generate(
    out_dir: Path,
    lines: int,
    seed: int,
    start: date = date(2025, 1, 1),
    months: int = 12,
    currencies: Sequence[str] = ("USD", "EUR", "GBP", "CAD"),
    home_currency: str = "USD",
) -> GenerationSummary:
    """Write a complete, valid input data set with `lines` sales-order lines ordered over `months` months.

    Orders are dated in [start, start + months); the invoices, usage and commissions are those dated
    before that end (the data set's as-of date); service periods may run beyond it. Each file is written
    as soon as it is complete, so that memory holds little more than the order lines.
    """
    began = time.perf_counter()
    currencies = _check_arguments(lines, months, currencies, home_currency)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = _Rng(seed)
    as_of = _add_months_py(start, months)
    rows: dict[str, int] = {}

    def write(kind: str, frame: pl.DataFrame) -> None:
        name, count = _write(out_dir, kind, frame)
        rows[name] = count

    products = _products_frame()
    customers = _customers(rng, max(8, -(-lines // 8)), currencies)
    write("customers", customers)
    for kind, frame in _static_files(products).items():
        write(kind, frame)
    rates, to_home = _exchange_rates(rng, start, as_of, currencies, home_currency)
    write("exchange_rates", rates)
    order_lines = _order_lines(rng, _orders(rng, lines, start, as_of, customers), products)
    write("sales_orders", _sales_order_file(order_lines))
    usage = _usage(rng, order_lines, as_of)
    write("usage", usage.select("Sales_Order_Item_Id", pl.col("usage_date").alias("Usage_Date"),
                                _money(pl.col("amount")).alias("Amount")))  # fmt: skip
    usage_billed = _usage_invoices(usage, order_lines, as_of).collect().lazy()
    del usage
    write(
        "invoices",
        _invoices(rng, order_lines, usage_billed, customers, products, to_home, currencies, start, as_of),
    )
    write("commissions", _commissions(rng, order_lines, as_of))
    ordered = {f"{kind}.csv": rows[f"{kind}.csv"] for kind in COLUMNS}
    return GenerationSummary(out_dir, ordered, start, as_of, time.perf_counter() - began)


# --- modification batches -----------------------------------------------------------------------------


def _read(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False)


def _scan(path: Path) -> pl.LazyFrame:
    return pl.scan_csv(path, infer_schema=False)


def _to_date(column: str) -> pl.Expr:
    return pl.col(column).str.to_date("%Y-%m-%d")


def _max_number(ids: pl.Series, prefix: str) -> int:
    numbers = ids.str.extract(f"^{prefix}(\\d+)$").cast(pl.Int64, strict=False).drop_nulls()
    return int(numbers.max()) if numbers.len() else 0


def _base_lines(base_dir: Path) -> pl.DataFrame:
    """The base order lines with parsed terms, effective rule, booking and billed amount (line currency)."""
    lines = _scan(base_dir / "sales_orders.csv")
    names = lines.collect_schema().names()
    lines = lines.with_columns(
        pl.lit(None, dtype=pl.Utf8).alias(c) for c in COLUMNS["sales_orders"] if c not in names
    )
    products = _scan(base_dir / "products.csv").select(
        "Product_Id", pl.col("Revenue_Rule").alias("product_rule")
    )
    lines = lines.select(COLUMNS["sales_orders"]).with_row_index("r").with_columns(pl.col("r").cast(pl.Int64))
    lines = lines.join(products, on="Product_Id", how="left", maintain_order="left").with_columns(
        rule=pl.coalesce(pl.col("Revenue_Rule"), pl.col("product_rule")),
        active=pl.col("IsActive").fill_null("true").str.to_lowercase() != "false",
        q_micro=_parse_scaled(pl.col("Quantity"), 6),
        p_micro=_parse_scaled(pl.col("Sale_Price"), 6),
        order_date=_to_date("Order_Date"),
        start=_to_date("Service_Start_Date"),
        end=_to_date("Service_End_Date"),
        line_no=pl.col("Sales_Order_Item_Id").str.extract(r"-(\d+)$").cast(pl.Int64, strict=False),
    )
    lines = lines.with_columns(_booking(pl.col("q_micro"), pl.col("p_micro")))
    invoices = _scan(base_dir / "invoices.csv")
    billed = (
        invoices.join(lines.select("Sales_Order_Item_Id", pl.col("Currency").alias("line_currency")), on="Sales_Order_Item_Id")
        .filter(pl.col("Currency") == pl.col("line_currency"))
        .group_by("Sales_Order_Item_Id")
        .agg(_parse_scaled(pl.col("Billing_Amount"), 2).sum().alias("billed"))
    )  # fmt: skip
    lines = lines.join(billed, on="Sales_Order_Item_Id", how="left", maintain_order="left")
    return lines.with_columns(pl.col("billed").fill_null(0).cast(pl.Int64)).collect()


def _as_of(base_dir: Path, lines: pl.DataFrame) -> date:
    """The first day of the month after the base data's last order or invoice."""
    last_billing = _scan(base_dir / "invoices.csv").select(_to_date("Billing_Date").max()).collect().item()
    last = max(d for d in (lines["order_date"].max(), last_billing) if d is not None)
    return _add_months_py(date(last.year, last.month, 1), 1)


def _modified_lines(rng: _Rng, lines: pl.DataFrame, fraction: float) -> pl.DataFrame:
    """Price changes and upsells, end-date extensions and a few cancellations of `fraction` of the lines."""
    idx = pl.col("r")
    active = pl.col("active")
    count = round(fraction * lines.filter(active).height)
    first_active = pl.col("Sales_Order_Item_Id").filter(active).min().over("Sales_Order_Id")
    chosen = (
        lines.lazy()
        .with_columns(
            chosen=(pl.when(active).then(rng.uniform("mod.pick", idx)).rank("ordinal") <= count).fill_null(
                False
            ),
            cancellable=active & (pl.col("Sales_Order_Item_Id") != first_active),
        )
        .filter(pl.col("chosen"))
        .collect()
    )
    u = rng.uniform("mod.kind", idx)
    cancel = rng.few("mod.cancel", idx, pl.col("cancellable"), 0.06, 1)
    extendable = pl.col("rule").is_in([*_RATABLE, "usage"])
    extend = ~cancel & extendable & ((u < 0.40) | (pl.col("rule") == "usage"))
    chosen = chosen.with_columns(
        change=pl.when(cancel)
        .then(pl.lit("cancel"))
        .when(extend)
        .then(pl.lit("extend"))
        .otherwise(pl.lit("price"))
    )
    # a price change is a quantity upsell for whole quantities half of the time, else a new unit price
    whole = pl.col("q_micro") % 1_000_000 == 0
    more_units = whole & (rng.uniform("mod.more_units", idx) < 0.5)
    percent = _lookup(
        rng.choice("mod.percent", idx, (0.15, 0.2, 0.25, 0.2, 0.1, 0.1)), (-10, 5, 10, 15, 20, 25), pl.Int64
    )
    term = _month_index(pl.col("end") + _days(1)) - _month_index(pl.col("start"))
    term = pl.max_horizontal(term, 1)
    price = pl.col("change") == "price"
    extended = pl.col("change") == "extend"
    return chosen.with_columns(
        new_q=pl.when(price & more_units)
        .then(pl.col("q_micro") + rng.integers("mod.units", idx, 1, 11) * 1_000_000)
        .otherwise(pl.col("q_micro")),
        new_p=pl.when(price & ~more_units)
        .then((pl.col("p_micro") * (100 + percent) + 50) // 100)
        .when(extended)
        .then((pl.col("p_micro") * (term + 12) + term // 2) // term)
        .otherwise(pl.col("p_micro")),
        new_end=pl.when(extended)
        .then(_add_months(pl.col("end") + _days(1), 12) - _days(1))
        .otherwise(pl.col("end")),
        new_active=pl.col("active") & (pl.col("change") != "cancel"),
    ).with_columns(
        new_booking=_booking(pl.col("new_q"), pl.col("new_p")),
    )


def _new_lines(
    rng: _Rng, lines: pl.DataFrame, products: pl.DataFrame, count: int, as_of: date
) -> pl.DataFrame:
    """New orders from existing customers (most) and add-on lines to existing orders (the rest).

    Each starts from a random active line: its customer and currency, and for an add-on its order."""
    active_lines = lines.filter(pl.col("active"))
    if active_lines.height == 0 or count == 0:
        return pl.DataFrame()
    idx = pl.col("n")
    frame = pl.select(pl.int_range(count, dtype=pl.Int64).alias("n")).with_columns(
        pick=rng.integers("new.order", idx, 0, active_lines.height),
        add_on=rng.uniform("new.add_on", idx) < 0.3,
        p_idx=rng.integers("new.product", idx, 0, products.height),
        date=pl.lit(as_of) + _days(rng.integers("new.date", idx, 0, 28)),
        units=rng.integers("new.units", idx, 1, 6),
        discount=_lookup(rng.choice("new.discount", idx, (0.5, 0.3, 0.2)), (0, 10, 20), pl.Int64),
        fallback_cents=rng.integers("new.price", idx, 1_000, 20_000) * 100,
        length=rng.integers("new.length", idx, 0, 30),
    )
    picked = active_lines.select(
        pl.col("Sales_Order_Id", "Customer_Id", "Currency", "Subsidiary_Id").gather(frame["pick"])
    )
    order_end = (
        lines.filter(pl.col("Sales_Order_Id").is_in(picked["Sales_Order_Id"]))
        .group_by("Sales_Order_Id")
        .agg(pl.col("end").max().alias("order_end"), pl.col("line_no").max().alias("max_line"))
    )
    frame = pl.concat([frame, picked], how="horizontal").join(
        order_end, on="Sales_Order_Id", how="left", maintain_order="left"
    )
    frame = frame.join(products, on="p_idx", how="left", maintain_order="left")
    # one add-on per order, numbered after the order's last line
    frame = frame.with_columns(add_on=pl.col("add_on") & pl.col("max_line").is_not_null())
    frame = frame.with_columns(
        add_on=pl.col("add_on") & (pl.int_range(pl.len()).over("Sales_Order_Id", "add_on") == 0)
    )  # fmt: skip
    next_order = _max_number(lines["Sales_Order_Id"], "SO-") + 1
    new_number = pl.col("n").rank("ordinal").over("add_on").cast(pl.Int64) - 1 + next_order
    so_id = pl.when(pl.col("add_on")).then(pl.col("Sales_Order_Id")).otherwise(_ids("SO-", new_number, 7))
    item = (
        pl.when(pl.col("add_on"))
        .then(pl.concat_str([pl.col("Sales_Order_Id"), pl.lit("-"), (pl.col("max_line") + 1).cast(pl.Utf8)]))
        .otherwise(pl.concat_str([so_id, pl.lit("-1")]))
    )
    usage = pl.col("Revenue_Rule") == "usage"
    one_off = pl.col("Revenue_Rule") == "point_in_time"
    # a subscription runs for its SKU's term ("P-SEAT-36M"), else a year
    term = pl.col("Product_Id").str.extract(r"-(\d+)M$").cast(pl.Int64, strict=False).fill_null(12)
    term_end = _add_months(pl.col("date"), term) - _days(1)
    end = (
        pl.when(one_off)
        .then(pl.col("date") + _days(pl.col("length")))
        .when(pl.col("add_on") & (pl.col("order_end") > pl.col("date")))
        .then(pl.col("order_end"))  # co-termed with the order
        .otherwise(term_end)
    )
    unit_cents = (
        pl.coalesce(pl.col("ssp_cents"), pl.col("fallback_cents")) * (100 - pl.col("discount")) // 100
    )
    frame = frame.with_columns(
        Sales_Order_Id=so_id,
        Sales_Order_Item_Id=item,
        Subsidiary_Id=pl.when(pl.col("add_on")).then(pl.col("Subsidiary_Id")),
        q_micro=pl.when(usage).then(1).otherwise(pl.col("units")) * 1_000_000,
        p_micro=pl.when(usage).then(0).otherwise(unit_cents * 10_000),
        list_micro=pl.col("ssp_cents") * 10_000,
        order_date=pl.col("date"),
        start=pl.col("date"),
        end=end,
        rule=pl.col("Revenue_Rule"),
    )
    return frame.with_columns(_booking(pl.col("q_micro"), pl.col("p_micro")))


def _mod_invoice_rows(rng: _Rng, changed: pl.DataFrame, lines: pl.DataFrame, new: pl.DataFrame,
                      fraction: float, as_of: date) -> pl.DataFrame:  # fmt: skip
    """Upsell invoices, credit memos for downsells and cancellations already billed, next instalments, a
    few late invoices dated before `as_of`, and the new lines' first invoices."""

    def in_month(stream: str, idx: pl.Expr) -> pl.Expr:
        return pl.lit(as_of) + _days(rng.integers(stream, idx, 0, 20))

    columns = ("date", "amount", "Sales_Order_Id", "Sales_Order_Item_Id", "Currency", "line_no")
    idx = pl.col("r")
    delta = pl.col("new_booking") - pl.col("booking")
    upsells = changed.filter(
        (pl.col("change") != "cancel") & (delta > 0) & (rng.uniform("modinv.upsell", idx) < 0.6)
    ).with_columns(date=in_month("modinv.upsell_date", idx), amount=delta)
    credits = changed.filter((pl.col("change") == "cancel") & (pl.col("billed") > 0)).with_columns(
        date=in_month("modinv.credit_date", idx), amount=-pl.col("billed")
    )
    overbilled = pl.col("billed") - pl.col("new_booking")
    downsells = changed.filter(
        (pl.col("change") == "price")
        & (delta < 0)
        & (overbilled > 0)
        & (rng.uniform("modinv.downsell", idx) < 0.6)
    ).with_columns(date=in_month("modinv.downsell_date", idx), amount=-overbilled)
    remaining = pl.col("booking") - pl.col("billed")
    open_lines = lines.filter(
        pl.col("active") & (pl.col("rule") != "usage") & (remaining > 0) & ~pl.col("Sales_Order_Item_Id").is_in(changed["Sales_Order_Item_Id"])
    )  # fmt: skip
    u = rng.uniform("modinv.next", idx)
    next_invoices = open_lines.filter(u < fraction).with_columns(
        date=in_month("modinv.next_date", idx),
        amount=pl.when(rng.uniform("modinv.half", idx) < 0.5).then(remaining).otherwise(pl.max_horizontal(remaining // 2, 1)),
    )  # fmt: skip
    late_date = pl.max_horizontal(
        pl.lit(as_of) - _days(rng.integers("modinv.late_days", idx, 1, 90)), pl.col("order_date")
    )
    late = open_lines.filter(
        rng.few("modinv.late", idx, (u >= fraction) & (pl.col("order_date") < as_of), 0.002, 3)
    ).with_columns(date=late_date, amount=remaining)
    frames = [f.select(columns) for f in (upsells, credits, downsells, next_invoices, late)]
    if new.height:
        n_idx = pl.col("n")
        billed_new = new.filter(
            (pl.col("booking") > 0) & (rng.uniform("modinv.new", n_idx) < 0.7)
        ).with_columns(
            date=pl.col("start"),
            amount=pl.col("booking"),
            line_no=pl.col("Sales_Order_Item_Id").str.extract(r"-(\d+)$").cast(pl.Int64, strict=False),
        )
        frames.append(billed_new.select(columns))
    rows = pl.concat(
        [f.with_columns(pl.col("amount").cast(pl.Int64), pl.col("line_no").cast(pl.Int64)) for f in frames]
    )
    return rows.filter(pl.col("amount") != 0)


def _mod_sales_orders(changed: pl.DataFrame, new: pl.DataFrame) -> pl.DataFrame:
    changed_file = changed.with_columns(
        Quantity=pl.when(pl.col("new_q") != pl.col("q_micro")).then(_decimal(pl.col("new_q"))).otherwise(pl.col("Quantity")),
        Sale_Price=pl.when(pl.col("new_p") != pl.col("p_micro")).then(_price(pl.col("new_p"))).otherwise(pl.col("Sale_Price")),
        Service_End_Date=pl.col("new_end").dt.to_string("%Y-%m-%d"),
        IsActive=pl.when(pl.col("new_active")).then(pl.lit("true")).otherwise(pl.lit("false")),
    ).select(COLUMNS["sales_orders"])  # fmt: skip
    if not new.height:
        return changed_file
    new_file = new.select(
        "Sales_Order_Id",
        "Sales_Order_Item_Id",
        "Customer_Id",
        "Product_Id",
        pl.col("order_date").dt.to_string("%Y-%m-%d").alias("Order_Date"),
        _decimal(pl.col("q_micro")).alias("Quantity"),
        _price(pl.col("p_micro")).alias("Sale_Price"),
        pl.col("start").dt.to_string("%Y-%m-%d").alias("Service_Start_Date"),
        pl.col("end").dt.to_string("%Y-%m-%d").alias("Service_End_Date"),
        "Currency",
        _price(pl.col("list_micro")).alias("List_Price"),
        "Subsidiary_Id",
        pl.lit("true").alias("IsActive"),
        pl.lit(None, dtype=pl.Utf8).alias("Revenue_Rule"),
    )
    return pl.concat([changed_file, new_file])


def _mod_usage(
    rng: _Rng, lines: pl.DataFrame, new: pl.DataFrame, fraction: float, as_of: date
) -> pl.DataFrame:
    """The as-of month's usage for about `fraction` of the running usage lines (new ones included)."""
    month_end = _add_months_py(as_of, 1) - timedelta(days=1)
    running = pl.concat(
        [lines.filter(pl.col("active")).select("r", "Sales_Order_Item_Id", "rule", "start", "end"),
         new.select((pl.col("n") + lines.height).alias("r"), "Sales_Order_Item_Id", "rule", "start", "end") if new.height
         else pl.DataFrame(schema={"r": pl.Int64, "Sales_Order_Item_Id": pl.Utf8, "rule": pl.Utf8, "start": pl.Date, "end": pl.Date})]
    )  # fmt: skip
    idx = pl.col("r")
    running = running.filter(
        (pl.col("rule") == "usage") & (pl.col("end") >= as_of) & (pl.col("start") <= month_end)
        & (rng.uniform("modusage.pick", idx) < max(fraction, 0.05))
    ).with_columns(
        lo=pl.max_horizontal(pl.col("start"), pl.lit(as_of)), hi=pl.min_horizontal(pl.col("end"), pl.lit(month_end))
    )  # fmt: skip
    span = (pl.col("hi") - pl.col("lo")).dt.total_days() + 1
    running = running.with_columns(k=pl.min_horizontal(rng.integers("modusage.count", idx, 2, 4), span))
    running = running.with_columns(step=span // pl.col("k"))
    records = running.with_columns(j=pl.int_ranges(0, pl.col("k"))).explode("j").with_row_index("u")
    amount = (100 + (rng.uniform("modusage.amount", pl.col("u")) * 40_000).floor()).cast(pl.Int64)
    return records.select(
        "Sales_Order_Item_Id",
        (pl.col("lo") + _days(pl.col("j") * pl.col("step"))).alias("Usage_Date"),
        _money(amount).alias("Amount"),
    )


def _mod_commissions(rng: _Rng, changed: pl.DataFrame, new: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Commissions on about half the new lines and a third of the upsells, paid in the as-of month."""
    schema = {"Sales_Order_Item_Id": pl.Utf8, "date": pl.Date, "amount": pl.Int64}
    idx = pl.col("r")
    upsells = changed.filter(
        (pl.col("new_booking") > pl.col("booking")) & (rng.uniform("modcom.upsell", idx) < 0.33)
    ).select(
        "Sales_Order_Item_Id",
        (pl.lit(as_of) + _days(rng.integers("modcom.upsell_date", idx, 0, 25))).alias("date"),
        ((pl.col("new_booking") - pl.col("booking")) * 8 // 100).cast(pl.Int64).alias("amount"),
    )
    frames = [upsells]
    if new.height:
        n_idx = pl.col("n")
        frames.append(
            new.filter((pl.col("booking") > 0) & (rng.uniform("modcom.new", n_idx) < 0.5)).select(
                "Sales_Order_Item_Id",
                (pl.col("start") + _days(rng.integers("modcom.new_date", n_idx, 0, 10))).alias("date"),
                (pl.col("booking") * 10 // 100).cast(pl.Int64).alias("amount"),
            )
        )
    rows = pl.concat([f.cast(schema) for f in frames]).filter(pl.col("amount") > 0)
    return rows.unique(["Sales_Order_Item_Id", "date"], keep="first", maintain_order=True).select(
        "Sales_Order_Item_Id",
        pl.col("date").alias("Commission_Date"),
        _money(pl.col("amount")).alias("Amount"),
    )


def _mod_rates(rng: _Rng, base_dir: Path, as_of: date) -> pl.DataFrame:
    """Every pair's rate for the as-of month, moved up to 1% from its last rate."""
    rates = _read(base_dir / "exchange_rates.csv").with_columns(_to_date("Rate_Date"))
    latest = (
        rates.sort("Rate_Date", maintain_order=True)
        .group_by("From_Currency", "To_Currency", maintain_order=True)
        .last()
    )
    latest = (
        latest.sort("From_Currency", "To_Currency", maintain_order=True)
        .with_row_index("r")
        .filter(pl.col("Rate_Date") < as_of)
    )
    idx = pl.col("r")
    micro = _parse_scaled(pl.col("Rate"), 6)
    moved = (micro * (1000 + rng.integers("modrate.move", idx, -10, 11)) + 500) // 1000
    return latest.select(
        "From_Currency",
        "To_Currency",
        pl.lit(as_of).alias("Rate_Date"),
        _decimal(pl.max_horizontal(moved, 1)).alias("Rate"),
    )


def generate_modifications(base_dir: Path, out_dir: Path, fraction: float, seed: int) -> GenerationSummary:
    """Write the next drop for a data set written by `generate` in `base_dir`.

    About `fraction` of the active order lines change (price changes and upsells, end-date extensions,
    a few cancellations); some lines get their next invoice, a few get a late invoice dated in the past
    and cancelled lines that were billed get a credit memo; new orders and add-on lines arrive with their
    invoices, usage and commissions; rates move on a month. Files: `<type>_mod.csv`.
    """
    began = time.perf_counter()
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
    base_dir, out_dir = Path(base_dir), Path(out_dir)
    rng = _Rng(seed)
    lines = _base_lines(base_dir)
    as_of = _as_of(base_dir, lines)
    changed = _modified_lines(rng, lines, fraction)
    products = _products_for_new_lines(base_dir)
    new = _new_lines(rng, lines, products, max(2, round(changed.height * 0.1)), as_of)
    numbers = _scan(base_dir / "invoices.csv").select("Invoice_Number").collect()["Invoice_Number"]
    rows = (
        _mod_invoice_rows(rng, changed, lines, new, fraction, as_of)
        .lazy()
        .with_columns(
            o_no=pl.col("Sales_Order_Id").str.extract(r"(\d+)").cast(pl.Int64, strict=False).fill_null(0),
            invoice_currency=pl.col("Currency"),
        )
    )
    regular = _number_invoices(
        rng, rows.filter(pl.col("amount") > 0), "INV-", _max_number(numbers, "INV-") + 1
    )
    memos = (
        rows.filter(pl.col("amount") < 0)
        .sort("date", "Sales_Order_Item_Id", maintain_order=True)
        .with_row_index("seq")
    )
    memos = memos.with_columns(
        Invoice_Number=_ids("CM-", pl.col("seq").cast(pl.Int64) + _max_number(numbers, "CM-") + 1, 6),
        Invoice_Line=pl.lit(1, dtype=pl.Int64),
        BS_CustomField02=pl.lit(None, dtype=pl.Utf8),
    )
    files = {
        "exchange_rates": _mod_rates(rng, base_dir, as_of),
        "sales_orders": _mod_sales_orders(changed, new),
        "invoices": pl.concat([_invoice_file(regular), _invoice_file(memos)]).collect(),
        "usage": _mod_usage(rng, lines, new, fraction, as_of),
        "commissions": _mod_commissions(rng, changed, new, as_of),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    written = dict(_write(out_dir, kind, frame, suffix="_mod") for kind, frame in files.items())
    return GenerationSummary(out_dir, written, as_of, _add_months_py(as_of, 1), time.perf_counter() - began)


def _products_for_new_lines(base_dir: Path) -> pl.DataFrame:
    products = _read(base_dir / "products.csv")
    return products.select(
        "Product_Id",
        "Revenue_Rule",
        (_parse_scaled(pl.col("SSP"), 2).cast(pl.Int64) if "SSP" in products.columns else pl.lit(None, dtype=pl.Int64)).alias("ssp_cents"),
    ).with_row_index("p_idx").with_columns(pl.col("p_idx").cast(pl.Int64))  # fmt: skip
