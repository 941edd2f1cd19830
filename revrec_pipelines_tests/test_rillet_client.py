"""Behaviour of the Rillet client against the stateful emulator: pagination, incremental filters,
retries and backoff, pacing, idempotent posting with a look-up after ambiguous failures, and errors
that say what went wrong without ever showing the API key. Waits go through an injected fake clock."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime

import pytest

from revrec_pipelines.lib.posting_model import JournalEntry, JournalEntryItem, PostingError
from revrec_pipelines.lib.rillet import (
    DimensionField,
    RequestPacer,
    RilletClient,
    RilletError,
    dimension_fields,
    journal_entry_body,
    parse_retry_after,
)
from revrec_pipelines_tests.emulators.rillet_emulator import RilletEmulator, customer, sample_seed

API_KEY = "rk_test_4f9a1c2b7d8e0f3a5b6c"  # distinctive, so a leak is easy to find
US_SUBSIDIARY = sample_seed()["subsidiaries"][0]["id"]


class FakeClock:
    """A monotonic clock that only moves when the client sleeps; the sleeps are recorded."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)


@pytest.fixture
def emulator() -> Iterator[RilletEmulator]:
    with RilletEmulator(api_key=API_KEY) as rillet:
        rillet.seed(**sample_seed())
        yield rillet


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_client(emulator: RilletEmulator, clock: FakeClock, **overrides: object) -> RilletClient:
    options: dict[str, object] = {"timeout": 2.0, "sleep": clock.sleep, "clock": clock}
    options.update(overrides)
    return RilletClient(emulator.base_url, str(options.pop("api_key", API_KEY)), **options)  # type: ignore[arg-type]


@pytest.fixture
def client(emulator: RilletEmulator, clock: FakeClock) -> Iterator[RilletClient]:
    with make_client(emulator, clock) as rillet_client:
        yield rillet_client


def make_entry(
    name: str = "RevRec 2025-01 SUB-US",
    *,
    cents: int = 100_050,
    debit_account: str = "2400",
    credit_account: str = "4000",
    credit_cents: int | None = None,
    class_id: str | None = None,
    location_id: str | None = None,
    subsidiary: str | None = US_SUBSIDIARY,
) -> JournalEntry:
    return JournalEntry(
        entry_key=f"202501|SUB-US|{name}",
        period=202501,
        subsidiary_id="SUB-US",
        target_entity_id=subsidiary,
        name=name,
        entry_date=date(2025, 1, 31),
        currency="USD",
        items=(
            JournalEntryItem(
                debit_account, "DEBIT", cents, "Deferred Revenue 2025-01", class_id, location_id
            ),
            JournalEntryItem(credit_account, "CREDIT", credit_cents or cents, "Revenue 2025-01", class_id),
        ),
    )


# -- requests, pagination, filters -------------------------------------------------------------------


def test_every_request_carries_the_bearer_key_and_api_version(client, emulator):
    list(client.iter_accounts())
    list(client.iter_customers())
    assert emulator.requests
    for request in emulator.requests:
        assert request.headers["authorization"] == f"Bearer {API_KEY}"
        assert request.headers["x-rillet-api-version"] == "4"


def test_follows_cursors_through_several_pages(client, emulator):
    extra = [customer(f"Customer {i}", external_id=f"CUST-X{i}") for i in range(7)]
    emulator.seed(customers=extra)
    emulator.page_size_cap = 3  # 9 customers -> pages of 3, 3, 3

    customers = list(client.iter_customers())

    assert len(customers) == 9
    assert len({c["id"] for c in customers}) == 9
    requests = emulator.requests_to("GET", "/customers")
    assert len(requests) == 3
    assert all(r.param("limit") == "100" for r in requests)
    cursors = [r.param("cursor") for r in requests]
    assert cursors[0] is None and all(cursors[1:]) and len(set(cursors)) == 3


def test_a_repeated_cursor_stops_pagination(client, emulator, caplog):
    emulator.seed(customers=[customer(f"Customer {i}") for i in range(7)])
    emulator.page_size_cap = 2
    emulator.repeat_cursor("/customers")  # the second page points at itself

    with caplog.at_level(logging.WARNING, logger="revrec_pipelines.lib.rillet"):
        customers = list(client.iter_customers())

    assert len(customers) == 4  # two pages, each read once
    assert len({c["id"] for c in customers}) == 4
    assert len(emulator.requests_to("GET", "/customers")) == 2
    assert "repeated the cursor" in caplog.text


