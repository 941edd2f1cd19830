"""IntacctClient against the stateful gateway emulator: every fault is made on the wire, never in the client."""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from xml.etree.ElementTree import Element, SubElement, fromstring, tostring

import httpx
import pytest

from revrec_pipelines.lib.intacct import IntacctClient, IntacctError
from revrec_pipelines.lib.posting_model import JournalEntry, JournalEntryItem, PostingError
from revrec_pipelines_tests.emulators.intacct_gateway import (
    DUPLICATE_ERRORNO,
    INITIAL_PATH,
    SESSION_PATH,
    IntacctGatewayEmulator,
)

ALL_DIMENSIONS = {"Class", "Location", "Department"}
CONTROL_ID = "revrec-202501-SUB-US-0"


@pytest.fixture
def gateway() -> Iterator[IntacctGatewayEmulator]:
    with IntacctGatewayEmulator() as emulator:
        yield emulator


def make_client(gateway: IntacctGatewayEmulator, **overrides: object) -> IntacctClient:
    settings: dict[str, object] = {
        "timeout": 2.0,
        "max_retries": 3,
        "backoff_initial": 0.001,
        "backoff_max": 0.01,
    }
    settings.update(overrides)
    return IntacctClient(**{**gateway.client_kwargs(), **settings})  # type: ignore[arg-type]


@pytest.fixture
def client(gateway: IntacctGatewayEmulator) -> Iterator[IntacctClient]:
    with make_client(gateway) as c:
        yield c


def make_entry(
    name: str = "RevRec 2025-01 SUB-US",
    *,
    target: str | None = None,
    items: tuple[JournalEntryItem, ...] | None = None,
    entry_date: date = date(2025, 1, 31),
) -> JournalEntry:
    return JournalEntry(
        entry_key="202501|SUB-US|0",
        period=202501,
        subsidiary_id="SUB-US",
        target_entity_id=target,
        name=name,
        entry_date=entry_date,
        currency="USD",
        items=items
        or (
            JournalEntryItem("4000", "CREDIT", 123450, "Revenue 2025-01", "CL1", "LOC1", "D1"),
            JournalEntryItem("2400", "DEBIT", 100000, "Deferred Revenue 2025-01", "CL1", "LOC1", "D1"),
            JournalEntryItem("2400", "DEBIT", 23450, "Deferred Revenue 2025-01", None, "LOC2", None),
        ),
    )


def post_raising(
    client: IntacctClient, entry: JournalEntry | None = None, control_id: str = CONTROL_ID
) -> IntacctError:
    with pytest.raises(IntacctError) as info:
        client.post_entry(entry or make_entry(), control_id, ALL_DIMENSIONS)
    return info.value


# ---------------------------------------------------------------------- success


def test_post_entry_creates_one_balanced_batch_with_exact_lines(gateway, client):
    key = client.post_entry(make_entry(), CONTROL_ID, ALL_DIMENSIONS)

    [batch] = gateway.batches
    assert key == batch.recordno
    assert (batch.journal, batch.batch_date, batch.batch_title, batch.entity) == (
        "APJ",
        "01/31/2025",
        "RevRec 2025-01 SUB-US",
        "",
    )
    assert batch.control_id == CONTROL_ID
    assert batch.is_balanced() and batch.total_debit == Decimal("1234.50")
    lines = [
        (e.account_no, e.get("TR_TYPE"), e.get("TRX_AMOUNT"), e.get("CURRENCY"), e.get("DESCRIPTION"))
        for e in batch.entries
    ]
    assert lines == [
        ("4000", "-1", "1234.50", "USD", "Revenue 2025-01"),
        ("2400", "1", "1000.00", "USD", "Deferred Revenue 2025-01"),
        ("2400", "1", "234.50", "USD", "Deferred Revenue 2025-01"),
    ]


