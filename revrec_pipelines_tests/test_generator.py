"""The synthetic data generator (lib/generator.py) writes files that pass every SPEC §2 rule.

The checks here are written independently of the generator, with the csv module and Decimal, so that
a generator bug cannot hide behind shared code.
"""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from revrec_pipelines.lib.generator import generate, generate_modifications

SEED = 20250101
LINES = 500
HOME = "USD"

HEADERS = {
    "customers": ["Customer_Id", "Customer_Name", "Subsidiary_Id", "Email", "Country"],
    "products": ["Product_Id", "Product_Code", "Product_Name", "Revenue_Rule", "SSP", "Class", "Location", "Department"],
    "subsidiaries": ["Subsidiary_Id", "Subsidiary_Name", "Rillet_Subsidiary_Id", "Intacct_Location_Id"],
    "account_mappings": ["Account_Type", "Account_Id", "Account_Name", "Subsidiary_Id"],
    "exchange_rates": ["From_Currency", "To_Currency", "Rate_Date", "Rate"],
    "sales_orders": [
        "Sales_Order_Id", "Sales_Order_Item_Id", "Customer_Id", "Product_Id", "Order_Date", "Quantity", "Sale_Price",
        "Service_Start_Date", "Service_End_Date", "Currency", "List_Price", "Subsidiary_Id", "IsActive", "Revenue_Rule",
    ],
    "invoices": [
        "Invoice_Number", "Invoice_Line", "Billing_Date", "Billing_Amount", "Currency", "Sales_Order_Id",
        "Sales_Order_Item_Id", "Customer_Id", "Product_Id", "Service_Start_Date", "Service_End_Date", "BS_CustomField02",
    ],
    "usage": ["Sales_Order_Item_Id", "Usage_Date", "Amount"],
    "commissions": ["Sales_Order_Item_Id", "Commission_Date", "Amount"],
}  # fmt: skip
REQUIRED = {
    "customers": ["Customer_Id", "Customer_Name"],
    "products": ["Product_Id", "Product_Code", "Product_Name", "Revenue_Rule"],
    "subsidiaries": ["Subsidiary_Id", "Subsidiary_Name"],
    "account_mappings": ["Account_Type", "Account_Id"],
    "exchange_rates": ["From_Currency", "To_Currency", "Rate_Date", "Rate"],
    "sales_orders": HEADERS["sales_orders"][:10],
    "invoices": HEADERS["invoices"][:5],
    "usage": HEADERS["usage"],
    "commissions": HEADERS["commissions"],
}
KEYS = {
    "customers": ["Customer_Id"],
    "products": ["Product_Id"],
    "subsidiaries": ["Subsidiary_Id"],
    "account_mappings": ["Account_Type", "Subsidiary_Id"],
    "exchange_rates": ["From_Currency", "To_Currency", "Rate_Date"],
    "sales_orders": ["Sales_Order_Item_Id"],
    "invoices": ["Invoice_Number", "Invoice_Line"],
    "usage": ["Sales_Order_Item_Id", "Usage_Date"],
    "commissions": ["Sales_Order_Item_Id", "Commission_Date"],
}
RULES = {"ratable_daily", "ratable_monthly", "point_in_time", "usage"}
ACCOUNT_TYPES = {
    "Contra Revenue", "Revenue", "Deferred Revenue", "Unbilled Receivable", "Deferred Expense", "Expense Clearing",
    "Expense Recognized",
}  # fmt: skip
ISO_CURRENCIES = {"USD", "EUR", "GBP", "CAD", "AUD", "NZD", "CHF", "JPY", "SEK", "NOK", "DKK", "SGD", "HKD", "MXN",
                  "BRL", "INR", "PLN", "ZAR", "CNY"}  # fmt: skip

DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MONEY = re.compile(r"^-?\d+\.\d{2}$")  # the generator always writes 2 decimals (SPEC: at most 2)
DECIMAL6 = re.compile(r"^\d+(\.\d{1,6})?$")
CENT = Decimal("0.01")


