"""Adapters from the Rillet and Intacct clients to the posting targets `lib.posting` drives."""

from __future__ import annotations

from collections.abc import Iterable

from revrec_pipelines.lib.intacct import IntacctClient
from revrec_pipelines.lib.posting_model import JournalEntry
from revrec_pipelines.lib.rillet import DimensionField, RilletClient, dimension_fields


class RilletTarget:
    name = "rillet"

    def __init__(self, client: RilletClient, dimensions: Iterable[str]):
        self.client = client
        self.dimensions = tuple(dimensions)
        self._fields: dict[str, DimensionField] | None = None

    def _field_assignments(self) -> dict[str, DimensionField]:
        # Custom dimensions are Rillet fields looked up once per posting run (GET /fields).
        if self._fields is None:
            self._fields = dimension_fields(self.client.iter_fields(), {d: d for d in self.dimensions})
        return self._fields

    def post(self, entry: JournalEntry, idempotency_key: str) -> str:
        return self.client.post_journal_entry(entry, idempotency_key, self._field_assignments())

    def find(self, entry: JournalEntry) -> str | None:
        return self.client.find_journal_entry(entry.name, entry.entry_date, subsidiary_id=entry.target_entity_id)


class IntacctTarget:
    name = "intacct"

    def __init__(self, client: IntacctClient, dimensions: Iterable[str]):
        self.client = client
        self.dimensions = tuple(dimensions)

    def post(self, entry: JournalEntry, idempotency_key: str) -> str:
        return self.client.post_entry(entry, idempotency_key, self.dimensions)

    def find(self, entry: JournalEntry) -> str | None:
        return self.client.find_batch(entry.name, self.client.journal, entry.entry_date, entity_id=entry.target_entity_id or "")