def test_session_comes_from_its_own_login_request_and_later_calls_use_the_returned_endpoint(gateway, client):
    client.post_entry(make_entry(), CONTROL_ID, ALL_DIMENSIONS)
    client.post_entry(
        make_entry("RevRec 2025-02 SUB-US", entry_date=date(2025, 2, 28)), "c-2", ALL_DIMENSIONS
    )

    login, create1, create2 = gateway.requests
    assert (login.path, login.auth, login.function_names, login.uniqueid) == (
        INITIAL_PATH,
        "login",
        ["getAPISession"],
        "false",
    )
    for create, control_id in ((create1, CONTROL_ID), (create2, "c-2")):
        assert create.path == SESSION_PATH  # the <endpoint> getAPISession returned
        assert create.auth == "sessionid" and create.sessionid in gateway.issued_session_ids
        assert create.functions == [("create", control_id)] and create.uniqueid == "true"
        assert create.content_type.startswith("application/xml")


@pytest.mark.parametrize(
    ("dimensions", "first_line", "third_line"),
    [
        (set(), set(), set()),
        ({"Class"}, {"CLASSID"}, set()),
        ({"location", "Department"}, {"LOCATION", "DEPARTMENT"}, {"LOCATION"}),
        (ALL_DIMENSIONS, {"CLASSID", "LOCATION", "DEPARTMENT"}, {"LOCATION"}),
    ],
)
def test_dimensions_are_sent_only_when_chosen_and_present(
    gateway, client, dimensions, first_line, third_line
):
    client.post_entry(make_entry(), CONTROL_ID, dimensions)

    [batch] = gateway.batches
    dims = {"CLASSID", "LOCATION", "DEPARTMENT"}
    assert set(batch.entries[0].fields) & dims == first_line
    assert set(batch.entries[2].fields) & dims == third_line  # class and department are None there
    if "LOCATION" in first_line:
        assert batch.entries[0].get("LOCATION") == "LOC1" and batch.entries[2].get("LOCATION") == "LOC2"


def test_unknown_dimension_is_a_programming_error(client):
    with pytest.raises(ValueError, match="unknown posting dimension"):
        client.post_entry(make_entry(), CONTROL_ID, {"Project"})


def test_entries_post_into_their_entity_through_an_entity_session(gateway):
    with make_client(gateway, location_id="E100") as client:
        client.post_entry(make_entry("RevRec 2025-01 SUB-DE", target="E200"), "c-de", ALL_DIMENSIONS)
        client.post_entry(make_entry("RevRec 2025-01 SUB-FR"), "c-fr", ALL_DIMENSIONS)  # the default entity

        entities = {b.batch_title: b.entity for b in gateway.batches}
        assert entities == {"RevRec 2025-01 SUB-DE": "E200", "RevRec 2025-01 SUB-FR": "E100"}
        assert [r.login_locationid for r in gateway.requests_with("getAPISession")] == ["E200", "E100"]
        # Each entity keeps its own session: no further logins.
        client.post_entry(
            make_entry("RevRec 2025-02 SUB-DE", target="E200", entry_date=date(2025, 2, 28)),
            "c-de-2",
            ALL_DIMENSIONS,
        )
        assert len(gateway.requests_with("getAPISession")) == 2
        # An entity session sees its entity's batches only.
        assert client.find_batch("RevRec 2025-01 SUB-DE", "APJ", date(2025, 1, 31), entity_id="E200")
        assert client.find_batch("RevRec 2025-01 SUB-DE", "APJ", date(2025, 1, 31), entity_id="E100") is None


def test_find_batch_matches_title_journal_and_date(gateway, client):
    key = client.post_entry(make_entry(), CONTROL_ID, ALL_DIMENSIONS)

    assert client.find_batch("RevRec 2025-01 SUB-US", "APJ", date(2025, 1, 31)) == key
    assert client.find_batch("RevRec 2025-01 SUB-US", "GJ", date(2025, 1, 31)) is None
    assert client.find_batch("RevRec 2025-01 SUB-US", "APJ", date(2025, 1, 30)) is None
    assert client.find_batch("RevRec 2025-01 SUB", "APJ", date(2025, 1, 31)) is None
    [query] = gateway.requests_with("readByQuery")[:1]
    assert query.uniqueid == "false"