def read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        return header, [dict(zip(header, row, strict=True)) for row in reader]


def load(folder: Path, suffix: str = "") -> dict[str, list[dict[str, str]]]:
    tables = {}
    for kind, expected in HEADERS.items():
        path = folder / f"{kind}{suffix}.csv"
        if not path.exists():
            continue
        header, rows = read(path)
        assert header == expected, f"{path.name}: header {header}"
        tables[kind] = rows
    return tables


def day(text: str) -> date:
    assert DATE.match(text), text
    return date.fromisoformat(text)


def booking(line: dict[str, str]) -> Decimal:
    return (Decimal(line["Quantity"]) * Decimal(line["Sale_Price"])).quantize(CENT, rounding=ROUND_HALF_UP)


def effective_rule(line: dict[str, str], products: dict[str, dict[str, str]]) -> str:
    return line["Revenue_Rule"] or products[line["Product_Id"]]["Revenue_Rule"]


def check_file(kind: str, rows: list[dict[str, str]]) -> list[str]:
    """Required values, unique keys and value formats of one file: the problems found."""
    problems = []
    keys = Counter(tuple(r[k] for k in KEYS[kind]) for r in rows)
    problems += [f"{kind}: duplicate key {k}" for k, n in keys.items() if n > 1]
    for i, row in enumerate(rows, start=2):
        problems += [f"{kind} row {i}: {c} is empty" for c in REQUIRED[kind] if not row[c]]
        for column, value in row.items():
            if not value:
                continue
            if column.endswith("_Date") and not (DATE.match(value) and date.fromisoformat(value)):
                problems.append(f"{kind} row {i}: {column}={value!r} is not an ISO date")
            if column in ("Currency", "From_Currency", "To_Currency") and value not in ISO_CURRENCIES:
                problems.append(f"{kind} row {i}: {column}={value!r} is not an ISO currency")
            if column in ("Billing_Amount", "Amount", "SSP") and not MONEY.match(value):
                problems.append(f"{kind} row {i}: {column}={value!r} is not money with 2 decimals")
            if column in ("Quantity", "Sale_Price", "List_Price", "Rate") and not DECIMAL6.match(value):
                problems.append(
                    f"{kind} row {i}: {column}={value!r} is not a non-negative decimal (≤ 6 places)"
                )
            if column == "Revenue_Rule" and value not in RULES:
                problems.append(f"{kind} row {i}: unknown Revenue_Rule {value!r}")
    return problems