def test_updated_gt_asks_only_for_newer_objects(client, emulator):
    newer = list(client.iter_customers(updated_gt="2025-02-01T00:00:00Z"))
    also = list(client.iter_invoices(updated_gt=datetime(2025, 1, 10, tzinfo=UTC)))

    assert [c["name"] for c in newer] == ["Initech LLC"]
    assert [i["invoice_number"] for i in also] == ["INV-1001"]
    assert emulator.requests_to("GET", "/customers")[0].param("updated.gt") == "2025-02-01T00:00:00Z"
    assert emulator.requests_to("GET", "/invoices")[0].param("updated.gt") == "2025-01-10T00:00:00Z"


@pytest.mark.parametrize("path", ["/products", "/contracts", "/subsidiaries"])
def test_updated_gt_is_refused_where_the_spec_lacks_it(client, emulator, path):
    with pytest.raises(ValueError, match="sync it in full"):
        list(client.iter_list(path, updated_gt="2025-01-01T00:00:00Z"))
    assert emulator.requests == []


def test_unpaginated_endpoints_are_read_in_one_request_without_limit(client, emulator):
    assert len(list(client.iter_accounts())) == 6
    assert len(list(client.iter_subsidiaries())) == 1
    assert {f["name"] for f in client.iter_fields()} == {"Class", "Location", "Department"}
    for request in emulator.requests:
        assert "limit" not in request.query and "cursor" not in request.query


def test_contracts_come_with_their_items(client):
    (contract,) = list(client.iter_contracts())
    assert contract["name"] == "Globex 2025"
    assert [item["revenue_pattern"] for item in contract["items"]] == ["EVEN_PERIOD", "DAILY"]
    assert {item["total_value"]["amount"] for item in contract["items"]} == {"12000.00", "5000.00"}


def test_every_listed_object_kind_is_read(client):
    assert len(list(client.iter_products())) == 2
    assert len(list(client.iter_invoices())) == 1
    assert len(list(client.iter_credit_memos())) == 1
    (payment,) = list(client.iter_invoice_payments())
    assert payment["amount"] == {"amount": "5000.00", "currency": "USD"}


def test_an_unknown_list_endpoint_is_refused(client):
    with pytest.raises(ValueError, match="not a known Rillet list endpoint"):
        list(client.iter_list("/vendors"))


# -- retries and backoff -----------------------------------------------------------------------------


def test_429_with_retry_after_seconds_waits_what_rillet_asks(client, emulator, clock):
    emulator.fail_next(429, times=2, retry_after=7)

    assert len(list(client.iter_customers())) == 2

    assert clock.sleeps == [7.0, 7.0]
    assert [r.status for r in emulator.requests_to("GET", "/customers")] == [429, 429, 200]


def test_429_with_retry_after_http_date(client, emulator, clock):
    when = datetime.now(UTC) + timedelta(seconds=30)
    emulator.fail_next(429, retry_after=format_datetime(when, usegmt=True))

    list(client.iter_customers())

    (wait,) = clock.sleeps
    assert 27.0 < wait <= 30.0  # an HTTP date has whole seconds


def test_429_without_retry_after_backs_off_exponentially(client, emulator, clock):
    emulator.fail_next(429, times=3)

    list(client.iter_customers())

    assert clock.sleeps == [1.0, 2.0, 4.0]


def test_backoff_is_capped(emulator, clock):
    emulator.fail_next(503, times=3)
    with make_client(emulator, clock, backoff_base=10.0, backoff_max=15.0) as capped:
        list(capped.iter_customers())
    assert clock.sleeps == [10.0, 15.0, 15.0]


def test_5xx_then_success(client, emulator, clock):
    emulator.fail_next(500, path="/invoices")
    emulator.fail_next(503, path="/invoices")

    assert len(list(client.iter_invoices())) == 1

    assert clock.sleeps == [1.0, 2.0]
    assert [r.status for r in emulator.requests_to("GET", "/invoices")] == [500, 503, 200]


def test_a_read_timeout_on_a_list_is_retried(emulator, clock):
    emulator.stall_next(1.0, path="/invoices")
    with make_client(emulator, clock, timeout=0.3) as impatient:
        assert len(list(impatient.iter_invoices())) == 1
    assert clock.sleeps == [1.0]


def test_gives_up_after_max_retries_with_a_retryable_error(emulator, clock):
    emulator.fail_next(503, times=10, detail="Maintenance window")
    with make_client(emulator, clock, max_retries=2) as client, pytest.raises(RilletError) as raised:
        list(client.iter_customers())

    error = raised.value
    assert error.status == 503 and error.retryable and not error.ambiguous
    assert "GET /customers" in str(error) and "503" in str(error) and "Maintenance window" in str(error)
    assert len(emulator.requests_to("GET", "/customers")) == 3