# ---------------------------------------------------------------------- refusals


def test_wrong_user_password_fails_authentication_at_login(gateway):
    with make_client(gateway, user_password="not-the-password") as client:
        error = post_raising(client)

    assert error.level == "authentication" and not error.retryable and not error.ambiguous
    assert "login (getAPISession)" in str(error) and "authentication refused" in str(error)
    assert error.detail == "XL03000006 Sign-in information is incorrect"
    assert gateway.batches == [] and gateway.requests_with("create") == []


def test_injected_authentication_failure_carries_the_gateways_words(gateway, client):
    gateway.fail_authentication(
        on="getAPISession",
        error=(
            "XL03000006",
            "Invalid Web Services Authorization",
            "The sender ID 'revrec_sender' is not authorized to make Web Services requests to company ID "
            "'REVREC-TEST'.",
            "Contact the company administrator to grant Web Services authorization.",
        ),
    )
    error = post_raising(client)

    assert error.level == "authentication"
    assert "Invalid Web Services Authorization" in error.detail
    assert "is not authorized to make Web Services requests" in error.detail
    assert "Contact the company administrator" in error.detail


def test_wrong_sender_password_fails_at_control_level(gateway):
    with make_client(gateway, sender_password="wrong") as client:
        error = post_raising(client)

    assert error.level == "control" and not error.retryable
    assert "login (getAPISession)" in str(error) and "sender" in str(error)
    assert error.detail == "XL03000006 Incorrect Intacct XML Partner ID or password."
    assert gateway.batches == []


def test_injected_control_failure_on_create(gateway, client):
    gateway.fail_control(on="create")
    error = post_raising(client)

    assert error.level == "control" and "create GLBATCH 'RevRec 2025-01 SUB-US'" in str(error)
    assert error.detail == "PL04000055 This company is a demo company and has expired."
    assert [e.errorno for e in error.errors] == ["PL04000055"]


def test_result_failure_shows_every_error_element(gateway, client):
    gateway.fail_result(
        [
            (
                "BL-PERIOD",
                "Could not create GLBATCH record!",
                "Date must be on or after 02/01/2025 [Support ID: a%7Eb]",
                "Post into an open period.",
            ),
            ("BL-SECOND", "", "Second error", ""),
        ]
    )
    error = post_raising(client)

    assert error.level == "result" and not error.retryable and not error.ambiguous
    assert "create GLBATCH 'RevRec 2025-01 SUB-US'" in str(error) and "'failure'" in str(error)
    assert error.detail == (
        "BL-PERIOD Could not create GLBATCH record! Date must be on or after 02/01/2025 [Support ID: a~b] "
        "Post into an open period.; BL-SECOND Second error"
    )
    assert gateway.batches == []


def test_gateway_validation_failure_is_a_result_failure(gateway):
    with make_client(gateway, journal="NOPE") as client:
        error = post_raising(client)
    assert error.level == "result" and "Journal NOPE does not exist." in error.detail


def test_unbalanced_entry_is_not_sent(gateway, client):
    items = (JournalEntryItem("4000", "CREDIT", 9000, "x"), JournalEntryItem("2400", "DEBIT", 10000, "y"))
    error = post_raising(client, make_entry(items=items))
    assert error.level == "input" and "debits 10000 != credits 9000" in str(error)
    assert gateway.requests == []


# ---------------------------------------------------------------------- transient faults and retries


def test_http_errors_are_retried_until_success_without_a_second_batch(gateway, client):
    gateway.fail_http(502, on="getAPISession")
    gateway.fail_http(500, on="create")
    gateway.fail_http(429, on="create")

    key = client.post_entry(make_entry(), CONTROL_ID, ALL_DIMENSIONS)

    [batch] = gateway.batches
    assert key == batch.recordno
    assert [r.outcome for r in gateway.requests if r.outcome.startswith("http-")] == [
        "http-502",
        "http-500",
        "http-429",
    ]