def check_references(
    tables: dict[str, list[dict[str, str]]], base: dict[str, list[dict[str, str]]] | None = None
) -> list[str]:
    """SPEC §2 validation rules that span rows and files; `base` is an earlier batch (for a modification)."""
    base = base or {}
    problems = []

    def known(kind: str, key: str) -> dict[str, dict[str, str]]:
        # later rows replace earlier ones, as an upsert by key does
        return {r[key]: r for r in [*base.get(kind, []), *tables.get(kind, [])]}

    customers, products = known("customers", "Customer_Id"), known("products", "Product_Id")
    subsidiaries, lines = known("subsidiaries", "Subsidiary_Id"), known("sales_orders", "Sales_Order_Item_Id")
    for row in tables.get("customers", []):
        if row["Subsidiary_Id"] and row["Subsidiary_Id"] not in subsidiaries:
            problems.append(f"customer {row['Customer_Id']}: unknown subsidiary {row['Subsidiary_Id']}")
    for row in tables.get("account_mappings", []):
        if row["Subsidiary_Id"] and row["Subsidiary_Id"] not in subsidiaries:
            problems.append(f"mapping {row}: unknown subsidiary")
        if row["Account_Type"] not in ACCOUNT_TYPES:
            problems.append(f"mapping {row}: unknown account type")
    for row in tables.get("sales_orders", []):
        item = row["Sales_Order_Item_Id"]
        if row["Customer_Id"] not in customers:
            problems.append(f"line {item}: unknown customer {row['Customer_Id']}")
        if row["Product_Id"] not in products:
            problems.append(f"line {item}: unknown product {row['Product_Id']}")
        if row["Subsidiary_Id"] and row["Subsidiary_Id"] not in subsidiaries:
            problems.append(f"line {item}: unknown subsidiary {row['Subsidiary_Id']}")
        if day(row["Service_End_Date"]) < day(row["Service_Start_Date"]):
            problems.append(f"line {item}: service ends before it starts")
        if Decimal(row["Quantity"]) <= 0:
            problems.append(f"line {item}: Quantity {row['Quantity']} is not positive")
        if row["IsActive"] not in ("true", "false"):
            problems.append(f"line {item}: IsActive {row['IsActive']!r}")
    currency_of_order = defaultdict(set)
    for row in lines.values():
        currency_of_order[row["Sales_Order_Id"]].add(row["Currency"])
    problems += [f"order {o}: several currencies {c}" for o, c in currency_of_order.items() if len(c) > 1]
    for row in tables.get("invoices", []):
        where = f"invoice {row['Invoice_Number']}/{row['Invoice_Line']}"
        if not row["Invoice_Line"].isdigit():
            problems.append(f"{where}: Invoice_Line is not an integer")
        if row["Sales_Order_Item_Id"]:
            line = lines.get(row["Sales_Order_Item_Id"])
            if line is None:
                problems.append(f"{where}: unknown order line {row['Sales_Order_Item_Id']}")
            elif row["Sales_Order_Id"] != line["Sales_Order_Id"]:
                problems.append(f"{where}: Sales_Order_Id does not match its line")
        else:  # invoice-as-contract
            if row["Customer_Id"] not in customers or row["Product_Id"] not in products:
                problems.append(f"{where}: invoice-as-contract without a known customer and product")
            if bool(row["Service_Start_Date"]) != bool(row["Service_End_Date"]):
                problems.append(f"{where}: only one service date")
            elif row["Service_Start_Date"] and day(row["Service_End_Date"]) < day(row["Service_Start_Date"]):
                problems.append(f"{where}: service ends before it starts")
    for kind in ("usage", "commissions"):
        for row in tables.get(kind, []):
            if row["Sales_Order_Item_Id"] not in lines:
                problems.append(f"{kind}: unknown order line {row['Sales_Order_Item_Id']}")
    return problems


def assert_valid(
    tables: dict[str, list[dict[str, str]]], base: dict[str, list[dict[str, str]]] | None = None
) -> None:
    problems = [p for kind, rows in tables.items() for p in check_file(kind, rows)]
    problems += check_references(tables, base)
    assert not problems, "\n".join(problems[:20])


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("base")
    summary = generate(out, lines=LINES, seed=SEED)
    assert summary.rows["sales_orders.csv"] == LINES
    assert summary.as_of == date(2026, 1, 1)
    return out


@pytest.fixture(scope="module")
def base(base_dir: Path) -> dict[str, list[dict[str, str]]]:
    return load(base_dir)


@pytest.fixture(scope="module")
def mod_dir(base_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mod")
    generate_modifications(base_dir, out, fraction=0.1, seed=SEED + 1)
    return out


@pytest.fixture(scope="module")
def mod(mod_dir: Path) -> dict[str, list[dict[str, str]]]:
    return load(mod_dir, "_mod")


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path: Path) -> None:
    def run(name: str, seed: int) -> dict[str, bytes]:
        out = tmp_path / name
        generate(out, lines=300, seed=seed)
        generate_modifications(out, out / "mod", fraction=0.2, seed=seed)
        return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*.csv"))}

    first, again, other = run("a", 7), run("b", 7), run("c", 8)
    assert len(first) == 14
    assert first == again
    for name in (
        "sales_orders.csv",
        "invoices.csv",
        "usage.csv",
        "customers.csv",
        "mod/sales_orders_mod.csv",
    ):
        assert first[name] != other[name], name


