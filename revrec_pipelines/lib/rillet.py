"""Rillet REST API client (SPEC §3 and §5): plain Python over httpx, no Dagster objects.

Everything here follows the OpenAPI document in `shared/reference/rillet/openapi.json` (API version 4):

- `Authorization: Bearer <key>` and `X-Rillet-API-Version: 4` on every request.
- Cursor pagination on the endpoints that declare `limit` / `cursor`: `limit=100`, then the
  `pagination.next_cursor` of each page until it is missing, or until the server repeats a cursor
  (a server bug that would otherwise loop for ever). `/accounts`, `/subsidiaries` and `/fields` are
  not paginated and answer everything in one body.
- Incremental sync with `updated.gt`, sent only where the endpoint declares it (see `ENDPOINTS`);
  the others are synced in full.
- About 60 requests per rolling minute, HTTP 429 beyond: the client paces itself with a sliding
  window of its own send times, and retries 429, 5xx and transport errors with exponential backoff,
  honouring `Retry-After` (seconds or an HTTP date).
- Errors are RFC 9457 problem bodies (`type`, `title`, `status`, `detail`); they become `RilletError`.
- `POST /journal-entries` carries an `Idempotency-Key`. After an ambiguous failure (the request may
  have reached Rillet: a timeout or a dropped connection after sending, a 5xx) the client looks the
  entry up by name and date before sending again, so a retry never double-posts.
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from revrec_pipelines.lib.posting_model import JournalEntry, JournalEntryItem, PostingError

log = logging.getLogger(__name__)

API_VERSION = "4"
PAGE_LIMIT = 100  # the spec's PageLimit maximum
RATE_WINDOW_SECONDS = 60.0
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class ListEndpoint:
    """A list endpoint as the OpenAPI document declares it."""

    path: str
    collection: str  # the key of the array in the 200 body
    paginated: bool  # declares `limit` and `cursor`
    incremental: bool  # declares `updated.gt`


ENDPOINTS: dict[str, ListEndpoint] = {
    e.path: e
    for e in (
        ListEndpoint("/accounts", "accounts", paginated=False, incremental=True),
        ListEndpoint("/subsidiaries", "subsidiaries", paginated=False, incremental=False),
        ListEndpoint("/customers", "customers", paginated=True, incremental=True),
        ListEndpoint("/products", "products", paginated=True, incremental=False),
        ListEndpoint("/contracts", "contracts", paginated=True, incremental=False),
        ListEndpoint("/invoices", "invoices", paginated=True, incremental=True),
        ListEndpoint("/credit-memos", "credit_memos", paginated=True, incremental=True),
        ListEndpoint("/invoice-payments", "payments", paginated=True, incremental=True),
        ListEndpoint("/fields", "fields", paginated=False, incremental=True),
        ListEndpoint("/journal-entries", "journal_entries", paginated=True, incremental=True),
    )
}

# Posting dimensions (SPEC §5, REVREC_POSTING_DIMENSIONS) and the JournalEntryItem attribute holding each.
DIMENSION_ATTRIBUTES = {"Class": "class_id", "Location": "location_id", "Department": "department_id"}


class RilletError(PostingError):
    """Rillet refused or failed a request. The message names method, endpoint, status, title and detail.

    `retryable`: a later attempt may succeed (429, 5xx, transport). `ambiguous`: the request may have
    taken effect (timeout or dropped connection after sending, 5xx on a write): look before re-sending.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        endpoint: str,
        status: int | None = None,
        title: str = "",
        detail: str = "",
        problem_type: str = "",
        retry_after: float | None = None,
        retryable: bool = False,
        ambiguous: bool = False,
    ):
        super().__init__(message, detail=detail, retryable=retryable, ambiguous=ambiguous)
        self.method = method
        self.endpoint = endpoint
        self.status = status
        self.title = title
        self.problem_type = problem_type
        self.retry_after = retry_after


@dataclass(frozen=True)
class DimensionField:
    """A posting dimension as a Rillet custom field (`GET /fields`).

    `value_ids` maps our dimension value (a Class_Id, Location_Id or Department_Id) to the id of the
    field value that stands for it in Rillet.
    """

    field_id: str
    value_ids: Mapping[str, str]