def test_retries_give_up_with_a_retryable_error(gateway):
    gateway.fail_http(503, times=10)
    with make_client(gateway, max_retries=2) as client:
        error = post_raising(client)

    assert error.retryable and error.level == "http"
    assert "HTTP 503" in str(error) and "gave up after 3 attempts" in str(error)
    assert len(gateway.requests) == 3


def test_rate_limit_answer_is_parsed(gateway):
    gateway.fail_http(429, times=5)
    with make_client(gateway, max_retries=0) as client:
        error = post_raising(client)
    assert error.retryable and not error.ambiguous and "HTTP 429" in str(error)
    assert error.detail.startswith("GW-0010 API rate limit exceeded")


def test_timeout_after_the_batch_was_created_is_resolved_by_a_lookup_not_a_resend(gateway):
    gateway.stall(1.0, on="create")
    with make_client(gateway, timeout=0.3) as client:
        key = client.post_entry(make_entry(), CONTROL_ID, ALL_DIMENSIONS)

    [batch] = gateway.batches
    assert key == batch.recordno
    assert [r.function_names for r in gateway.requests] == [["getAPISession"], ["create"], ["readByQuery"]]


def test_resend_after_an_ambiguous_failure_is_refused_by_uniqueid_and_returns_the_same_key(gateway):
    gateway.stall(1.0, on="create")
    with make_client(gateway, timeout=0.3, max_retries=0) as client:
        error = post_raising(client)
        assert error.ambiguous and error.retryable and error.level == "transport"
        [batch] = gateway.batches

        key = client.post_entry(make_entry(), CONTROL_ID, ALL_DIMENSIONS)  # e.g. the next manual posting

    assert key == batch.recordno and len(gateway.batches) == 1
    resent = gateway.requests_with("create")[-1]
    assert resent.errornos == [DUPLICATE_ERRORNO] and resent.results == [("create", CONTROL_ID, "failure")]


def test_failed_logins_and_lookups_are_retryable_but_not_ambiguous(gateway):
    gateway.fail_http(502, on="getAPISession")
    gateway.stall(0.6, on="readByQuery")
    with make_client(gateway, max_retries=0, timeout=0.3) as client:
        error = post_raising(client)
        assert error.retryable and not error.ambiguous and "login (getAPISession)" in str(error)
        with pytest.raises(IntacctError) as lookup:
            client.find_batch("RevRec 2025-01 SUB-US", "APJ", date(2025, 1, 31))
    assert lookup.value.retryable and not lookup.value.ambiguous and "readByQuery" in str(lookup.value)


@pytest.mark.parametrize("after_execute", [True, False])
def test_dropped_connection_never_doubles_the_batch(gateway, client, after_execute):
    gateway.drop_connection(on="create", after_execute=after_execute)

    key = client.post_entry(make_entry(), CONTROL_ID, ALL_DIMENSIONS)

    [batch] = gateway.batches
    assert key == batch.recordno
    assert "dropped" in [r.outcome for r in gateway.requests]


def test_proxy_error_after_the_work_is_ambiguous_and_resolved(gateway, client):
    gateway.fail_http(502, on="create", after_execute=True)
    key = client.post_entry(make_entry(), CONTROL_ID, ALL_DIMENSIONS)
    [batch] = gateway.batches
    assert key == batch.recordno


def test_duplicate_control_id_without_a_matching_batch_fails_clearly(gateway, client):
    client.post_entry(make_entry(), CONTROL_ID, ALL_DIMENSIONS)
    renamed = make_entry("RevRec 2025-01 SUB-US renamed")
    error = post_raising(client, renamed)
    assert error.level == "result" and not error.retryable
    assert "already executed" in str(error) and "no GLBATCH titled 'RevRec 2025-01 SUB-US renamed'" in str(
        error
    )
    assert len(gateway.batches) == 1


# ---------------------------------------------------------------------- sessions