def test_every_file_has_its_spec_header_and_passes_every_validation_rule(base: dict) -> None:
    assert set(base) == set(HEADERS)
    assert_valid(base)


def test_dimensions(base: dict) -> None:
    subsidiaries = base["subsidiaries"]
    assert {s["Subsidiary_Id"] for s in subsidiaries} == {"SUB-US", "SUB-UK", "SUB-DE"}
    assert all(all(s.values()) for s in subsidiaries)
    assert {c["Subsidiary_Id"] for c in base["customers"]} == {"SUB-US", "SUB-UK", "SUB-DE", ""}
    defaults = {m["Account_Type"] for m in base["account_mappings"] if not m["Subsidiary_Id"]}
    assert defaults == ACCOUNT_TYPES
    assert any(m["Subsidiary_Id"] for m in base["account_mappings"])
    assert all(p["Class"] and p["Location"] and p["Department"] for p in base["products"])
    assert {p["Revenue_Rule"] for p in base["products"]} == RULES


def test_order_lines_cover_the_cases_revenue_recognition_must_handle(base: dict) -> None:
    products = {p["Product_Id"]: p for p in base["products"]}
    lines = base["sales_orders"]
    rules = Counter(effective_rule(line, products) for line in lines)
    assert set(rules) == RULES
    assert rules.most_common(1)[0][0] == "ratable_daily"
    assert any(
        line["Revenue_Rule"] and line["Revenue_Rule"] != products[line["Product_Id"]]["Revenue_Rule"]
        for line in lines
    )

    sizes = Counter(line["Sales_Order_Id"] for line in lines)
    assert max(sizes.values()) == 5 and min(sizes.values()) == 1
    assert len({line["Currency"] for line in lines}) == 4

    ssp = {p: Decimal(r["SSP"]) for p, r in products.items() if r["SSP"]}
    assert any(
        line["Product_Id"] in ssp and Decimal(line["Sale_Price"]) < ssp[line["Product_Id"]] for line in lines
    )
    no_ssp = [
        line for line in lines if line["Product_Id"] not in ssp and effective_rule(line, products) != "usage"
    ]
    assert any(line["List_Price"] for line in no_ssp), "a line whose SSP comes from its List_Price"
    assert any(not line["List_Price"] for line in no_ssp), "a line with neither SSP nor List_Price"

    assert any("." in line["Quantity"] for line in lines), "a fractional quantity"
    assert any(len(line["Sale_Price"].partition(".")[2]) > 2 for line in lines), "a price with 6 decimals"
    assert any(day(line["Service_Start_Date"]).day not in (1,) for line in lines), "a mid-month start"
    lengths = [(day(line["Service_End_Date"]) - day(line["Service_Start_Date"])).days + 1 for line in lines]
    assert any(28 <= n <= 31 for n in lengths) and any(365 <= n <= 366 for n in lengths)
    assert any(n > 3 * 365 for n in lengths), "a multi-year term"

    by_order = defaultdict(list)
    for line in lines:
        by_order[line["Sales_Order_Id"]].append(line)
    cancelled = [line for line in lines if line["IsActive"] == "false"]
    assert cancelled
    for line in cancelled:
        assert any(other["IsActive"] == "true" for other in by_order[line["Sales_Order_Id"]])


