"""A stateful local Rillet API for behaviour tests, shaped exactly like the OpenAPI document
(`shared/reference/rillet/openapi.json`, API version 4). It knows nothing of our client.

    with RilletEmulator(api_key="test-key") as rillet:      # a free 127.0.0.1 port, a daemon thread
        rillet.seed(**sample_seed())                       # or accounts=[account(...)], contracts=[...]
        client = RilletClient(rillet.base_url, "test-key")
        ...
        rillet.journal_entries                             # what was posted
        rillet.requests                                    # every request, with its status

What it serves (bodies as the spec's schemas; errors as RFC 9457 problem bodies, `Error` schema):
- `GET /accounts`, `/subsidiaries`, `/fields`: the whole collection in one body (the spec declares no
  `limit`/`cursor` there); `updated.gt` on accounts and fields.
- `GET /customers`, `/products`, `/contracts` (items embedded), `/invoices`, `/credit-memos`,
  `/invoice-payments` (key `payments`), `/journal-entries`: cursor pages (`limit` 1..100, default 25,
  `pagination.next_cursor` absent on the last page; cursors are opaque and snapshot the result), newest
  first, with the filters each endpoint declares (`updated.gt`, `subsidiary_id`, `customer_id`,
  `status`, `search`, `start_date.*`, `end_date.*`, `date.gte`, `date.lte`, `account_ids`, `sort_by`, ...).
- `POST /journal-entries`: validates `CreateJournalEntryRequest` plus what the ledger checks (known
  active account codes, subsidiary, field values, amounts rounded to the currency, balanced) and answers
  422 with every violation in `detail`; stores the entry and answers the spec's `JournalEntry`.
  `Idempotency-Key`: a replay with the same key and body answers the original entry (no duplicate,
  header `Idempotent-Replayed: true`); the same key with another body answers 422.
- `GET /journal-entries/{id}`, `GET /api-key`, `GET /health`.
- A wrong or missing bearer key answers 401 (`https://rillet.io/unauthorized`).

Fault knobs (each applies to the next matching requests, then disarms):
- `fail_next(status, times, retry_after=None, detail=None)`: 429 / 5xx / 401 / ... problem answers.
- `stall_next(seconds)`: process the request (store the entry), then wait before answering: a client
  timeout after the write happened.
- `drop_next(after_processing=False)`: close the connection without an answer, before or after the write.
- `repeat_cursor(path)`: the list answers `next_cursor` equal to the cursor it was asked with.
- `page_size_cap = n`: pages of at most n objects, whatever `limit` says (several pages from a few rows).
- `rate_limit_per_minute = n`: a sliding-window limit (on `clock`) answering 429 with `Retry-After`.

Factories (`account`, `subsidiary`, `customer`, `product`, `contract`, `contract_item`, `invoice`,
`invoice_item`, `credit_memo`, `credit_memo_item`, `invoice_payment`, `field`) build spec-valid objects
with deterministic ids (`rillet_id(kind, key)`) and amounts from integer cents.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from revrec_pipelines.lib.posting_model import cents_to_str

LOOPBACK = "127.0.0.1"
DEFAULT_API_KEY = "rillet-emulator-key"
DEFAULT_UPDATED_AT = "2025-01-01T00:00:00Z"
# RFC 9457 names this media type; the OpenAPI document declares `application/json` for its `Error`
# responses. The body is the same; clients must read either.
PROBLEM_CONTENT_TYPE = "application/problem+json"
MINOR_UNITS = {
    "JPY": 0,
    "KRW": 0,
    "CLP": 0,
    "ISK": 0,
    "VND": 0,
    "BHD": 3,
    "KWD": 3,
    "OMR": 3,
    "JOD": 3,
    "TND": 3,
}
_NAMESPACE = uuid.UUID("6f1c9a52-8d3e-4b8a-9b61-1f0e6c2d7a10")


# -- collections as the spec declares them ---------------------------------------------------------

Filter = Callable[[dict[str, Any], str, Mapping[str, str]], bool]


@dataclass(frozen=True)
class _Collection:
    name: str  # the seed keyword and the store's name
    path: str
    key: str  # the array's key in the 200 body
    paginated: bool
    filters: Mapping[str, Filter]
    sortable: bool = False  # declares sort_by (created | updated)


def _eq(attr: str) -> Filter:
    return lambda obj, value, _q: str(obj.get(attr)) == value


def _updated_after(obj: dict[str, Any], value: str, _q: Mapping[str, str]) -> bool:
    return "updated_at" in obj and _parse_ts(obj["updated_at"]) > _parse_ts(value)


def _date_cmp(attr: str, op: str, open_ended_matches: bool = False) -> Filter:
    def check(obj: dict[str, Any], value: str, _q: Mapping[str, str]) -> bool:
        own = obj.get(attr)
        if own is None:
            return open_ended_matches
        a, b = date.fromisoformat(own), _parse_date(value)
        return {"gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b}[op]

    return check


def _search(obj: dict[str, Any], value: str, _q: Mapping[str, str]) -> bool:
    return value.casefold() in str(obj.get("name", "")).casefold()


def _external_reference(obj: dict[str, Any], value: str, q: Mapping[str, str]) -> bool:
    wanted_type = q.get("external_reference_type")
    return any(
        r.get("id") == value and (wanted_type is None or r.get("type") == wanted_type)
        for r in obj.get("external_references") or []
    )


def _overdue(obj: dict[str, Any], value: str, _q: Mapping[str, str]) -> bool:
    return bool(obj.get("overdue")) == (value.lower() == "true")


def _product_currency(obj: dict[str, Any], value: str, _q: Mapping[str, str]) -> bool:
    price = obj.get("price") or {}
    amount = price.get("amount") or (price.get("billing_scheme") or {}).get("amount") or {}
    return amount.get("currency") == value


def _account_ids(obj: dict[str, Any], value: str, _q: Mapping[str, str]) -> bool:
    wanted = {v.strip() for v in value.split(",") if v.strip()}
    return any(item.get("account_id") in wanted for item in obj.get("items", []))


def _range_filters(attr: str, open_ended_after: bool = False) -> dict[str, Filter]:
    return {
        f"{attr}.{op}": _date_cmp(attr, op, open_ended_after and op in ("gt", "gte"))
        for op in ("gt", "gte", "lt", "lte")
    }


COLLECTIONS: dict[str, _Collection] = {
    c.name: c
    for c in (
        _Collection("accounts", "/accounts", "accounts", False, {"updated.gt": _updated_after}),
        _Collection("subsidiaries", "/subsidiaries", "subsidiaries", False, {}),
        _Collection(
            "customers",
            "/customers",
            "customers",
            True,
            {"search": _search, "external_reference_id": _external_reference, "updated.gt": _updated_after},
            sortable=True,
        ),
        _Collection(
            "products",
            "/products",
            "products",
            True,
            {"status": _eq("status"), "currency": _product_currency},
        ),
        _Collection(
            "contracts",
            "/contracts",
            "contracts",
            True,
            {
                "subsidiary_id": _eq("subsidiary_id"),
                "status": _eq("status"),
                "customer_id": _eq("customer_id"),
                **_range_filters("start_date"),
                **_range_filters("end_date", open_ended_after=True),
            },
        ),
        _Collection(
            "invoices",
            "/invoices",
            "invoices",
            True,
            {
                "subsidiary_id": _eq("subsidiary_id"),
                "overdue": _overdue,
                "customer_id": _eq("customer_id"),
                "updated.gt": _updated_after,
                "status": _eq("status"),
            },
        ),
        _Collection(
            "credit_memos",
            "/credit-memos",
            "credit_memos",
            True,
            {"subsidiary_id": _eq("subsidiary_id"), "updated.gt": _updated_after},
        ),
        _Collection(
            "invoice_payments",
            "/invoice-payments",
            "payments",
            True,
            {"updated.gt": _updated_after},
            sortable=True,
        ),
        _Collection("fields", "/fields", "fields", False, {"updated.gt": _updated_after}),
        _Collection(
            "journal_entries",
            "/journal-entries",
            "journal_entries",
            True,
            {
                "subsidiary_id": _eq("subsidiary_id"),
                "updated.gt": _updated_after,
                "date.gte": _date_cmp("date", "gte"),
                "date.lte": _date_cmp("date", "lte"),
                "account_ids": _account_ids,
            },
            sortable=True,
        ),
    )
}
_BY_PATH = {c.path: c for c in COLLECTIONS.values()}


class Problem(Exception):
    """An RFC 9457 problem answer (the spec's `Error` schema)."""

    def __init__(
        self, status: int, title: str, detail: str, slug: str, headers: Mapping[str, str] | None = None
    ):
        super().__init__(detail)
        self.status = status
        self.body = {"type": f"https://rillet.io/{slug}", "title": title, "status": status, "detail": detail}
        self.headers = dict(headers or {})


_STANDARD_PROBLEMS = {
    400: ("Bad Request", "bad-request"),
    401: ("Unauthorized", "unauthorized"),
    403: ("Forbidden", "forbidden"),
    404: ("Not Found", "not-found"),
    405: ("Method Not Allowed", "method-not-allowed"),
    409: ("Conflict", "conflict"),
    422: ("Unprocessable Entity", "unprocessable-entity"),
    429: ("Too Many Requests", "too-many-requests"),
    500: ("Internal Server Error", "internal-server-error"),
    502: ("Bad Gateway", "bad-gateway"),
    503: ("Service Unavailable", "service-unavailable"),
    504: ("Gateway Timeout", "gateway-timeout"),
}


def problem(status: int, detail: str, headers: Mapping[str, str] | None = None) -> Problem:
    title, slug = _STANDARD_PROBLEMS.get(status, ("Error", "error"))
    return Problem(status, title, detail, slug, headers)


# -- recorded requests and faults ------------------------------------------------------------------


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: Any
    at: float  # the emulator's clock when the request arrived
    status: int | None = None  # None: answered nothing (dropped)

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None


@dataclass
class _Fault:
    times: int
    method: str | None
    path: str | None
    status: int | None = None
    retry_after: str | None = None
    detail: str | None = None
    stall_seconds: float = 0.0
    drop: bool = False
    after_processing: bool = False

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (self.path is None or self.path == path)


@dataclass
class _Answer:
    status: int
    body: Any = None  # JSON-serialisable, or None for an empty body
    headers: dict[str, str] = dataclass_field(default_factory=dict)
    content_type: str = "application/json"


# -- the emulator ----------------------------------------------------------------------------------


class RilletEmulator:
    """A Rillet API on a free loopback port. Thread-safe; state lives until `stop()`."""

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        *,
        host: str = LOOPBACK,
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.api_key = api_key
        self.clock = clock
        self.page_size_cap: int | None = None
        self.rate_limit_per_minute: int | None = None
        self.rate_limit_sends_retry_after = True
        self._lock = threading.RLock()
        self._store: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in COLLECTIONS}
        self._cursors: dict[str, tuple[str, list[str], int]] = {}  # token -> (path, ids, offset)
        self._idempotency: dict[str, tuple[str, dict[str, Any]]] = {}  # key -> (body digest, entry)
        self._faults: list[_Fault] = []
        self._repeat_cursor_paths: set[str] = set()
        self._accepted: deque[float] = deque()
        self.requests: list[RecordedRequest] = []
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # lifecycle
    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> RilletEmulator:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="rillet-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> RilletEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # state
    def seed(self, **collections: Iterable[Mapping[str, Any]]) -> None:
        """Add (or replace, by `id`) objects shaped as the spec's: `seed(customers=[...], invoices=[...])`."""
        with self._lock:
            for name, objects in collections.items():
                if name not in COLLECTIONS:
                    raise ValueError(f"unknown collection {name!r}: one of {', '.join(COLLECTIONS)}")
                for obj in objects:
                    if "id" not in obj:
                        raise ValueError(f"{name}: every seeded object needs an id: {obj!r}")
                    self._store[name][str(obj["id"])] = copy.deepcopy(dict(obj))

    def remove(self, collection: str, object_id: str) -> None:
        with self._lock:
            self._store[collection].pop(object_id, None)

    def objects(self, collection: str) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(list(self._store[collection].values()))

    @property
    def journal_entries(self) -> list[dict[str, Any]]:
        return self.objects("journal_entries")

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path == path]

    # fault knobs
    def fail_next(
        self,
        status: int,
        times: int = 1,
        *,
        retry_after: str | float | None = None,
        detail: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next `times` matching requests with `status` and a problem body, doing nothing."""
        ra = None if retry_after is None else str(retry_after)
        self._add_fault(_Fault(times, method, path, status=status, retry_after=ra, detail=detail))

    def stall_next(
        self, seconds: float, times: int = 1, *, method: str | None = None, path: str | None = None
    ) -> None:
        """Process the next matching requests (a POST stores its entry), then wait `seconds` before answering."""
        self._add_fault(_Fault(times, method, path, stall_seconds=seconds))

    def drop_next(
        self,
        times: int = 1,
        *,
        after_processing: bool = False,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """Close the connection without answering, before or after processing the request."""
        self._add_fault(_Fault(times, method, path, drop=True, after_processing=after_processing))

    def repeat_cursor(self, path: str, enabled: bool = True) -> None:
        """Make a list endpoint answer the very cursor it was asked with as `next_cursor` (a server bug)."""
        with self._lock:
            (self._repeat_cursor_paths.add if enabled else self._repeat_cursor_paths.discard)(path)

    def reset_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._repeat_cursor_paths.clear()
            self.page_size_cap = None
            self.rate_limit_per_minute = None

    def _add_fault(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # request handling (called from the server's threads)
    def _record(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: Any
    ) -> RecordedRequest:
        with self._lock:
            recorded = RecordedRequest(method, path, query, headers, body, self.clock())
            self.requests.append(recorded)
            return recorded

    def _rate_limited(self) -> Problem | None:
        limit = self.rate_limit_per_minute
        if not limit:
            return None
        with self._lock:
            now = self.clock()
            while self._accepted and now - self._accepted[0] >= 60.0:
                self._accepted.popleft()
            if len(self._accepted) >= limit:
                wait = max(1, math.ceil(self._accepted[0] + 60.0 - now))
                headers = {"Retry-After": str(wait)} if self.rate_limit_sends_retry_after else {}
                return problem(429, f"Rate limit exceeded: {limit} requests per minute", headers)
            self._accepted.append(now)
        return None

    def _check_auth(self, headers: Mapping[str, str], path: str) -> None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip(), self.api_key):
            if path == "/api-key":  # the spec declares an empty 401 there
                raise _EmptyAnswer(401)
            raise problem(401, "The API key is missing, invalid or revoked.")

    def _route(
        self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], body: Any
    ) -> _Answer:
        if path in ("/health", "/api-key"):
            if method != "GET":
                raise problem(405, f"{method} is not allowed on {path}")
            return _Answer(200)
        if path == "/journal-entries" and method == "POST":
            return self._create_journal_entry(body, headers.get("idempotency-key"))
        collection = _BY_PATH.get(path)
        if collection is not None:
            if method != "GET":
                raise problem(405, f"{method} is not allowed on {path}")
            return _Answer(200, self._list(collection, query))
        match = re.fullmatch(r"/journal-entries/([^/]+)", path)
        if match and method == "GET":
            with self._lock:
                entry = self._store["journal_entries"].get(match.group(1))
            if entry is None:
                raise problem(404, f"Journal entry {match.group(1)} not found")
            return _Answer(200, copy.deepcopy(entry))
        raise problem(404, f"No route for {method} {path}")

    # lists
    def _list(self, collection: _Collection, query: Mapping[str, str]) -> dict[str, Any]:
        for name in ("updated.gt",):
            if name in query and name in collection.filters:
                _parse_ts(query[name])
        if not collection.paginated:
            return {collection.key: self._select(collection, query)}
        limit = _parse_limit(query.get("limit"))
        cursor = query.get("cursor")
        with self._lock:
            if cursor:
                if cursor not in self._cursors or self._cursors[cursor][0] != collection.path:
                    raise problem(400, f"Invalid or expired cursor {cursor!r}")
                _, ids, offset = self._cursors[cursor]
            else:
                ids, offset = [obj["id"] for obj in self._select(collection, query)], 0
            size = min(limit, self.page_size_cap or limit)
            page_ids = ids[offset : offset + size]
            store = self._store[collection.name]
            page = [copy.deepcopy(store[i]) for i in page_ids if i in store]
            pagination: dict[str, Any] = {}
            if offset + size < len(ids):
                if cursor and collection.path in self._repeat_cursor_paths:
                    pagination["next_cursor"] = cursor
                else:
                    token = secrets.token_urlsafe(12)
                    self._cursors[token] = (collection.path, ids, offset + size)
                    pagination["next_cursor"] = token
        return {collection.key: page, "pagination": pagination}

    def _select(self, collection: _Collection, query: Mapping[str, str]) -> list[dict[str, Any]]:
        for name in query:
            if name.startswith(("date.", "start_date.", "end_date.")) and name in collection.filters:
                _parse_date(query[name])
        with self._lock:
            objects = list(reversed(self._store[collection.name].values()))  # newest first
        if collection.sortable and query.get("sort_by") == "updated":
            objects.sort(key=lambda o: _parse_ts(o.get("updated_at", DEFAULT_UPDATED_AT)), reverse=True)
        active = {name: fn for name, fn in collection.filters.items() if name in query}
        return [copy.deepcopy(o) for o in objects if all(fn(o, query[n], query) for n, fn in active.items())]

    # journal entries
    def _create_journal_entry(self, body: Any, idempotency_key: str | None) -> _Answer:
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        with self._lock:
            if idempotency_key and idempotency_key in self._idempotency:
                stored_digest, entry = self._idempotency[idempotency_key]
                if stored_digest != digest:
                    raise problem(
                        422,
                        f"Idempotency-Key {idempotency_key!r} was already used with a different request body",
                    )
                return _Answer(200, copy.deepcopy(entry), {"Idempotent-Replayed": "true"})
            violations = self._journal_entry_violations(body)
            if violations:
                raise problem(422, "; ".join(violations))
            entry = self._journal_entry_from(body)
            self._store["journal_entries"][entry["id"]] = entry
            if idempotency_key:
                self._idempotency[idempotency_key] = (digest, entry)
            return _Answer(200, copy.deepcopy(entry))

    def _journal_entry_violations(self, body: Any) -> list[str]:
        if not isinstance(body, dict):
            return ["the body must be a JSON object (CreateJournalEntryRequest)"]
        errors: list[str] = []
        for name in ("name", "date", "currency", "items"):
            if name not in body or body[name] in (None, ""):
                errors.append(f"{name} is required")
        if errors:
            return errors
        if not isinstance(body["name"], str) or not body["name"].strip():
            errors.append("name must be a non-empty string")
        if not _is_date(body["date"]):
            errors.append(f"date must be a date (YYYY-MM-DD), got {body['date']!r}")
        for name in ("reversal_date",):
            if name in body and not _is_date(body[name]):
                errors.append(f"{name} must be a date (YYYY-MM-DD)")
        currency = body["currency"]
        if not (isinstance(currency, str) and re.fullmatch(r"[A-Z]{3}", currency)):
            errors.append(f"currency must be an ISO-4217 code, got {currency!r}")
        subsidiary_id = body.get("subsidiary_id")
        if subsidiary_id is not None and subsidiary_id not in self._store["subsidiaries"]:
            errors.append(f"subsidiary_id {subsidiary_id!r} does not exist")
        items = body["items"]
        if not isinstance(items, list) or len(items) < 2:
            return [*errors, "items must have at least 2 entries"]
        totals = {"DEBIT": Decimal(0), "CREDIT": Decimal(0)}
        accounts = {a["code"]: a for a in self._store["accounts"].values()}
        for i, item in enumerate(items):
            where = f"items[{i}]"
            if not isinstance(item, dict):
                errors.append(f"{where} must be an object")
                continue
            for name in ("amount", "account_code", "side"):
                if name not in item:
                    errors.append(f"{where}.{name} is required")
            side = item.get("side")
            if "side" in item and side not in totals:
                errors.append(f"{where}.side must be DEBIT or CREDIT, got {side!r}")
            code = item.get("account_code")
            if "account_code" in item:
                account = accounts.get(code)
                if account is None:
                    errors.append(f"{where}.account_code {code!r} does not exist in the chart of accounts")
                elif account.get("status") != "ACTIVE":
                    errors.append(f"{where}.account_code {code!r} is inactive")
            if "description" in item and not isinstance(item["description"], str):
                errors.append(f"{where}.description must be a string")
            amount = self._amount_violation(item.get("amount"), currency, f"{where}.amount", errors)
            if amount is not None and side in totals:
                totals[side] += amount
            errors.extend(self._field_violations(item.get("fields"), f"{where}.fields"))
        if not errors and totals["DEBIT"] != totals["CREDIT"]:
            errors.append(
                f"the entry is not balanced: debits {totals['DEBIT']} != credits {totals['CREDIT']}"
            )
        return errors

    @staticmethod
    def _amount_violation(amount: Any, currency: str, where: str, errors: list[str]) -> Decimal | None:
        if amount is None:
            return None
        if not isinstance(amount, dict) or "amount" not in amount or "currency" not in amount:
            errors.append(f"{where} must be {{amount, currency}} (RoundedMonetaryAmount)")
            return None
        text = amount["amount"]
        if not isinstance(text, str):
            errors.append(f"{where}.amount must be a decimal string, got {type(text).__name__}")
            return None
        try:
            value = Decimal(text)
        except InvalidOperation:
            errors.append(f"{where}.amount {text!r} is not a decimal number")
            return None
        if not value.is_finite() or not re.fullmatch(r"-?\d+(\.\d+)?", text):
            errors.append(f"{where}.amount {text!r} is not a plain decimal number")
            return None
        decimals = MINOR_UNITS.get(amount["currency"], 2)
        if value != value.quantize(Decimal(1).scaleb(-decimals)):
            errors.append(f"{where}.amount {text!r} is not rounded to {decimals} decimals")
            return None
        if value < 0:
            errors.append(f"{where}.amount must not be negative (the side gives the direction)")
            return None
        if amount["currency"] != currency:
            errors.append(
                f"{where}.currency {amount['currency']!r} differs from the entry currency {currency!r}"
            )
            return None
        return value

    def _field_violations(self, assignments: Any, where: str) -> list[str]:
        if assignments is None:
            return []
        if not isinstance(assignments, list):
            return [f"{where} must be an array of {{field_id, field_value_id}}"]
        errors = []
        for j, assignment in enumerate(assignments):
            if not isinstance(assignment, dict) or not {"field_id", "field_value_id"} <= assignment.keys():
                errors.append(f"{where}[{j}] must have field_id and field_value_id")
                continue
            field = self._store["fields"].get(assignment["field_id"])
            if field is None:
                errors.append(f"{where}[{j}].field_id {assignment['field_id']!r} does not exist")
                continue
            value = next((v for v in field["values"] if v["id"] == assignment["field_value_id"]), None)
            if value is None:
                errors.append(
                    f"{where}[{j}].field_value_id {assignment['field_value_id']!r} is not a value of {field['name']!r}"
                )
            elif value.get("deactivated"):
                errors.append(
                    f"{where}[{j}]: the value {value['name']!r} of {field['name']!r} is deactivated"
                )
        return errors

    def _journal_entry_from(self, body: dict[str, Any]) -> dict[str, Any]:
        accounts = {a["code"]: a for a in self._store["accounts"].values()}
        subsidiary_id = body.get("subsidiary_id") or next(iter(self._store["subsidiaries"]), None)
        entry: dict[str, Any] = {"id": str(uuid.uuid4())}
        if subsidiary_id:
            entry["subsidiary_id"] = subsidiary_id
        entry.update(name=body["name"], currency=body["currency"])
        if "related_entity" in body:
            entry["related_entity"] = body["related_entity"]
        items = []
        for item in body["items"]:
            line: dict[str, Any] = {"id": str(uuid.uuid4())}
            if "description" in item:
                line["description"] = item["description"]
            line.update(
                amount=dict(item["amount"]),
                account_id=accounts[item["account_code"]]["id"],
                account_code=item["account_code"],
                side=item["side"],
            )
            if item.get("fields"):
                line["fields"] = [dict(f) for f in item["fields"]]
            items.append(line)
        entry["items"] = items
        entry["date"] = body["date"]
        for optional in ("reversal_date", "attachmentUrl", "exchange_rate"):
            if optional in body:
                entry[optional] = body[optional]
        entry["updated_at"] = now_timestamp()
        return entry


class _EmptyAnswer(Exception):
    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


class _Dropped(Exception):
    """Close the connection without an answer."""


def _handler_for(emulator: RilletEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
        server_version = "RilletEmulator/1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def do_PUT(self) -> None:
            self._handle()

        def do_DELETE(self) -> None:
            self._handle()

        def _handle(self) -> None:
            url = urlsplit(self.path)
            raw_query = parse_qs(url.query, keep_blank_values=True)
            query = {k: v[-1] for k, v in raw_query.items()}
            headers = {k.lower(): v for k, v in self.headers.items()}
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body: Any = None
            bad_json = False
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    bad_json = True
            recorded = emulator._record(self.command, url.path, raw_query, headers, body)
            fault = emulator._take_fault(self.command, url.path)
            try:
                if fault and fault.drop and not fault.after_processing:
                    raise _Dropped
                if fault and fault.status:
                    headers_out = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
                    raise problem(fault.status, fault.detail or _fault_detail(fault.status), headers_out)
                limited = emulator._rate_limited()
                if limited:
                    raise limited
                emulator._check_auth(headers, url.path)
                if bad_json:
                    raise problem(400, "The request body is not valid JSON")
                answer = emulator._route(self.command, url.path, query, headers, body)
            except Problem as exc:
                answer = _Answer(exc.status, exc.body, exc.headers, PROBLEM_CONTENT_TYPE)
            except _EmptyAnswer as exc:
                answer = _Answer(exc.status)
            except _Dropped:
                self.close_connection = True
                return
            if fault and fault.drop:  # after processing
                self.close_connection = True
                return
            if fault and fault.stall_seconds:
                time.sleep(fault.stall_seconds)
            recorded.status = answer.status
            self._write(answer)

        def _write(self, answer: _Answer) -> None:
            payload = b"" if answer.body is None else json.dumps(answer.body).encode()
            try:
                self.send_response(answer.status)
                if payload:
                    self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout)
                self.close_connection = True

    return Handler


def _fault_detail(status: int) -> str:
    return {
        401: "The API key is missing, invalid or revoked.",
        429: "Rate limit exceeded: 60 requests per minute",
        500: "An unexpected error occurred",
        503: "The service is temporarily unavailable",
    }.get(status, f"Injected failure {status}")


def _parse_limit(value: str | None) -> int:
    if value is None:
        return 25
    if not re.fullmatch(r"\d+", value) or not 1 <= int(value) <= 100:
        raise problem(400, f"limit must be an integer between 1 and 100, got {value!r}")
    return int(value)


def _parse_ts(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        raise problem(400, f"{value!r} is not an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        raise problem(400, f"{value!r} has no time zone (expected UTC, ending in Z)")
    return parsed


def _is_date(value: Any) -> bool:
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _parse_date(value: str) -> date:
    if not _is_date(value):
        raise problem(400, f"{value!r} is not a date (YYYY-MM-DD)")
    return date.fromisoformat(value)


def now_timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- factories: spec-shaped seed objects -----------------------------------------------------------


def rillet_id(kind: str, key: str) -> str:
    """A deterministic UUID for a seeded object: `rillet_id("customer", "CUST-001")`."""
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{key}"))


def money(cents: int, currency: str = "USD") -> dict[str, str]:
    """A (Rounded)MonetaryAmount from integer cents: {"amount": "1234.50", "currency": "USD"}."""
    return {"amount": cents_to_str(cents), "currency": currency}


def _refs(external_id: str | None, kind: str = "revrec") -> list[dict[str, str]]:
    return [{"type": kind, "id": external_id}] if external_id else []


def _drop_none(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if v is not None}


def account(
    code: str,
    name: str,
    type: str = "INCOME",
    *,
    subtype: str | None = None,
    status: str = "ACTIVE",
    intercompany: bool = False,
    updated_at: str = DEFAULT_UPDATED_AT,
    id: str | None = None,
) -> dict[str, Any]:
    """Account: type ASSET|LIABILITY|EQUITY|EXPENSE|INCOME, status ACTIVE|INACTIVE."""
    return {
        "id": id or rillet_id("account", code),
        "code": code,
        "name": name,
        "type": type,
        "subtype": subtype or type.title(),
        "status": status,
        "intercompany": intercompany,
        "updated_at": updated_at,
    }


def subsidiary(
    trade_name: str, currency: str = "USD", *, timezone: str = "America/New_York", id: str | None = None
) -> dict[str, Any]:
    """Subsidiary: its display name is `trade_name`; `type` is always LEGAL_ENTITY."""
    return {
        "id": id or rillet_id("subsidiary", trade_name),
        "currency": currency,
        "timezone": timezone,
        "trade_name": trade_name,
        "type": "LEGAL_ENTITY",
    }


def customer(
    name: str,
    *,
    external_id: str | None = None,
    payment_terms: int = 30,
    updated_at: str = DEFAULT_UPDATED_AT,
    fields: list[dict[str, str]] | None = None,
    id: str | None = None,
) -> dict[str, Any]:
    return _drop_none(
        {
            "id": id or rillet_id("customer", external_id or name),
            "updated_at": updated_at,
            "name": name,
            "name_on_invoice": name,
            "emails": [],
            "external_references": _refs(external_id),
            "payment_terms": payment_terms,
            "send_invoices_automatically": False,
            "send_payment_reminders": False,
            "fields": fields,
        }
    )


def one_time_price(cents: int, currency: str = "USD") -> dict[str, Any]:
    return {"type": "ONE_TIME", "amount": money(cents, currency)}


def recurring_price(cents: int, currency: str = "USD", interval_months: int = 1) -> dict[str, Any]:
    """FIXED_RECURRING: `cents` per `interval_months` (1..12)."""
    return {"type": "FIXED_RECURRING", "amount": money(cents, currency), "interval_months": interval_months}


def product(
    name: str,
    *,
    account_code: str,
    price: dict[str, Any] | None = None,
    revenue_pattern: str = "EVEN_PERIOD",
    description: str | None = None,
    status: str = "ACTIVE",
    external_id: str | None = None,
    include_in_arr_mrr: bool = True,
    id: str | None = None,
) -> dict[str, Any]:
    """Product: `revenue_pattern` DAILY | EVEN_PERIOD; `account_code` is its revenue account."""
    return {
        "id": id or rillet_id("product", external_id or name),
        "name": name,
        "description": description if description is not None else name,
        "price": price or one_time_price(0),
        "include_in_arr_mrr": include_in_arr_mrr,
        "revenue_pattern": revenue_pattern,
        "external_references": _refs(external_id),
        "status": status,
        "account_code": account_code,
    }


def contract_item(
    product_id: str,
    *,
    price: dict[str, Any],
    total_value_cents: int,
    start_date: date | str,
    end_date: date | str | None = None,
    quantity: int | float = 1,
    revenue_pattern: str = "EVEN_PERIOD",
    status: str = "ACTIVE",
    external_id: str | None = None,
    fields: list[dict[str, str]] | None = None,
    id: str | None = None,
) -> dict[str, Any]:
    """ContractItem: `price` is a Price (one_time_price / recurring_price); `total_value` is the item's
    value over its whole term, in the price's currency; no `end_date` = open-ended."""
    currency = price["amount"]["currency"] if "amount" in price else "USD"
    return _drop_none(
        {
            "id": id
            or rillet_id("contract_item", external_id or f"{product_id}:{start_date}:{total_value_cents}"),
            "product_id": product_id,
            "price": price,
            "quantity": quantity,
            "total_value": money(total_value_cents, currency),
            "revenue_pattern": revenue_pattern,
            "start_date": str(start_date),
            "end_date": None if end_date is None else str(end_date),
            "status": status,
            "fields": fields,
            "external_references": _refs(external_id),
        }
    )


def contract(
    name: str,
    *,
    customer_id: str,
    subsidiary_id: str,
    items: list[dict[str, Any]],
    start_date: date | str,
    end_date: date | str | None = None,
    close_date: date | str | None = None,
    status: str = "ACTIVE",
    invoicing: dict[str, Any] | None = None,
    external_id: str | None = None,
    id: str | None = None,
) -> dict[str, Any]:
    """Contract with its items embedded (as `GET /contracts` answers); `total_value` = sum of items."""
    currency = items[0]["total_value"]["currency"]
    total = sum(_cents(i["total_value"]["amount"]) for i in items)
    start = str(start_date)
    return _drop_none(
        {
            "id": id or rillet_id("contract", external_id or name),
            "customer_id": customer_id,
            "subsidiary_id": subsidiary_id,
            "name": name,
            "items": items,
            "status": status,
            "start_date": start,
            "end_date": None if end_date is None else str(end_date),
            "close_date": str(close_date or start),
            "invoicing": invoicing
            or {"interval": "YEARLY", "payment_terms": 30, "month_day": f"--{start[5:10]}"},
            "total_value": money(total, currency),
            "external_references": _refs(external_id),
        }
    )


def invoice_item(
    product_id: str,
    *,
    amount_cents: int,
    currency: str = "USD",
    description: str = "",
    quantity: int | float = 1,
    service_period: tuple[date | str, date | str] | None = None,
    revenue_pattern: str | None = None,
    account_code: str | None = None,
    discount_cents: int = 0,
    tax_cents: int = 0,
    external_id: str | None = None,
    fields: list[dict[str, str]] | None = None,
    id: str | None = None,
) -> dict[str, Any]:
    """InvoiceItem. Seed convention: `total_amount` is after discount and before tax (`amount_cents`),
    `gross_rate` the unit rate before discount, `taxed_amount` the tax."""
    revenue = _drop_none(
        {
            "period": None
            if service_period is None
            else {"start": str(service_period[0]), "end": str(service_period[1])},
            "pattern": revenue_pattern,
            "account_code": account_code,
        }
    )
    gross_rate = round((amount_cents + discount_cents) / quantity) if quantity else 0
    return _drop_none(
        {
            "id": id
            or rillet_id("invoice_item", external_id or f"{product_id}:{description}:{amount_cents}"),
            "description": description or "Invoice line",
            "revenue": revenue,
            "total_amount": money(amount_cents, currency),
            "total_discount": money(discount_cents, currency),
            "taxed_amount": money(tax_cents, currency),
            "gross_rate": money(gross_rate, currency),
            "quantity": quantity,
            "product_id": product_id,
            "external_references": _refs(external_id),
            "fields": fields,
        }
    )


def invoice(
    invoice_number: str,
    *,
    customer_id: str,
    subsidiary_id: str,
    invoice_date: date | str,
    items: list[dict[str, Any]],
    due_date: date | str | None = None,
    status: str = "UNPAID",
    contract_id: str | None = None,
    amount_paid_cents: int = 0,
    payment_terms: int = 30,
    updated_at: str = DEFAULT_UPDATED_AT,
    external_id: str | None = None,
    id: str | None = None,
) -> dict[str, Any]:
    """Invoice: `net_amount` = sum of item totals, `total` = net + tax, `amount_due` = total - paid."""
    currency = items[0]["total_amount"]["currency"]
    net = sum(_cents(i["total_amount"]["amount"]) for i in items)
    discount = sum(_cents(i["total_discount"]["amount"]) for i in items)
    tax = sum(_cents(i["taxed_amount"]["amount"]) for i in items)
    return _drop_none(
        {
            "id": id or rillet_id("invoice", invoice_number),
            "subsidiary_id": subsidiary_id,
            "invoice_number": invoice_number,
            "customer_id": customer_id,
            "contract_id": contract_id,
            "items": items,
            "due_date": str(due_date or invoice_date),
            "invoice_date": str(invoice_date),
            "status": status,
            "net_amount": money(net, currency),
            "amount_due": money(net + tax - amount_paid_cents, currency),
            "total": money(net + tax, currency),
            "payment_terms": payment_terms,
            "subtotal": money(net + discount, currency),
            "total_discount": money(discount, currency),
            "taxed_amount": money(tax, currency),
            "overdue": False,
            "external_references": _refs(external_id),
            "updated_at": updated_at,
        }
    )


def credit_memo_item(
    product_id: str,
    *,
    amount_cents: int,
    currency: str = "USD",
    description: str = "",
    quantity: int | float = 1,
    service_period: tuple[date | str, date | str] | None = None,
    revenue_pattern: str | None = None,
    tax_cents: int = 0,
    fields: list[dict[str, str]] | None = None,
    id: str | None = None,
) -> dict[str, Any]:
    """CreditMemoItem (amounts positive; a credit memo reduces revenue). Seed convention:
    `net_amount` before tax (`amount_cents`), `total_amount` = net + tax, `taxed_amount` the tax."""
    revenue = _drop_none(
        {
            "period": None
            if service_period is None
            else {"start": str(service_period[0]), "end": str(service_period[1])},
            "pattern": revenue_pattern,
        }
    )
    return _drop_none(
        {
            "id": id or rillet_id("credit_memo_item", f"{product_id}:{description}:{amount_cents}"),
            "description": description or "Credit line",
            "revenue": revenue,
            "total_amount": money(amount_cents + tax_cents, currency),
            "taxed_amount": money(tax_cents, currency),
            "net_amount": money(amount_cents, currency),
            "quantity": quantity,
            "product_id": product_id,
            "fields": fields,
        }
    )


DEFAULT_ADDRESS = {
    "line1": "1 Main St",
    "city": "New York",
    "state": "NY",
    "zip_code": "10001",
    "country": "US",
}


def credit_memo(
    credit_memo_number: str,
    *,
    customer_id: str,
    subsidiary_id: str,
    credit_memo_date: date | str,
    items: list[dict[str, Any]],
    status: str = "UNAPPLIED",
    applications: list[dict[str, Any]] | None = None,
    address: dict[str, str] | None = None,
    updated_at: str = DEFAULT_UPDATED_AT,
    external_id: str | None = None,
    id: str | None = None,
) -> dict[str, Any]:
    """CreditMemo: `net_amount` = sum of item nets, `total` = net + tax; `address` is required by the spec."""
    currency = items[0]["net_amount"]["currency"]
    net = sum(_cents(i["net_amount"]["amount"]) for i in items)
    tax = sum(_cents(i["taxed_amount"]["amount"]) for i in items if "taxed_amount" in i)
    applied = sum(_cents(a["amount"]["amount"]) for a in applications or [])
    return {
        "id": id or rillet_id("credit_memo", credit_memo_number),
        "subsidiary_id": subsidiary_id,
        "credit_memo_number": credit_memo_number,
        "customer_id": customer_id,
        "items": items,
        "credit_memo_date": str(credit_memo_date),
        "address": address or dict(DEFAULT_ADDRESS),
        "status": status,
        "net_amount": money(net, currency),
        "total": money(net + tax, currency),
        "applied_amount": money(applied, currency),
        "remaining_amount": money(net + tax - applied, currency),
        "applications": applications or [],
        "taxed_amount": money(tax, currency),
        "external_references": _refs(external_id),
        "updated_at": updated_at,
    }


def invoice_payment(
    invoice_id: str,
    *,
    amount_cents: int,
    currency: str = "USD",
    date: date | str,
    account_code: str = "1000",
    status: str = "SUCCESSFUL",
    updated_at: str = DEFAULT_UPDATED_AT,
    id: str | None = None,
) -> dict[str, Any]:
    """InvoicePayment: status SUCCESSFUL | FAILED | UNCLEARED; `account_code` is the cash account."""
    return {
        "id": id or rillet_id("invoice_payment", f"{invoice_id}:{date}:{amount_cents}"),
        "status": status,
        "invoice_id": invoice_id,
        "amount": money(amount_cents, currency),
        "date": str(date),
        "account_code": account_code,
        "updated_at": updated_at,
    }


def field(
    name: str,
    values: Iterable[str] | Mapping[str, bool],
    *,
    updated_at: str = DEFAULT_UPDATED_AT,
    id: str | None = None,
) -> dict[str, Any]:
    """Field (a custom dimension) with its values; a mapping gives each value's `deactivated` flag."""
    flags = dict(values) if isinstance(values, Mapping) else dict.fromkeys(values, False)
    return {
        "id": id or rillet_id("field", name),
        "name": name,
        "values": [
            {"id": rillet_id("field_value", f"{name}:{value}"), "name": value, "deactivated": bool(off)}
            for value, off in flags.items()
        ],
        "settings": {"REVENUE": {"mandatory": False, "display": "STANDALONE"}},
        "updated_at": updated_at,
    }


def _cents(amount: str) -> int:
    return int((Decimal(amount) * 100).to_integral_value())


def sample_seed() -> dict[str, list[dict[str, Any]]]:
    """A small organisation: one US subsidiary, a chart of accounts, Class/Location/Department fields,
    two customers, two products, a 12-month subscription contract, its invoice, a credit memo, a payment."""
    us = subsidiary("Acme Inc.", "USD")
    accounts = [
        account("1000", "Operating Cash", "ASSET", subtype="Bank"),
        account("1200", "Accounts Receivable", "ASSET", subtype="Accounts Receivable"),
        account("2400", "Deferred Revenue", "LIABILITY", subtype="Deferred Revenue"),
        account("4000", "Subscription Revenue", "INCOME"),
        account("4100", "Services Revenue", "INCOME"),
        account("4900", "Legacy Revenue", "INCOME", status="INACTIVE"),
    ]
    fields = [
        field("Class", ["CL-SAAS", "CL-SERV"]),
        field("Location", {"LOC-NY": False, "LOC-OLD": True}),
        field("Department", ["DEP-SALES"]),
    ]
    globex = customer("Globex Corporation", external_id="CUST-001", updated_at="2025-01-05T10:00:00Z")
    initech = customer("Initech LLC", external_id="CUST-002", updated_at="2025-02-10T09:30:00Z")
    saas = product(
        "Platform subscription",
        account_code="4000",
        price=recurring_price(100_000, interval_months=1),
        revenue_pattern="EVEN_PERIOD",
        external_id="PROD-SAAS",
    )
    onboarding = product(
        "Onboarding",
        account_code="4100",
        price=one_time_price(500_000),
        revenue_pattern="DAILY",
        external_id="PROD-ONB",
    )
    subscription = contract_item(
        saas["id"],
        price=recurring_price(100_000, interval_months=1),
        quantity=1,
        total_value_cents=1_200_000,
        start_date="2025-01-01",
        end_date="2025-12-31",
        revenue_pattern="EVEN_PERIOD",
        external_id="SO-1001-1",
    )
    setup = contract_item(
        onboarding["id"],
        price=one_time_price(500_000),
        total_value_cents=500_000,
        start_date="2025-01-01",
        end_date="2025-01-31",
        revenue_pattern="DAILY",
        external_id="SO-1001-2",
    )
    deal = contract(
        "Globex 2025",
        customer_id=globex["id"],
        subsidiary_id=us["id"],
        items=[subscription, setup],
        start_date="2025-01-01",
        end_date="2025-12-31",
        external_id="SO-1001",
    )
    inv = invoice(
        "INV-1001",
        customer_id=globex["id"],
        subsidiary_id=us["id"],
        contract_id=deal["id"],
        invoice_date="2025-01-01",
        due_date="2025-01-31",
        status="PARTIALLY_PAID",
        amount_paid_cents=500_000,
        items=[
            invoice_item(
                saas["id"],
                amount_cents=1_200_000,
                description="Platform subscription 2025",
                service_period=("2025-01-01", "2025-12-31"),
                revenue_pattern="EVEN_PERIOD",
            ),
            invoice_item(
                onboarding["id"],
                amount_cents=500_000,
                description="Onboarding",
                service_period=("2025-01-01", "2025-01-31"),
                revenue_pattern="DAILY",
            ),
        ],
        updated_at="2025-01-15T12:00:00Z",
    )
    memo = credit_memo(
        "CM-1001",
        customer_id=globex["id"],
        subsidiary_id=us["id"],
        credit_memo_date="2025-02-01",
        items=[
            credit_memo_item(
                onboarding["id"],
                amount_cents=50_000,
                description="Onboarding goodwill credit",
                service_period=("2025-01-01", "2025-01-31"),
            )
        ],
        updated_at="2025-02-01T08:00:00Z",
    )
    payment = invoice_payment(
        inv["id"], amount_cents=500_000, date="2025-01-20", updated_at="2025-01-20T16:00:00Z"
    )
    return {
        "subsidiaries": [us],
        "accounts": accounts,
        "fields": fields,
        "customers": [globex, initech],
        "products": [saas, onboarding],
        "contracts": [deal],
        "invoices": [inv],
        "credit_memos": [memo],
        "invoice_payments": [payment],
    }


@pytest.fixture
def rillet_emulator() -> Iterator[RilletEmulator]:
    """A running emulator seeded with `sample_seed()`; its key is `DEFAULT_API_KEY`."""
    with RilletEmulator() as emulator:
        emulator.seed(**sample_seed())
        yield emulator