def test_expired_session_is_re_established_and_the_call_retried_once(gateway, client):
    client.post_entry(make_entry(), CONTROL_ID, ALL_DIMENSIONS)
    gateway.expire_sessions()

    client.post_entry(
        make_entry("RevRec 2025-02 SUB-US", entry_date=date(2025, 2, 28)), "c-2", ALL_DIMENSIONS
    )

    assert len(gateway.batches) == 2
    assert [(r.function_names[0], r.outcome) for r in gateway.requests] == [
        ("getAPISession", "ok"),
        ("create", "ok"),
        ("create", "auth-failure"),
        ("getAPISession", "ok"),
        ("create", "ok"),
    ]
    assert gateway.requests[-1].sessionid == gateway.issued_session_ids[-1]


def test_session_refused_again_after_relogin_fails(gateway, client):
    gateway.fail_authentication(on="create", times=2)
    error = post_raising(client)
    assert error.level == "authentication" and "create GLBATCH" in str(error)
    assert len(gateway.requests_with("getAPISession")) == 2 and gateway.batches == []


# ---------------------------------------------------------------------- escaping and secrets


def test_xml_special_and_non_ascii_characters_arrive_intact(gateway, client):
    name = 'RevRec 2025-01 Bob\'s "A&B" <Ltd> — Zürich 東京'
    description = "Deferred & 'unearned' <revenue> \"ü\" ]]> é"
    items = (
        JournalEntryItem("4000&<1>", "CREDIT", 100, description, "C&1", "L<1>", "D'1"),
        JournalEntryItem("2400", "DEBIT", 100, "Δ", "C&1", "L<1>", "D'1"),
    )
    key = client.post_entry(make_entry(name, items=items), "ctl-&<'\">", ALL_DIMENSIONS)

    [batch] = gateway.batches
    assert batch.batch_title == name and batch.control_id == "ctl-&<'\">"
    first = batch.entries[0]
    assert (
        first.account_no,
        first.get("DESCRIPTION"),
        first.get("CLASSID"),
        first.get("LOCATION"),
        first.get("DEPARTMENT"),
    ) == ("4000&<1>", description, "C&1", "L<1>", "D'1")
    raw = gateway.requests_with("create")[0].body
    assert b"&lt;Ltd&gt;" in raw and b"A&amp;B" in raw and "Zürich".encode() in raw
    # The look-up quotes the title for readByQuery and finds it again.
    assert client.find_batch(name, "APJ", date(2025, 1, 31)) == key
    assert client.post_entry(make_entry(name, items=items), "ctl-&<'\">", ALL_DIMENSIONS) == key
    assert len(gateway.batches) == 1


def test_control_characters_are_refused_before_sending(gateway, client):
    items = (JournalEntryItem("4000", "CREDIT", 100, "bad\x01"), JournalEntryItem("2400", "DEBIT", 100, "ok"))
    error = post_raising(client, make_entry(items=items))
    assert error.level == "input" and "<DESCRIPTION>" in str(error)
    assert gateway.requests == []


def test_secrets_never_appear_in_errors_or_logs(gateway, caplog):
    caplog.set_level(logging.DEBUG)
    errors: list[PostingError] = []

    def collect(client: IntacctClient) -> None:
        with client:
            errors.append(post_raising(client, control_id=uuid.uuid4().hex))

    collect(make_client(gateway, user_password="wrong-" + gateway.user_password))
    collect(make_client(gateway, sender_password="wrong-" + gateway.sender_password))
    gateway.fail_result([("X1", "", f"echo {gateway.user_password} and {gateway.sender_password}", "")])
    collect(make_client(gateway))
    gateway.stall(0.6, on="create")
    collect(make_client(gateway, timeout=0.2, max_retries=0))
    gateway.fail_authentication(on="create", times=2)
    collect(make_client(gateway))
    gateway.fail_http(500, times=3)
    collect(make_client(gateway, max_retries=2))

    assert errors[2].detail == "X1 echo *** and ***"  # the gateway's words, redacted
    secrets = [gateway.sender_password, gateway.user_password, *gateway.issued_session_ids]
    assert len(secrets) > 2
    texts = [caplog.text, repr(make_client(gateway))]
    for error in errors:
        texts += [str(error), repr(error), error.detail, "".join(traceback.format_exception(error))]
    for text in texts:
        for secret in secrets:
            assert secret not in text


