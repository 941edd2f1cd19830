"""The journal entry that is posted to a general ledger (SPEC §5), independent of the target.

A period's journal lines are aggregated per subsidiary into one `JournalEntry`; its items are the net
per (Account_Id, Class, Location, Department), debit if positive, credit if negative. Amounts are
integer cents, always positive on an item; the side says debit or credit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Literal

Side = Literal["DEBIT", "CREDIT"]


@dataclass(frozen=True)
class JournalEntryItem:
    account_id: str
    side: Side
    amount_cents: int  # > 0
    description: str  # account type and period, e.g. "Deferred Revenue 2025-01"
    class_id: str | None = None
    location_id: str | None = None
    department_id: str | None = None

    def __post_init__(self) -> None:
        if self.amount_cents <= 0:
            raise ValueError(f"journal item amount must be positive cents, got {self.amount_cents}")
        if self.side not in ("DEBIT", "CREDIT"):
            raise ValueError(f"journal item side must be DEBIT or CREDIT, got {self.side!r}")

    @property
    def amount(self) -> str:
        """The amount as a plain decimal string with exactly 2 decimals ("1234.50")."""
        return cents_to_str(self.amount_cents)


@dataclass(frozen=True)
class JournalEntry:
    """One entry per period, subsidiary and posting sequence (0 = the close, n = adjustment n)."""

    entry_key: str  # deterministic identity, e.g. "202501|SUB-US|0"; basis of idempotency keys
    period: int  # YYYYMM
    subsidiary_id: str | None  # our Subsidiary_Id (None = the default / top-level entity)
    target_entity_id: str | None  # Rillet subsidiary id or Intacct location id (None = top level)
    name: str  # "RevRec 2025-01 SUB-US" or "RevRec 2025-01 SUB-US adjustment 1"
    entry_date: date  # last day of the period
    currency: str  # home currency
    items: tuple[JournalEntryItem, ...] = field(default_factory=tuple)

    @property
    def total_debit_cents(self) -> int:
        return sum(i.amount_cents for i in self.items if i.side == "DEBIT")

    @property
    def total_credit_cents(self) -> int:
        return sum(i.amount_cents for i in self.items if i.side == "CREDIT")

    def is_balanced(self) -> bool:
        return self.total_debit_cents == self.total_credit_cents


class PostingError(Exception):
    """A target refused or failed an entry. `detail` is the target's own words, safe to show."""

    def __init__(self, message: str, *, detail: str = "", retryable: bool = False, ambiguous: bool = False):
        super().__init__(message)
        self.detail = detail
        self.retryable = retryable  # a later attempt may succeed (429, 5xx, transport)
        self.ambiguous = ambiguous  # the target may have created the entry (timeout after send)


def cents_to_str(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"