def dimension_fields(
    fields: Iterable[Mapping[str, Any]],
    names: Mapping[str, str] | None = None,
) -> dict[str, DimensionField]:
    """Resolve posting dimensions to Rillet fields from `GET /fields` objects, by name.

    `names` maps a dimension ("Class", "Location", "Department") to the Rillet field's name (default:
    the same word, compared case-insensitively). A field value stands for our value of the same name;
    deactivated values are left out, since Rillet refuses them on new entries. Dimensions with no
    such field are left out, so they are not posted.
    """
    names = names or {d: d for d in DIMENSION_ATTRIBUTES}
    by_name = {str(f["name"]).strip().casefold(): f for f in fields}
    resolved: dict[str, DimensionField] = {}
    for dimension, field_name in names.items():
        field = by_name.get(field_name.strip().casefold())
        if field is None:
            continue
        values = {str(v["name"]).strip(): str(v["id"]) for v in field["values"] if not v.get("deactivated")}
        resolved[dimension] = DimensionField(field_id=str(field["id"]), value_ids=values)
    return resolved


def journal_entry_body(
    entry: JournalEntry,
    field_assignments: Mapping[str, DimensionField] | None = None,
) -> dict[str, Any]:
    """The `CreateJournalEntryRequest` body for an entry: amounts as strings with exactly 2 decimals."""
    body: dict[str, Any] = {
        "name": entry.name,
        "date": entry.entry_date.isoformat(),
        "currency": entry.currency,
        "items": [_journal_item(entry, item, field_assignments or {}) for item in entry.items],
    }
    if entry.target_entity_id:
        body["subsidiary_id"] = entry.target_entity_id
    return body