# ---------------------------------------------------------------------- the emulator follows the reference

# Verbatim from shared/reference/intacct/samples (intacct-sdk-php test fixtures, Apache-2.0).
SAMPLE_GETAPISESSION_SUCCESS = """<response><control><status>success</status><senderid>testsenderid</senderid>
<controlid>requestUnitTest</controlid><uniqueid>false</uniqueid><dtdversion>3.0</dtdversion></control>
<operation><authentication><status>success</status><userid>testuser</userid><companyid>testcompany</companyid>
<locationid></locationid><sessiontimestamp>2015-12-06T15:57:08-08:00</sessiontimestamp></authentication>
<result><status>success</status><function>getAPISession</function><controlid>func1UnitTest</controlid>
<data><api><sessionid>unittest..</sessionid><endpoint>https://unittest.intacct.com/ia/xml/xmlgw.phtml</endpoint>
<locationid></locationid></api></data></result></operation></response>"""
SAMPLE_AUTH_FAILURE = """<response><control><status>success</status><senderid>testsenderid</senderid>
<controlid>ControlIdHere</controlid><uniqueid>false</uniqueid><dtdversion>3.0</dtdversion></control>
<operation><authentication><status>failure</status><userid>fakeuser</userid><companyid>fakecompany</companyid>
<locationid></locationid></authentication><errormessage><error><errorno>XL03000006</errorno><description></description>
<description2>Sign-in information is incorrect</description2><correction></correction></error></errormessage>
</operation></response>"""
SAMPLE_CONTROL_FAILURE_POLICY = """<response><control><status>failure</status><senderid>testsenderid</senderid>
<controlid>ControlIdHere</controlid><uniqueid>false</uniqueid><dtdversion>3.0</dtdversion></control>
<errormessage><error><errorno>XL03000006</errorno><description></description>
<description2>test is not a valid transport policy.</description2><correction></correction></error></errormessage>
</response>"""
SAMPLE_RESULT_FAILURE = """<response><control><status>success</status><senderid>testsenderid</senderid>
<controlid>ControlIdHere</controlid><uniqueid>false</uniqueid><dtdversion>3.0</dtdversion></control>
<operation><authentication><status>success</status><userid>fakeuser</userid><companyid>fakecompany</companyid>
<locationid></locationid><sessiontimestamp>2015-10-25T10:08:34-07:00</sessiontimestamp>
<sessiontimeout>2015-10-26T10:08:34-07:00</sessiontimeout></authentication><result><status>failure</status>
<function>read</function><controlid>testFunctionId</controlid><errormessage><error><errorno>XXX</errorno>
<description></description><description2>Object definition VENDOR2 not found</description2><correction></correction>
</error></errormessage></result></operation></response>"""
SAMPLE_ABORTED = """<response><control><status>success</status><senderid>testsenderid</senderid>
<controlid>ControlIdHere</controlid><uniqueid>false</uniqueid><dtdversion>3.0</dtdversion></control>
<operation><authentication><status>success</status><userid>fakeuser</userid><companyid>fakecompany</companyid>
<locationid></locationid><sessiontimestamp>2015-10-25T10:08:34-07:00</sessiontimestamp>
<sessiontimeout>2015-10-26T10:08:34-07:00</sessiontimeout></authentication><result><status>aborted</status>
<function>readByQuery</function><controlid>testFunctionId</controlid><errormessage><error><errorno>Query Failed</errorno>
<description></description><description2>Object definition VENDOR9 not found</description2><correction></correction>
</error><error><errorno>XL03000009</errorno><description></description>
<description2>The entire transaction in this operation has been rolled back due to an error.</description2>
<correction></correction></error></errormessage></result></operation></response>"""
SAMPLE_PARSE_ERROR = """<response><control><status>failure</status><senderid>intacct_dev</senderid>
<controlid>1662064558</controlid><uniqueid>false</uniqueid><dtdversion>3.0</dtdversion></control>
<errormessage><error><errorno>XL03000003</errorno><description></description><description2>XML Parse schema error:
…</description2><correction></correction></error></errormessage></response>"""
SAMPLE_READ = """<response><control><status>success</status><senderid>testsender</senderid>
<controlid>ControlIdHere</controlid><uniqueid>false</uniqueid><dtdversion>3.0</dtdversion></control>
<operation><authentication><status>success</status><userid>user</userid><companyid>company</companyid>
<locationid></locationid><sessiontimestamp>2017-08-05T11:22:32-07:00</sessiontimestamp>
<sessiontimeout>2015-10-26T10:08:34-07:00</sessiontimeout></authentication><result><status>success</status>
<function>read</function><controlid>7cad3f85-d533-4ae4-80bc-e96e58b5a822</controlid>
<data listtype="CUSTOMER" count="1"><CUSTOMER><RECORDNO>149</RECORDNO></CUSTOMER></data></result></operation></response>"""