# -- errors ------------------------------------------------------------------------------------------


def test_a_wrong_key_is_a_clear_401_error_and_is_not_retried(emulator, clock):
    with make_client(emulator, clock, api_key="rk_test_wrong_0000000000") as client:
        with pytest.raises(RilletError) as raised:
            list(client.iter_customers())
        with pytest.raises(RilletError) as on_key_check:
            client.verify_api_key()

    error = raised.value
    assert error.status == 401 and not error.retryable
    assert str(error).startswith("Rillet GET /customers failed: HTTP 401 Unauthorized")
    assert "The API key is missing, invalid or revoked." in str(error)
    assert "RILLET_API_KEY" in str(error)
    assert on_key_check.value.status == 401
    assert len(emulator.requests) == 2 and clock.sleeps == []


def test_the_right_key_passes_the_key_check(client):
    client.verify_api_key()


def test_a_422_problem_body_becomes_an_error_with_its_detail(client, emulator):
    unbalanced = make_entry(cents=100_000, credit_cents=99_999)

    with pytest.raises(RilletError) as raised:
        client.post_journal_entry(unbalanced, "revrec:202501|SUB-US|0")

    error = raised.value
    assert error.status == 422 and error.title == "Unprocessable Entity"
    assert "not balanced" in error.detail
    assert "POST /journal-entries" in str(error) and "not balanced" in str(error)
    assert not error.retryable and not error.ambiguous
    assert isinstance(error, PostingError)
    assert len(emulator.requests_to("POST", "/journal-entries")) == 1
    assert emulator.journal_entries == []


def test_an_unknown_account_code_is_named_in_the_error(client):
    with pytest.raises(RilletError, match="'9999' does not exist"):
        client.post_journal_entry(make_entry(credit_account="9999"), "k-unknown-account")


def test_the_api_key_never_appears_in_errors_or_logs(emulator, clock, caplog):
    emulator.fail_next(400, detail=f"Token {API_KEY} is malformed")  # a server that echoes the key
    emulator.fail_next(503, times=10, detail=f"upstream saw Bearer {API_KEY}")
    errors: list[BaseException] = []
    with caplog.at_level(logging.DEBUG), make_client(emulator, clock, max_retries=1, timeout=0.2) as client:
        for call in (
            lambda: list(client.iter_customers()),
            lambda: list(client.iter_invoices()),
        ):
            with pytest.raises(RilletError) as raised:
                call()
            errors.append(raised.value)
        emulator.reset_faults()
        emulator.stall_next(0.5, times=10)
        with pytest.raises(RilletError) as timed_out:
            list(client.iter_products())
        errors.append(timed_out.value)
        assert API_KEY not in repr(client)
    with (
        make_client(emulator, clock, api_key=API_KEY + "x") as wrong,
        pytest.raises(RilletError) as unauthorized,
    ):
        list(wrong.iter_accounts())
    errors.append(unauthorized.value)

    assert "[redacted]" in str(errors[0])
    for error in errors:
        shown = " ".join(
            [str(error), repr(error), error.detail, *map(str, error.args), *traceback.format_exception(error)]
        )
        assert API_KEY not in shown
    assert API_KEY not in caplog.text


# -- posting -----------------------------------------------------------------------------------------


def test_posts_the_spec_body_with_amounts_as_two_decimal_strings(client, emulator):
    entry = JournalEntry(
        entry_key="202501|SUB-US|0",
        period=202501,
        subsidiary_id="SUB-US",
        target_entity_id=US_SUBSIDIARY,
        name="RevRec 2025-01 SUB-US",
        entry_date=date(2025, 1, 31),
        currency="USD",
        items=(
            JournalEntryItem("2400", "DEBIT", 123_456_789, "Deferred Revenue 2025-01"),
            JournalEntryItem("4000", "CREDIT", 123_456_700, "Revenue 2025-01"),
            JournalEntryItem("4000", "CREDIT", 5, "Revenue 2025-01"),
            JournalEntryItem("4100", "CREDIT", 84, "Services Revenue 2025-01"),
        ),
    )

    entry_id = client.post_journal_entry(entry, "revrec:202501|SUB-US|0")

    (request,) = emulator.requests_to("POST", "/journal-entries")
    assert request.headers["idempotency-key"] == "revrec:202501|SUB-US|0"
    assert request.body == {
        "name": "RevRec 2025-01 SUB-US",
        "date": "2025-01-31",
        "currency": "USD",
        "items": [
            {
                "account_code": "2400",
                "side": "DEBIT",
                "amount": {"amount": "1234567.89", "currency": "USD"},
                "description": "Deferred Revenue 2025-01",
            },
            {
                "account_code": "4000",
                "side": "CREDIT",
                "amount": {"amount": "1234567.00", "currency": "USD"},
                "description": "Revenue 2025-01",
            },
            {
                "account_code": "4000",
                "side": "CREDIT",
                "amount": {"amount": "0.05", "currency": "USD"},
                "description": "Revenue 2025-01",
            },
            {
                "account_code": "4100",
                "side": "CREDIT",
                "amount": {"amount": "0.84", "currency": "USD"},
                "description": "Services Revenue 2025-01",
            },
        ],
        "subsidiary_id": US_SUBSIDIARY,
    }
    (stored,) = emulator.journal_entries
    assert stored["id"] == entry_id and stored["subsidiary_id"] == US_SUBSIDIARY


