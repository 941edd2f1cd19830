"""The input file types of SPEC §2: columns, keys, value kinds and the order units are applied in."""

from __future__ import annotations

from dataclasses import dataclass

# Value kinds. Each has a format rule (validation.py) and a warehouse type.
TEXT, DATE, MONEY, UNIT_PRICE, QUANTITY, RATE, BOOL, CURRENCY, RULE = (
    "text", "date", "money", "unit_price", "quantity", "rate", "bool", "currency", "rule",
)

SQL_TYPES = {
    TEXT: "VARCHAR",
    DATE: "DATE",
    MONEY: "DECIMAL(18,2)",
    UNIT_PRICE: "DECIMAL(18,6)",
    QUANTITY: "DECIMAL(18,6)",
    RATE: "DECIMAL(24,12)",
    BOOL: "BOOLEAN",
    CURRENCY: "VARCHAR",
    RULE: "VARCHAR",
}

REVENUE_RULES = ("ratable_daily", "ratable_monthly", "point_in_time", "usage")
ACCOUNT_TYPES = (
    "Contra Revenue",
    "Revenue",
    "Deferred Revenue",
    "Unbilled Receivable",
    "Deferred Expense",
    "Expense Clearing",
    "Expense Recognized",
)


@dataclass(frozen=True)
class Column:
    name: str
    kind: str = TEXT
    required: bool = False

    @property
    def sql_name(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class FileType:
    name: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]

    @property
    def table(self) -> str:
        """Warehouse table holding every version of every row (`<table>_current` holds the current ones)."""
        return f"raw_{self.name}"

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def _cols(required: str, optional: str = "", **kinds: str) -> tuple[Column, ...]:
    out = [Column(n, kinds.get(n, TEXT), True) for n in required.split()]
    out += [Column(n, kinds.get(n, TEXT), False) for n in optional.split()]
    return tuple(out)


CUSTOM_FIELDS = " ".join(f"BS_CustomField{i:02d}" for i in range(2, 11))

FILE_TYPES: dict[str, FileType] = {
    ft.name: ft
    for ft in (
        FileType("customers", ("Customer_Id",), _cols("Customer_Id Customer_Name", "Subsidiary_Id Email Country")),
        FileType(
            "products",
            ("Product_Id",),
            _cols(
                "Product_Id Product_Code Product_Name Revenue_Rule",
                "SSP Class Location Department",
                Revenue_Rule=RULE,
                SSP=UNIT_PRICE,
            ),
        ),
        FileType(
            "subsidiaries",
            ("Subsidiary_Id",),
            _cols("Subsidiary_Id Subsidiary_Name", "Rillet_Subsidiary_Id Intacct_Location_Id"),
        ),
        FileType(
            "account_mappings",
            ("Account_Type", "Subsidiary_Id"),
            _cols("Account_Type Account_Id", "Account_Name Subsidiary_Id"),
        ),
        FileType(
            "exchange_rates",
            ("From_Currency", "To_Currency", "Rate_Date"),
            _cols(
                "From_Currency To_Currency Rate_Date Rate",
                From_Currency=CURRENCY,
                To_Currency=CURRENCY,
                Rate_Date=DATE,
                Rate=RATE,
            ),
        ),
        FileType(
            "sales_orders",
            ("Sales_Order_Item_Id",),
            _cols(
                "Sales_Order_Id Sales_Order_Item_Id Customer_Id Product_Id Order_Date Quantity Sale_Price "
                "Service_Start_Date Service_End_Date Currency",
                "List_Price Subsidiary_Id IsActive Revenue_Rule",
                Order_Date=DATE,
                Quantity=QUANTITY,
                Sale_Price=UNIT_PRICE,
                Service_Start_Date=DATE,
                Service_End_Date=DATE,
                Currency=CURRENCY,
                List_Price=UNIT_PRICE,
                IsActive=BOOL,
                Revenue_Rule=RULE,
            ),
        ),
        FileType(
            "invoices",
            ("Invoice_Number", "Invoice_Line"),
            _cols(
                "Invoice_Number Invoice_Line Billing_Date Billing_Amount Currency",
                "Sales_Order_Id Sales_Order_Item_Id Customer_Id Product_Id Service_Start_Date Service_End_Date "
                + CUSTOM_FIELDS,
                Billing_Date=DATE,
                Billing_Amount=MONEY,
                Currency=CURRENCY,
                Service_Start_Date=DATE,
                Service_End_Date=DATE,
            ),
        ),
        FileType(
            "usage",
            ("Sales_Order_Item_Id", "Usage_Date"),
            _cols("Sales_Order_Item_Id Usage_Date Amount", Usage_Date=DATE, Amount=MONEY),
        ),
        FileType(
            "commissions",
            ("Sales_Order_Item_Id", "Commission_Date"),
            _cols("Sales_Order_Item_Id Commission_Date Amount", Commission_Date=DATE, Amount=MONEY),
        ),
    )
}

# SPEC §2 Order: units are applied by type in this order, then by name.
APPLY_ORDER: tuple[str, ...] = (
    "customers",
    "products",
    "subsidiaries",
    "account_mappings",
    "exchange_rates",
    "sales_orders",
    "invoices",
    "usage",
    "commissions",
)


def type_of_name(name: str) -> str | None:
    """The file type of a file or sheet name: the longest type name its stem starts with (case-insensitive)."""
    stem = name.rsplit("/", 1)[-1].rsplit(".", 1)[0].strip().lower()
    matches = [t for t in FILE_TYPES if stem.startswith(t)]
    return max(matches, key=len) if matches else None