def shape(element: Element, skip_below: str | None = None) -> tuple:
    """Tags, attribute names and nesting; statuses by value. Children of `skip_below` are not compared."""
    children = [] if element.tag == skip_below else [shape(c, skip_below) for c in element]
    status = element.text if element.tag == "status" else None
    return element.tag, sorted(element.attrib), status, children


def send_raw(
    gateway: IntacctGatewayEmulator,
    functions: list[Element],
    *,
    session: str | None = None,
    sender_password: str | None = None,
    user_password: str | None = None,
    transaction: str = "false",
    uniqueid: str = "false",
) -> Element:
    request = Element("request")
    control = SubElement(request, "control")
    for tag, text in (
        ("senderid", gateway.sender_id),
        ("password", sender_password or gateway.sender_password),
        ("controlid", "raw"),
        ("uniqueid", uniqueid),
        ("dtdversion", "3.0"),
    ):
        SubElement(control, tag).text = text
    operation = SubElement(request, "operation", transaction=transaction)
    auth = SubElement(operation, "authentication")
    if session:
        SubElement(auth, "sessionid").text = session
    else:
        login = SubElement(auth, "login")
        for tag, text in (
            ("userid", gateway.user_id),
            ("companyid", gateway.company_id),
            ("password", user_password or gateway.user_password),
        ):
            SubElement(login, tag).text = text
    content = SubElement(operation, "content")
    for function in functions:
        content.append(function)
    return post_raw(gateway, tostring(request, encoding="utf-8"))


def post_raw(gateway: IntacctGatewayEmulator, body: bytes) -> Element:
    response = httpx.post(gateway.url, content=body, headers={"Content-Type": "application/xml"})
    return fromstring(response.content)


def function(controlid: str, xml: str) -> Element:
    element = Element("function", controlid=controlid)
    element.append(fromstring(xml))
    return element


def new_session(gateway: IntacctGatewayEmulator) -> str:
    answer = send_raw(gateway, [function("s", "<getAPISession/>")])
    return answer.findtext("operation/result/data/api/sessionid") or ""