def test_dimensions_are_posted_as_rillet_field_assignments(client, emulator):
    dimensions = dimension_fields(client.iter_fields())
    assert set(dimensions) == {"Class", "Location", "Department"}
    assert "LOC-OLD" not in dimensions["Location"].value_ids  # deactivated in Rillet

    client.post_journal_entry(make_entry(class_id="CL-SAAS", location_id="LOC-NY"), "k-dims", dimensions)

    (stored,) = emulator.journal_entries
    debit, credit = stored["items"]
    assert debit["fields"] == [
        {
            "field_id": dimensions["Class"].field_id,
            "field_value_id": dimensions["Class"].value_ids["CL-SAAS"],
        },
        {
            "field_id": dimensions["Location"].field_id,
            "field_value_id": dimensions["Location"].value_ids["LOC-NY"],
        },
    ]
    assert credit["fields"] == [debit["fields"][0]]


def test_a_dimension_value_missing_in_rillet_fails_before_sending(client, emulator):
    dimensions = {"Class": DimensionField(field_id="f-class", value_ids={"CL-SAAS": "v-1"})}
    with pytest.raises(PostingError, match="Class 'CL-NEW'"):
        client.post_journal_entry(make_entry(class_id="CL-NEW"), "k-missing-dim", dimensions)
    assert emulator.requests == []


def test_the_top_level_entity_sends_no_subsidiary_id():
    body = journal_entry_body(make_entry(subsidiary=None))
    assert "subsidiary_id" not in body
    assert all("fields" not in item for item in body["items"])


def test_idempotency_key_replay_returns_the_original_entry(client, emulator):
    entry = make_entry()
    first = client.post_journal_entry(entry, "revrec:202501|SUB-US|0")
    second = client.post_journal_entry(entry, "revrec:202501|SUB-US|0")

    assert first == second
    assert len(emulator.journal_entries) == 1
    assert len(emulator.requests_to("POST", "/journal-entries")) == 2


def test_an_idempotency_key_reused_for_another_body_is_refused(client, emulator):
    client.post_journal_entry(make_entry(cents=100), "revrec:reused")
    with pytest.raises(RilletError, match="already used with a different request body"):
        client.post_journal_entry(make_entry(cents=200), "revrec:reused")
    assert len(emulator.journal_entries) == 1


def test_a_timeout_after_the_entry_was_stored_finds_it_instead_of_posting_again(emulator, clock):
    emulator.stall_next(1.5, method="POST", path="/journal-entries")  # stores, then answers too late
    with make_client(emulator, clock, timeout=0.5) as client:
        entry_id = client.post_journal_entry(make_entry(), "revrec:202501|SUB-US|0")

    (stored,) = emulator.journal_entries
    assert entry_id == stored["id"]
    assert len(emulator.requests_to("POST", "/journal-entries")) == 1  # looked up, not re-sent
    (lookup,) = emulator.requests_to("GET", "/journal-entries")
    assert (lookup.param("date.gte"), lookup.param("date.lte")) == ("2025-01-31", "2025-01-31")
    assert lookup.param("subsidiary_id") == US_SUBSIDIARY
    assert clock.sleeps == [1.0]


def test_a_dropped_connection_after_storing_is_found_by_the_look_up(client, emulator):
    emulator.drop_next(after_processing=True, method="POST")

    entry_id = client.post_journal_entry(make_entry(), "revrec:202501|SUB-US|0")

    assert [e["id"] for e in emulator.journal_entries] == [entry_id]
    assert len(emulator.requests_to("POST", "/journal-entries")) == 1