def test_invoices_cover_every_billing_pattern(base: dict) -> None:
    lines = {line["Sales_Order_Item_Id"]: line for line in base["sales_orders"]}
    invoices = base["invoices"]
    per_line = defaultdict(list)
    for row in invoices:
        if row["Sales_Order_Item_Id"]:
            per_line[row["Sales_Order_Item_Id"]].append(row)
    assert all(day(row["Billing_Date"]) < date(2026, 1, 1) for row in invoices)

    def amounts(item: str) -> list[Decimal]:
        return [
            Decimal(r["Billing_Amount"]) for r in per_line[item] if r["Currency"] == lines[item]["Currency"]
        ]

    upfront = [i for i, rows in per_line.items() if len(rows) == 1 and amounts(i) == [booking(lines[i])]
               and rows[0]["Billing_Date"] in (lines[i]["Service_Start_Date"], lines[i]["Order_Date"])]  # fmt: skip
    assert upfront, "an upfront invoice"
    periodic = [i for i in per_line if len(amounts(i)) >= 3 and len(set(amounts(i)[:-1])) == 1]
    assert periodic, "a periodic schedule"
    in_arrears = [i for i, rows in per_line.items() if all(day(r["Billing_Date"]) > day(lines[i]["Service_Start_Date"]) for r in rows)
                  and any(day(r["Billing_Date"]) == day(lines[i]["Service_End_Date"]) + timedelta(days=1) for r in rows)]  # fmt: skip
    assert in_arrears, "an invoice after the service period"
    partial = [i for i in per_line if len(amounts(i)) == 1 and 0 < amounts(i)[0] < booking(lines[i])
               and day(lines[i]["Service_End_Date"]) < date(2025, 11, 1)]  # fmt: skip
    assert partial, "a partially billed line"

    credits = [r for r in invoices if Decimal(r["Billing_Amount"]) < 0]
    assert credits and all(r["Sales_Order_Item_Id"] in lines for r in credits)
    foreign = [
        r
        for r in invoices
        if r["Sales_Order_Item_Id"] and r["Currency"] != lines[r["Sales_Order_Item_Id"]]["Currency"]
    ]
    assert foreign, "an invoice line in another currency than its order's"
    as_contract = [r for r in invoices if not r["Sales_Order_Item_Id"]]
    assert any(r["Service_Start_Date"] for r in as_contract) and any(
        not r["Service_Start_Date"] for r in as_contract
    )
    lines_per_invoice = Counter(r["Invoice_Number"] for r in invoices)
    assert max(lines_per_invoice.values()) > 1
    for number in lines_per_invoice:
        rows = [r for r in invoices if r["Invoice_Number"] == number]
        assert len({(r["Billing_Date"], r["Currency"]) for r in rows}) == 1, number
        assert sorted(int(r["Invoice_Line"]) for r in rows) == list(range(1, len(rows) + 1)), number


def test_usage_commissions_and_rates(base: dict) -> None:
    products = {p["Product_Id"]: p for p in base["products"]}
    lines = {line["Sales_Order_Item_Id"]: line for line in base["sales_orders"]}
    usage_per_month = Counter()
    for row in base["usage"]:
        line = lines[row["Sales_Order_Item_Id"]]
        assert effective_rule(line, products) == "usage" and line["IsActive"] == "true"
        assert line["Service_Start_Date"] <= row["Usage_Date"] <= line["Service_End_Date"]
        assert Decimal(row["Amount"]) > 0
        usage_per_month[(row["Sales_Order_Item_Id"], row["Usage_Date"][:7])] += 1
    assert max(usage_per_month.values()) >= 3

    commissions = base["commissions"]
    assert 0 < len({c["Sales_Order_Item_Id"] for c in commissions}) < len(lines) / 2
    assert any(
        c["Commission_Date"] > lines[c["Sales_Order_Item_Id"]]["Service_Start_Date"] for c in commissions
    )

    rates = base["exchange_rates"]
    pairs = defaultdict(list)
    for r in rates:
        assert Decimal(r["Rate"]) > 0
        pairs[(r["From_Currency"], r["To_Currency"])].append(day(r["Rate_Date"]))
    quoted = {frm if to == HOME else to for frm, to in pairs}
    assert quoted == {"EUR", "GBP", "CAD"} and all(HOME in pair for pair in pairs)
    assert ("USD", "CAD") in pairs and ("CAD", "USD") not in pairs, (
        "a pair quoted only in the inverse direction"
    )
    first_order = min(day(line["Order_Date"]) for line in lines.values())
    for dates in pairs.values():
        assert min(dates) < first_order
        assert all((b - a).days <= 31 for a, b in zip(sorted(dates), sorted(dates)[1:], strict=False)), (
            "monthly"
        )
        assert max(dates) >= date(2025, 12, 1)