def _journal_item(
    entry: JournalEntry, item: JournalEntryItem, field_assignments: Mapping[str, DimensionField]
) -> dict[str, Any]:
    line: dict[str, Any] = {
        "account_code": item.account_id,
        "side": item.side,
        "amount": {"amount": item.amount, "currency": entry.currency},
    }
    if item.description:
        line["description"] = item.description
    assignments = []
    for dimension, field in field_assignments.items():
        value = getattr(item, DIMENSION_ATTRIBUTES[dimension])
        if value is None:
            continue
        value_id = field.value_ids.get(value)
        if value_id is None:
            raise PostingError(
                f"{entry.name}: {dimension} {value!r} (account {item.account_id}) has no active value "
                f"in the Rillet field {field.field_id}; add it in Rillet or map it",
                detail=f"{dimension} {value!r} is not a value of the Rillet field",
            )
        assignments.append({"field_id": field.field_id, "field_value_id": value_id})
    if assignments:
        line["fields"] = assignments
    return line


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delay-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class RequestPacer:
    """At most `max_requests` sends in any rolling `window` seconds: a sliding log of send times.

    Unlike a token bucket refilled at the same rate, a sliding log never lets a burst plus the refill
    exceed the limit within one window, which is what a rolling-window server limit counts.
    """

    def __init__(
        self,
        max_requests: int,
        window: float = RATE_WINDOW_SECONDS,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if max_requests < 1:
            raise ValueError("max_requests must be at least 1")
        self.max_requests = max_requests
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    def wait(self) -> None:
        """Block until one more request fits in the window, and count it."""
        with self._lock:
            now = self._forget_old(self._clock())
            while len(self._sent) >= self.max_requests:
                self._sleep(self._sent[0] + self.window - now)
                now = self._forget_old(self._clock())
            self._sent.append(now)

    def _forget_old(self, now: float) -> float:
        while self._sent and now - self._sent[0] >= self.window:
            self._sent.popleft()
        return now


class RilletClient:
    """A small synchronous client for the endpoints revrec-pipelines uses. Use it as a context manager."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeout: float = 30.0,
        max_requests_per_minute: int = 55,
        max_retries: int = 5,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        *,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.BaseTransport | None = None,
    ):
        if not api_key:
            raise ValueError("a Rillet API key is required (RILLET_API_KEY)")
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._api_key = api_key
        self._sleep = sleep
        self._pacer = RequestPacer(max_requests_per_minute, clock=clock, sleep=sleep)
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={
                "Authorization": f"Bearer {api_key}",
                "X-Rillet-API-Version": API_VERSION,
                "Accept": "application/json",
                "User-Agent": "revrec-pipelines",
            },
            timeout=httpx.Timeout(timeout),
            transport=transport,
        )

    def __repr__(self) -> str:  # never the key
        return f"RilletClient(base_url={self.base_url!r})"

    def __enter__(self) -> RilletClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- reading ---------------------------------------------------------------------------------

    def iter_list(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        updated_gt: str | datetime | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every object of a list endpoint in `ENDPOINTS`, following cursors page by page.

        `updated_gt` (an ISO 8601 UTC timestamp ending in Z, or an aware datetime) becomes the
        `updated.gt` filter; it is refused on endpoints that do not declare it, which sync in full.
        `params` are further filters the endpoint declares (e.g. `subsidiary_id`, `date.gte`).
        """
        endpoint = ENDPOINTS.get(path)
        if endpoint is None:
            raise ValueError(f"{path} is not a known Rillet list endpoint: {', '.join(ENDPOINTS)}")
        query = dict(params or {})
        if updated_gt is not None:
            if not endpoint.incremental:
                raise ValueError(f"Rillet {path} has no updated.gt filter: sync it in full")
            query["updated.gt"] = _timestamp(updated_gt)
        if not endpoint.paginated:
            yield from self._collection(endpoint, self._get_json(path, query))
            return
        query["limit"] = PAGE_LIMIT
        requested: set[str] = set()
        while True:
            body = self._get_json(path, query)
            yield from self._collection(endpoint, body)
            cursor = (body.get("pagination") or {}).get("next_cursor")
            if not cursor:
                return
            if cursor in requested:
                log.warning("Rillet GET %s repeated the cursor %r: stopping pagination", path, cursor)
                return
            requested.add(cursor)
            query["cursor"] = cursor

    def iter_accounts(self, updated_gt: str | datetime | None = None) -> Iterator[dict[str, Any]]:
        return self.iter_list("/accounts", updated_gt=updated_gt)

    def iter_subsidiaries(self) -> Iterator[dict[str, Any]]:
        return self.iter_list("/subsidiaries")

    def iter_customers(self, updated_gt: str | datetime | None = None) -> Iterator[dict[str, Any]]:
        return self.iter_list("/customers", updated_gt=updated_gt)

    def iter_products(self) -> Iterator[dict[str, Any]]:
        return self.iter_list("/products")

    def iter_contracts(self) -> Iterator[dict[str, Any]]:
        """Contracts with their `items` embedded (the list's Contract objects carry them)."""
        return self.iter_list("/contracts")

    def iter_invoices(self, updated_gt: str | datetime | None = None) -> Iterator[dict[str, Any]]:
        return self.iter_list("/invoices", updated_gt=updated_gt)

    def iter_credit_memos(self, updated_gt: str | datetime | None = None) -> Iterator[dict[str, Any]]:
        return self.iter_list("/credit-memos", updated_gt=updated_gt)

    def iter_invoice_payments(self, updated_gt: str | datetime | None = None) -> Iterator[dict[str, Any]]:
        return self.iter_list("/invoice-payments", updated_gt=updated_gt)

    def iter_fields(self, updated_gt: str | datetime | None = None) -> Iterator[dict[str, Any]]:
        """Custom fields (dimensions) with their values."""
        return self.iter_list("/fields", updated_gt=updated_gt)

    def iter_journal_entries(
        self,
        *,
        date_from: date | str | None = None,
        date_to: date | str | None = None,
        subsidiary_id: str | None = None,
        updated_gt: str | datetime | None = None,
    ) -> Iterator[dict[str, Any]]:
        params: dict[str, Any] = {}
        if date_from is not None:
            params["date.gte"] = str(date_from)
        if date_to is not None:
            params["date.lte"] = str(date_to)
        if subsidiary_id:
            params["subsidiary_id"] = subsidiary_id
        return self.iter_list("/journal-entries", params, updated_gt=updated_gt)

    def verify_api_key(self) -> None:
        """`GET /api-key`: returns if the key is recognised, raises RilletError (401) if not."""
        self._request("GET", "/api-key")

    # -- posting ---------------------------------------------------------------------------------

    def find_journal_entry(
        self, name: str, entry_date: date | str, *, subsidiary_id: str | None = None
    ) -> str | None:
        """The id of the journal entry with this exact name on this date, or None."""
        day = str(entry_date)
        matches = [
            e["id"]
            for e in self.iter_journal_entries(date_from=day, date_to=day, subsidiary_id=subsidiary_id)
            if e.get("name") == name and e.get("date") == day
        ]
        if len(matches) > 1:
            log.warning(
                "Rillet has %d journal entries named %r on %s: using %s", len(matches), name, day, matches[0]
            )
        return matches[0] if matches else None

    def post_journal_entry(
        self,
        entry: JournalEntry,
        idempotency_key: str,
        field_assignments: Mapping[str, DimensionField] | None = None,
    ) -> str:
        """Create the entry in Rillet and return its id; never twice for one entry.

        Retries send the same `Idempotency-Key`, and once an attempt may have reached Rillet the
        entry is looked up by name and date before anything is sent again. A final failure after an
        ambiguous attempt is raised with `ambiguous=True`.
        """
        body = journal_entry_body(entry, field_assignments)
        headers = {"Idempotency-Key": idempotency_key}
        maybe_created = False
        try:
            for attempt in self._retrying():
                with attempt:
                    if maybe_created:
                        existing = self.find_journal_entry(
                            entry.name, entry.entry_date, subsidiary_id=entry.target_entity_id
                        )
                        if existing:
                            log.info("Rillet journal entry %r already exists as %s", entry.name, existing)
                            return existing
                    try:
                        response = self._send("POST", "/journal-entries", json=body, headers=headers)
                    except RilletError as exc:
                        maybe_created = maybe_created or exc.ambiguous
                        raise
                    return str(self._json(response, "POST", "/journal-entries")["id"])
        except RilletError as exc:
            exc.ambiguous = exc.ambiguous or maybe_created
            raise
        raise AssertionError("unreachable: tenacity re-raises the last error")

    # -- transport -------------------------------------------------------------------------------

    def _collection(self, endpoint: ListEndpoint, body: dict[str, Any]) -> list[dict[str, Any]]:
        items = body.get(endpoint.collection)
        if not isinstance(items, list):
            raise RilletError(
                f"Rillet GET {endpoint.path} answered without the {endpoint.collection!r} array",
                method="GET",
                endpoint=endpoint.path,
                status=200,
                detail=f"missing {endpoint.collection!r} in the response body",
            )
        return items

    def _get_json(self, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
        return self._json(self._request("GET", path, params=params), "GET", path)

    def _json(self, response: httpx.Response, method: str, path: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise RilletError(
                f"Rillet {method} {path} answered HTTP {response.status_code} without a JSON object",
                method=method,
                endpoint=path,
                status=response.status_code,
                detail=self._redact(response.text[:200]),
            )
        return body

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for attempt in self._retrying():
            with attempt:
                return self._send(method, path, **kwargs)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _retrying(self) -> Retrying:
        return Retrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(lambda e: isinstance(e, RilletError) and e.retryable),
            sleep=self._sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )

    def _wait(self, state: RetryCallState) -> float:
        """`Retry-After` when Rillet sent one, else exponential backoff capped at backoff_max."""
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RilletError) and error.retry_after is not None:
            return error.retry_after
        return min(self.backoff_max, self.backoff_base * 2 ** (state.attempt_number - 1))

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("%s; retry %d/%d in %.1f s", error, state.attempt_number, self.max_retries, wait)

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One paced request; a non-2xx answer or a transport failure becomes a RilletError."""
        self._pacer.wait()
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._transport_error(method, path, exc) from exc
        if response.is_success:
            return response
        raise self._http_error(method, path, response)

    def _transport_error(self, method: str, path: str, exc: httpx.TransportError) -> RilletError:
        not_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
        retryable = isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError)
        ambiguous = retryable and method != "GET" and not not_sent
        what = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed in transport"
        detail = self._redact(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        note = " (the request may have reached Rillet)" if ambiguous else ""
        return RilletError(
            f"Rillet {method} {path} {what}: {detail}{note}",
            method=method,
            endpoint=path,
            detail=detail,
            retryable=retryable,
            ambiguous=ambiguous,
        )

    def _http_error(self, method: str, path: str, response: httpx.Response) -> RilletError:
        status = response.status_code
        try:
            problem = response.json()
        except ValueError:
            problem = None
        if not isinstance(problem, dict):
            problem = {"detail": response.text[:200]}
        title = self._redact(str(problem.get("title") or response.reason_phrase or ""))
        detail = self._redact(str(problem.get("detail") or ""))
        retryable = status in RETRYABLE_STATUSES
        message = f"Rillet {method} {path} failed: HTTP {status} {title}".rstrip()
        if detail:
            message += f": {detail}"
        if status == 401:
            message += " (check RILLET_API_KEY and that it belongs to this environment)"
        return RilletError(
            message,
            method=method,
            endpoint=path,
            status=status,
            title=title,
            detail=detail or title,
            problem_type=str(problem.get("type") or ""),
            retry_after=parse_retry_after(response.headers.get("Retry-After")) if retryable else None,
            retryable=retryable,
            # a write answered 5xx may have been committed before the failure
            ambiguous=retryable and status >= 500 and method != "GET",
        )

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "[redacted]")


def _timestamp(value: str | datetime) -> str:
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError("updated_gt must be timezone-aware (UTC)")
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