def test_a_dropped_connection_before_storing_is_re_sent_with_the_same_key(client, emulator):
    emulator.drop_next(method="POST")

    entry_id = client.post_journal_entry(make_entry(), "revrec:202501|SUB-US|0")

    assert [e["id"] for e in emulator.journal_entries] == [entry_id]
    posts = emulator.requests_to("POST", "/journal-entries")
    assert [p.headers["idempotency-key"] for p in posts] == ["revrec:202501|SUB-US|0"] * 2
    assert len(emulator.requests_to("GET", "/journal-entries")) == 1  # looked first, found nothing


def test_a_500_on_post_is_ambiguous_so_the_client_looks_before_re_sending(client, emulator):
    emulator.fail_next(500, method="POST")

    client.post_journal_entry(make_entry(), "revrec:202501|SUB-US|0")

    assert len(emulator.journal_entries) == 1
    assert [r.method for r in emulator.requests if r.path == "/journal-entries"] == ["POST", "GET", "POST"]


def test_a_429_on_post_is_retried_without_a_look_up(client, emulator, clock):
    emulator.fail_next(429, method="POST", retry_after=3)

    client.post_journal_entry(make_entry(), "revrec:202501|SUB-US|0")

    assert [r.method for r in emulator.requests if r.path == "/journal-entries"] == ["POST", "POST"]
    assert clock.sleeps == [3.0]


def test_a_post_that_keeps_failing_ambiguously_says_so(emulator, clock):
    emulator.drop_next(times=10, method="POST")
    with make_client(emulator, clock, max_retries=2) as client, pytest.raises(RilletError) as raised:
        client.post_journal_entry(make_entry(), "revrec:202501|SUB-US|0")

    assert raised.value.ambiguous and raised.value.retryable
    assert "may have reached Rillet" in str(raised.value)
    assert len(emulator.requests_to("POST", "/journal-entries")) == 3
    assert emulator.journal_entries == []


def test_find_journal_entry_matches_name_and_date(client):
    entry_id = client.post_journal_entry(make_entry(), "k-find")

    assert client.find_journal_entry("RevRec 2025-01 SUB-US", date(2025, 1, 31)) == entry_id
    assert client.find_journal_entry("RevRec 2025-01 SUB-US", "2025-01-31") == entry_id
    assert client.find_journal_entry("RevRec 2025-01 SUB-US adjustment 1", date(2025, 1, 31)) is None
    assert client.find_journal_entry("RevRec 2025-01 SUB-US", date(2025, 2, 28)) is None


# -- pacing ------------------------------------------------------------------------------------------


def test_pacing_keeps_the_request_rate_under_the_limit(emulator, clock):
    emulator.clock = clock  # the emulator's own rate limiter counts on the same fake time
    emulator.rate_limit_per_minute = 5
    emulator.seed(customers=[customer(f"Customer {i}") for i in range(10)])
    emulator.page_size_cap = 1  # 12 customers -> 12 requests
    start = clock.now

    with make_client(emulator, clock, max_requests_per_minute=5) as client:
        assert len(list(client.iter_customers())) == 12

    requests = emulator.requests_to("GET", "/customers")
    assert [r.status for r in requests] == [200] * 12  # never refused
    times = [r.at for r in requests]
    assert all(later - earlier >= 60.0 for earlier, later in zip(times, times[5:], strict=False))
    assert clock.now - start >= 120.0  # 12 requests at 5 a minute span two full windows


def test_without_pacing_the_emulator_refuses_and_the_client_recovers(emulator, clock):
    emulator.clock = clock
    emulator.rate_limit_per_minute = 5
    emulator.seed(customers=[customer(f"Customer {i}") for i in range(10)])
    emulator.page_size_cap = 1

    with make_client(emulator, clock, max_requests_per_minute=1_000) as client:
        assert len(list(client.iter_customers())) == 12

    statuses = [r.status for r in emulator.requests_to("GET", "/customers")]
    assert 429 in statuses and statuses.count(200) == 12
    assert all(wait >= 1.0 for wait in clock.sleeps)  # the Retry-After of each 429


def test_request_pacer_allows_a_burst_then_waits_for_the_window():
    clock = FakeClock()
    pacer = RequestPacer(3, window=60.0, clock=clock, sleep=clock.sleep)
    sent = []
    for _ in range(7):
        pacer.wait()
        sent.append(clock.now - 1_000.0)
    assert sent == [0.0, 0.0, 0.0, 60.0, 60.0, 60.0, 120.0]


# -- small pieces ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        (" 2 ", 2.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past: no wait
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(header, expected):
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after(header, now=now) == expected


def test_the_client_needs_a_key():
    with pytest.raises(ValueError, match="RILLET_API_KEY"):
        RilletClient("http://127.0.0.1:9", "")