def test_modification_batch_is_valid_against_its_base(base: dict, mod: dict) -> None:
    assert set(mod) == {"sales_orders", "invoices", "usage", "commissions", "exchange_rates"}
    assert_valid(mod, base)


def test_modification_batch_changes_existing_lines_and_adds_new_ones(base: dict, mod: dict) -> None:
    old = {line["Sales_Order_Item_Id"]: line for line in base["sales_orders"]}
    changed = [line for line in mod["sales_orders"] if line["Sales_Order_Item_Id"] in old]
    new = [line for line in mod["sales_orders"] if line["Sales_Order_Item_Id"] not in old]
    active = sum(line["IsActive"] == "true" for line in old.values())
    assert abs(len(changed) - round(0.1 * active)) <= 1
    for line in changed:
        before = old[line["Sales_Order_Item_Id"]]
        assert before["IsActive"] == "true"
        for column in (
            "Sales_Order_Id",
            "Customer_Id",
            "Product_Id",
            "Currency",
            "Order_Date",
            "Service_Start_Date",
        ):
            assert line[column] == before[column], column
    assert any(booking(line) > booking(old[line["Sales_Order_Item_Id"]]) for line in changed), "an upsell"
    assert any(
        line["Service_End_Date"] > old[line["Sales_Order_Item_Id"]]["Service_End_Date"] for line in changed
    )
    cancelled = [line for line in changed if line["IsActive"] == "false"]
    assert cancelled, "a cancellation"
    after = {**old, **{line["Sales_Order_Item_Id"]: line for line in mod["sales_orders"]}}
    for line in cancelled:
        assert any(
            o["Sales_Order_Id"] == line["Sales_Order_Id"] and o["IsActive"] == "true" for o in after.values()
        )

    old_orders = {line["Sales_Order_Id"] for line in old.values()}
    assert new and any(line["Sales_Order_Id"] not in old_orders for line in new)
    assert all(line["Order_Date"] >= "2026-01-01" for line in new)

    base_numbers = {r["Invoice_Number"] for r in base["invoices"]}
    invoices = mod["invoices"]
    assert invoices and not base_numbers & {r["Invoice_Number"] for r in invoices}
    assert any(r["Billing_Date"] < "2026-01-01" for r in invoices), "a late invoice dated in the past"
    assert any(r["Billing_Date"] >= "2026-01-01" for r in invoices)
    assert any(Decimal(r["Billing_Amount"]) < 0 for r in invoices), "a credit memo"
    assert all(r["Usage_Date"] >= "2026-01-01" for r in mod["usage"])
    assert {(r["From_Currency"], r["To_Currency"]) for r in mod["exchange_rates"]} == {
        (r["From_Currency"], r["To_Currency"]) for r in base["exchange_rates"]
    }


def test_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsupported currencies"):
        generate(tmp_path, lines=10, seed=1, currencies=("USD", "XYZ"))
    with pytest.raises(ValueError, match="lines"):
        generate(tmp_path, lines=0, seed=1)
    with pytest.raises(ValueError, match="fraction"):
        generate_modifications(tmp_path, tmp_path / "mod", fraction=1.5, seed=1)


def test_other_home_currency_and_a_single_currency(tmp_path: Path) -> None:
    generate(tmp_path / "eur", lines=120, seed=3, currencies=("EUR", "USD", "GBP"), home_currency="EUR")
    _, rates = read(tmp_path / "eur" / "exchange_rates.csv")
    assert {(r["From_Currency"], r["To_Currency"]) for r in rates} == {("USD", "EUR"), ("EUR", "GBP")}
    assert_valid(load(tmp_path / "eur"))
    generate(tmp_path / "usd", lines=60, seed=3, currencies=("USD",))
    tables = load(tmp_path / "usd")
    assert tables["exchange_rates"] == [] and {r["Currency"] for r in tables["sales_orders"]} == {"USD"}
    assert_valid(tables)