def test_emulator_answers_have_the_reference_sample_shapes(gateway):
    assert shape(send_raw(gateway, [function("s", "<getAPISession/>")])) == shape(
        fromstring(SAMPLE_GETAPISESSION_SUCCESS)
    )
    assert shape(send_raw(gateway, [function("s", "<getAPISession/>")], user_password="x")) == shape(
        fromstring(SAMPLE_AUTH_FAILURE)
    )
    assert shape(send_raw(gateway, [function("s", "<getAPISession/>")], sender_password="x")) == shape(
        fromstring(SAMPLE_CONTROL_FAILURE_POLICY)
    )

    session = new_session(gateway)
    gateway.fail_result([("XXX", "", "Object definition VENDOR2 not found", "")], function="readByQuery")
    query = "<readByQuery><object>GLBATCH</object><query/><fields>*</fields></readByQuery>"
    failed = send_raw(gateway, [function("f", query)], session=session)
    assert shape(failed) == shape(fromstring(SAMPLE_RESULT_FAILURE))

    unknown = "<readByQuery><object>VENDOR9</object><query/><fields>*</fields></readByQuery>"
    aborted = send_raw(gateway, [function("f", unknown)], session=session, transaction="true")
    assert shape(aborted) == shape(fromstring(SAMPLE_ABORTED))
    assert [e.findtext("description2") for e in aborted.iter("error")] == [
        "Object definition VENDOR9 not found",
        "The entire transaction in this operation has been rolled back due to an error.",
    ]

    found = send_raw(gateway, [function("f", query)], session=session)
    assert shape(found, skip_below="data")[:3] == shape(fromstring(SAMPLE_READ), skip_below="data")[:3]
    assert shape(found, skip_below="result") == shape(fromstring(SAMPLE_READ), skip_below="result")
    assert found.find("operation/result/data").attrib == {
        "listtype": "GLBATCH",
        "count": "0",
        "totalcount": "0",
        "numremaining": "0",
        "resultId": "",
    }


@pytest.mark.parametrize(
    "body",
    [
        b"<request><operation/><control/></request>",  # order
        b"<request><control><senderid>s</senderid><controlid>c</controlid></control>"
        b"<operation><authentication><sessionid>x</sessionid></authentication></operation></request>",  # dtdversion
        b"<request><control><senderid>s</senderid><controlid>c</controlid><dtdversion>3.0</dtdversion></control>"
        b"<operation><authentication><login><userid>u</userid><password>p</password><companyid>c</companyid>"
        b"</login></authentication></operation></request>",  # login order
        b"<request><control><senderid>s</senderid><controlid>c</controlid><dtdversion>3.0</dtdversion></control>"
        b"<operation><authentication><sessionid>x</sessionid></authentication><content><function>"
        b"<getAPISession/></function></content></operation></request>",  # function without controlid
        b"<request><control><senderid>s</senderid>",  # not well-formed
    ],
)
def test_emulator_refuses_envelopes_the_schema_refuses(gateway, body):
    answer = post_raw(gateway, body)
    assert answer.findtext("control/status") == "failure"
    assert answer.findtext("errormessage/error/errorno") == "XL03000003"
    if body.endswith(b"</request>"):
        assert shape(answer, skip_below="errormessage") == shape(
            fromstring(SAMPLE_PARSE_ERROR), "errormessage"
        )


def test_emulator_honours_uniqueid_only_when_true(gateway):
    session = new_session(gateway)
    batch = (
        "<create><GLBATCH><JOURNAL>GJ</JOURNAL><BATCH_DATE>06/30/2016</BATCH_DATE><BATCH_TITLE>t</BATCH_TITLE>"
        "<ENTRIES><GLENTRY><ACCOUNTNO>1010</ACCOUNTNO><TR_TYPE>1</TR_TYPE><TRX_AMOUNT>5.00</TRX_AMOUNT>"
        "</GLENTRY><GLENTRY><ACCOUNTNO>2000</ACCOUNTNO><TR_TYPE>-1</TR_TYPE><TRX_AMOUNT>5</TRX_AMOUNT>"
        "</GLENTRY></ENTRIES></GLBATCH></create>"
    )
    statuses = [
        send_raw(gateway, [function("same", batch)], session=session, uniqueid=uniqueid).findtext(
            "operation/result/status"
        )
        for uniqueid in ("false", "false", "true")
    ]
    assert statuses == ["success", "success", "failure"]
    assert len(gateway.batches) == 2
    created = send_raw(gateway, [function("other", batch)], session=session, uniqueid="true")
    assert created.find("operation/result/data").attrib == {"listtype": "objects", "count": "1"}
    assert created.findtext("operation/result/data/glbatch/RECORDNO") == gateway.batches[-1].recordno


def test_emulator_wants_getapisession_alone(gateway):
    answer = send_raw(gateway, [function("a", "<getAPISession/>"), function("b", "<getAPISession/>")])
    assert [r.findtext("status") for r in answer.iter("result")] == ["failure", "failure"]
