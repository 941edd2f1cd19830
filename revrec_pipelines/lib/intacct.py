"""Sage Intacct XML API 3.0 client: posts a `JournalEntry` as a GLBATCH (SPEC §5).

Plain Python over httpx, no Dagster. Every request carries the Web Services sender credentials in
`<control>`; a session comes from `getAPISession` in a request of its own (login credentials, and the
entity as the login's `locationid`), and later requests use the returned `sessionid` at the returned
`endpoint`. Creates are sent with `uniqueid=true` and a function `controlid` the caller derives from
the entry, so a resend is refused by the gateway instead of posting twice; that refusal, or an
ambiguous failure (timeout or dropped connection after the request was sent), is resolved by
looking the batch up by title, journal and date.

Failures are `PostingError`s whose message names the step that failed and whose `detail` carries the
gateway's own words (errorno, description, description2, correction). Passwords and session ids never
appear in messages, details or logs. Element names and order follow the official Intacct SDKs.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import TypeVar
from urllib.parse import unquote
from xml.etree.ElementTree import Element, SubElement, tostring

import httpx
from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential, wait_random

from revrec_pipelines.lib.posting_model import JournalEntry, PostingError

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_ENDPOINT = "https://api.intacct.com/ia/xml/xmlgw.phtml"
DIMENSIONS = ("Location", "Department", "Class")  # REVREC_POSTING_DIMENSIONS vocabulary
# GLENTRY element per dimension; generic create uses LOCATION/DEPARTMENT, not LOCATIONID/DEPARTMENTID.
_DIMENSION_ELEMENT = {"Location": "LOCATION", "Department": "DEPARTMENT", "Class": "CLASSID"}

_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_IA_DATE_FORMAT = "%m/%d/%Y"  # the SDKs' XMLWriter::IA_DATE_FORMAT = 'm/d/Y'
_MAX_CONTROL_ID = 256  # api.xsd: function/@controlid is a string of length 0..256
_QUERY_PAGE_SIZE = 100

# The reference documents uniqueid ("the controlid attribute of the <function> element will be checked to
# determine if the operation was previously executed") but holds no captured refusal. Production clients
# match the gateway's sentence "A successful transaction has already been recorded with the control id …";
# the other phrasings are accepted so a reworded message still resolves to a look-up, not a failure.
_DUPLICATE_TEXT = re.compile(
    r"already been recorded with the control ?id|previously executed|already (?:been )?executed"
    r"|control ?id\b.{0,120}\balready\b",
    re.IGNORECASE | re.DOTALL,
)
# Messages the reference lists as transient (rate limit GW-0010, "The Service is Temporarily Off-line").
_TRANSIENT_TEXT = re.compile(r"rate limit|temporarily off-?line", re.IGNORECASE)
_TRANSIENT_ERRORNOS = {"GW-0010"}
_SUPPORT_ID = re.compile(r"\[Support ID: ([^\]]*)\]")
# Characters XML 1.0 cannot carry; ElementTree would write them and produce a document the gateway rejects.
_NOT_XML_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass(frozen=True)
class GatewayError:
    """One `<error>` of an Intacct response."""

    errorno: str
    description: str = ""
    description2: str = ""
    correction: str = ""

    def __str__(self) -> str:
        # Like the PHP SDK's ErrorMessage: the non-empty parts, joined by spaces.
        return " ".join(p for p in (self.errorno, self.description, self.description2, self.correction) if p)


class IntacctError(PostingError):
    """A `PostingError` from Intacct, with the parsed gateway errors and the level that refused.

    `level` is one of: "input" (not sent), "transport", "http", "response" (unreadable answer),
    "control" (sender credentials / request), "authentication" (login or session), "result" (function).
    """

    def __init__(
        self,
        message: str,
        *,
        detail: str = "",
        retryable: bool = False,
        ambiguous: bool = False,
        level: str,
        errors: tuple[GatewayError, ...] = (),
    ):
        super().__init__(message, detail=detail, retryable=retryable, ambiguous=ambiguous)
        self.level = level
        self.errors = errors


@dataclass
class _Session:
    session_id: str
    endpoint: str
    entity_id: str  # "" = top level


@dataclass(frozen=True)
class _Result:
    status: str  # success | failure | aborted
    function: str
    element: Element
    errors: tuple[GatewayError, ...]


class _SessionRejected(Exception):
    """The gateway refused the session (expired or invalid): log in again once."""

    def __init__(self, error: IntacctError):
        super().__init__("session rejected")
        self.error = error


class IntacctClient:
    """Posts journal entries to Sage Intacct through the XML Web Services gateway.

    `location_id` is the entity posted into when an entry has no `target_entity_id` (None = top level).
    `max_retries` counts re-sends after the first attempt for retryable failures (HTTP 5xx/429, transport),
    waiting `backoff_initial * 2**n` seconds (at most `backoff_max`) between them.
    """

    def __init__(
        self,
        endpoint_url: str,
        sender_id: str,
        sender_password: str,
        company_id: str,
        user_id: str,
        user_password: str,
        *,
        journal: str = "APJ",
        timeout: float = 120.0,
        max_retries: int = 3,
        location_id: str | None = None,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        http_client: httpx.Client | None = None,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.endpoint_url = endpoint_url or DEFAULT_ENDPOINT
        self.sender_id = sender_id
        self.company_id = company_id
        self.user_id = user_id
        self.journal = journal
        self.timeout = timeout
        self.max_retries = max_retries
        self.location_id = location_id or None
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._sender_password = sender_password
        self._user_password = user_password
        self._secrets: set[str] = {s for s in (sender_password, user_password) if s}
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": "revrec-pipelines-intacct/1"},
        )

    def __repr__(self) -> str:  # never the passwords
        return (
            f"IntacctClient(endpoint_url={self.endpoint_url!r}, sender_id={self.sender_id!r}, "
            f"company_id={self.company_id!r}, user_id={self.user_id!r}, journal={self.journal!r})"
        )

    def __enter__(self) -> IntacctClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    # ------------------------------------------------------------------ public API

    def post_entry(self, entry: JournalEntry, control_id: str, dimensions: Iterable[str]) -> str:
        """Create `entry` as a GLBATCH and return its RECORDNO.

        `control_id` must be deterministic per entry (same entry, same id): it is the function controlid
        sent with uniqueid=true. If the gateway says it was already executed, or an earlier attempt ended
        ambiguously, the existing batch is looked up and its key returned instead of posting again.
        `dimensions` is a subset of {"Class", "Location", "Department"}.
        """
        if not 1 <= len(control_id) <= _MAX_CONTROL_ID:
            raise ValueError(f"control_id must be 1..{_MAX_CONTROL_ID} characters, got {len(control_id)}")
        chosen = _normalise_dimensions(dimensions)
        step = f"create GLBATCH {entry.name!r}"
        self._check_entry(entry, step)
        entity = self._entity_for(entry.target_entity_id)
        function = self._glbatch_function(entry, control_id, chosen, step)
        maybe_sent = False  # an earlier attempt may have created the batch

        def attempt() -> str:
            nonlocal maybe_sent
            if maybe_sent:
                key = self._lookup(entry.name, self.journal, entry.entry_date, entity)
                if key is not None:
                    log.info(
                        "Intacct %s: found batch %s after an ambiguous failure; not re-sending", step, key
                    )
                    return key
            try:
                result = self._call(function, control_id, entity, step, creates=True)
            except IntacctError as exc:
                maybe_sent = maybe_sent or exc.ambiguous
                if exc.level == "control" and _is_duplicate(exc.errors):
                    return self._resolve_duplicate(entry, control_id, entity, step, exc.errors)
                raise
            if result.status == "success":
                key = _created_key(result.element)
                if key is None:  # created, but the answer names no key: ask for it
                    key = self._lookup(entry.name, self.journal, entry.entry_date, entity)
                if key is None:
                    raise self._error(
                        f"Intacct {step} succeeded but the gateway returned no RECORDNO and no batch was "
                        "found by title; check the journal in Intacct before posting again",
                        level="response",
                    )
                log.info("Intacct %s: created batch %s", step, key)
                return key
            if _is_duplicate(result.errors):
                return self._resolve_duplicate(entry, control_id, entity, step, result.errors)
            raise self._result_error(step, result)

        return self._retrying(attempt)

    def find_batch(
        self, title: str, journal: str, batch_date: date, *, entity_id: str | None = None
    ) -> str | None:
        """The RECORDNO of the GLBATCH with exactly this title, journal and date, or None.

        Searches the entity `entity_id` (default: the client's `location_id`; "" = top level).
        Raises `IntacctError` if more than one batch matches: a human must decide which is ours.
        """
        entity = self._entity_for(entity_id)
        return self._retrying(lambda: self._lookup(title, journal, batch_date, entity))

    # ------------------------------------------------------------------ steps

    def _resolve_duplicate(
        self, entry: JournalEntry, control_id: str, entity: str, step: str, errors: tuple[GatewayError, ...]
    ) -> str:
        key = self._lookup(entry.name, self.journal, entry.entry_date, entity)
        if key is None:
            raise self._error(
                f"Intacct {step} failed: the gateway says function control id {control_id!r} was already "
                f"executed, but no GLBATCH titled {entry.name!r} dated {entry.entry_date:%m/%d/%Y} exists in "
                f"journal {self.journal!r}{_entity_words(entity)}; it may have been deleted or renamed in "
                "Intacct. Check there before posting it under a new control id",
                level="result",
                errors=errors,
            )
        log.info("Intacct %s: control id already executed; existing batch %s", step, key)
        return key

    def _lookup(self, title: str, journal: str, batch_date: date, entity: str) -> str | None:
        step = f"readByQuery GLBATCH {title!r}"
        query = " AND ".join(
            [
                f"BATCH_TITLE = {_quote(title)}",
                f"JOURNAL = {_quote(journal)}",
                f"BATCH_DATE = {_quote(batch_date.strftime(_IA_DATE_FORMAT))}",
            ]
        )
        control_id = f"revrec-find-{uuid.uuid4().hex}"
        function = Element("function", controlid=control_id)
        read = SubElement(function, "readByQuery")
        self._text(read, "object", "GLBATCH", step)
        self._text(read, "query", query, step)
        self._text(read, "fields", "RECORDNO,BATCH_TITLE,JOURNAL,BATCH_DATE", step)
        self._text(read, "pagesize", str(_QUERY_PAGE_SIZE), step)
        self._text(read, "returnFormat", "xml", step)
        result = self._call(function, control_id, entity, step, creates=False)
        if result.status != "success":
            raise self._result_error(step, result)
        keys = []
        data = result.element.find("data")
        wanted_date = batch_date.strftime(_IA_DATE_FORMAT)
        for record in list(data) if data is not None else []:
            # Compare again here: the gateway's string match need not be exact (case, spacing).
            if (
                record.findtext("BATCH_TITLE", "") == title
                and record.findtext("JOURNAL", journal) == journal
                and record.findtext("BATCH_DATE", wanted_date) == wanted_date
                and (record.findtext("RECORDNO") or "").strip()
            ):
                keys.append(record.findtext("RECORDNO", "").strip())
        if len(keys) > 1:
            raise self._error(
                f"Intacct {step} found {len(keys)} batches titled {title!r} on {batch_date:%m/%d/%Y} in journal "
                f"{journal!r} (RECORDNO {', '.join(keys)}); resolve the duplicate in Intacct",
                level="result",
            )
        return keys[0] if keys else None

    def _call(self, function: Element, control_id: str, entity: str, step: str, *, creates: bool) -> _Result:
        """Send one function with session authentication; log in again once if the session is refused.

        `creates` marks a function that changes the ledger: it is sent with uniqueid=true, and a failure
        after it was sent is ambiguous (it may have been executed).
        """
        session = self._session_for(entity, step)
        try:
            return self._send_with_session(session, function, control_id, step, creates)
        except _SessionRejected:
            log.info("Intacct %s: session refused (expired or invalid); logging in again", step)
            self._forget_session(session)
        session = self._session_for(entity, step)
        try:
            return self._send_with_session(session, function, control_id, step, creates)
        except _SessionRejected as again:
            self._forget_session(session)
            raise again.error from None

    def _send_with_session(
        self, session: _Session, function: Element, control_id: str, step: str, creates: bool
    ) -> _Result:
        auth = Element("authentication")
        self._text(auth, "sessionid", session.session_id, step)
        body = self._request(auth, function, creates, step)
        response = self._post(session.endpoint, body, step, creates)
        try:
            return self._result(response, control_id, step, creates)
        except IntacctError as exc:
            if exc.level == "authentication":
                raise _SessionRejected(exc) from None
            raise

    def _session_for(self, entity: str, step: str) -> _Session:
        with self._lock:
            session = self._sessions.get(entity)
        if session is None:
            session = self._login(entity, step)
            with self._lock:
                self._sessions[entity] = session
        return session

    def _forget_session(self, session: _Session) -> None:
        with self._lock:
            if self._sessions.get(session.entity_id) is session:
                del self._sessions[session.entity_id]

    def _login(self, entity: str, for_step: str) -> _Session:
        step = f"login (getAPISession){_entity_words(entity)} before {for_step}"
        auth = Element("authentication")
        login = SubElement(auth, "login")
        self._text(login, "userid", self.user_id, step)
        self._text(login, "companyid", self.company_id, step)
        self._text(login, "password", self._user_password, step)
        if entity:
            self._text(login, "locationid", entity, step)
        control_id = f"revrec-session-{uuid.uuid4().hex}"
        function = Element("function", controlid=control_id)
        SubElement(function, "getAPISession")
        # getAPISession is isolated in a request of its own, as the API-sessions page asks.
        response = self._post(self.endpoint_url, self._request(auth, function, False, step), step, False)
        result = self._result(response, control_id, step, False)
        if result.status != "success":
            raise self._result_error(step, result)
        api = result.element.find("data/api")
        session_id = (api.findtext("sessionid") if api is not None else "") or ""
        if not session_id.strip():
            raise self._error(f"Intacct {step} failed: the answer holds no session id", level="response")
        with self._lock:
            self._secrets.add(session_id)
            self._secrets.add(session_id.strip())
        got_entity = (api.findtext("locationid") or "").strip()
        if got_entity != entity:
            raise self._error(
                f"Intacct {step} failed: the session is for entity {got_entity or 'top level'!r}, "
                f"not {entity or 'top level'!r}; check the entity id",
                level="authentication",
            )
        endpoint = (api.findtext("endpoint") or "").strip() or self.endpoint_url
        log.info("Intacct %s: session established at %s", step, endpoint)
        return _Session(session_id=session_id.strip(), endpoint=endpoint, entity_id=entity)

    # ------------------------------------------------------------------ wire

    def _request(self, auth: Element, function: Element, unique: bool, step: str) -> bytes:
        # uniqueid=true for ledger changes, false for reads (as the requests page recommends).
        request = Element("request")
        control = SubElement(request, "control")
        self._text(control, "senderid", self.sender_id, step)
        self._text(control, "password", self._sender_password, step)
        self._text(control, "controlid", f"revrec-{uuid.uuid4().hex}", step)
        self._text(control, "uniqueid", "true" if unique else "false", step)
        self._text(control, "dtdversion", "3.0", step)
        self._text(control, "includewhitespace", "false", step)
        operation = SubElement(request, "operation", transaction="false")
        operation.append(auth)
        SubElement(operation, "content").append(function)
        return _XML_DECLARATION + tostring(request, encoding="utf-8")

    def _post(self, url: str, body: bytes, step: str, creates: bool) -> Element:
        headers = {"Content-Type": "application/xml", "Accept": "application/xml, text/xml"}
        try:
            response = self._http.post(url, content=body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Never sent: safe to retry, nothing can have been created.
            raise self._error(
                f"Intacct {step} failed: could not connect to {_host(url)} ({type(exc).__name__}: {exc})",
                level="transport",
                retryable=True,
            ) from None
        except httpx.TimeoutException as exc:
            raise self._error(
                f"Intacct {step} failed: no answer from {_host(url)} within {self.timeout:g} s after the request "
                f"was sent ({type(exc).__name__})"
                + ("; the gateway may have executed it" if creates else ""),
                level="transport",
                retryable=True,
                ambiguous=creates,
            ) from None
        except httpx.TransportError as exc:
            raise self._error(
                f"Intacct {step} failed: the connection to {_host(url)} broke after the request was sent "
                f"({type(exc).__name__}: {exc})" + ("; the gateway may have executed it" if creates else ""),
                level="transport",
                retryable=True,
                ambiguous=creates,
            ) from None
        root = _parse(response.content)
        if response.status_code >= 400:
            errors = _errors(root.find("errormessage")) if root is not None else ()
            rate_limited = response.status_code == 429
            server_error = response.status_code >= 500
            words = "rate limited" if rate_limited else "server error" if server_error else "request refused"
            raise self._error(
                f"Intacct {step} failed: HTTP {response.status_code} from {_host(url)} ({words})",
                level="http",
                detail=_join(errors) or _snippet(response.text),
                errors=errors,
                retryable=rate_limited or server_error,
                # A 5xx may come from a proxy after the gateway did the work (the SDK never retries 524).
                ambiguous=server_error and creates,
            )
        if root is None or root.tag != "response":
            raise self._error(
                f"Intacct {step} failed: HTTP {response.status_code} from {_host(url)} without an XML <response>",
                level="response",
                detail=_snippet(response.text),
                retryable=True,
                ambiguous=creates,
            )
        return root

    def _result(self, root: Element, control_id: str, step: str, creates: bool) -> _Result:
        """Check control, then authentication status, and return the result of function `control_id`."""
        control_status = root.findtext("control/status", "")
        if control_status != "success":
            errors = _errors(root.find("errormessage"))
            raise self._error(
                f"Intacct {step} failed: the gateway refused the request (control status "
                f"{control_status or 'missing'!r}); check the Web Services sender id and password, and the request",
                level="control",
                detail=_join(errors),
                errors=errors,
                retryable=_transient(errors),
            )
        operation = root.find("operation")
        if operation is None:
            raise self._error(
                f"Intacct {step} failed: the answer has no <operation>",
                level="response",
                retryable=True,
                ambiguous=creates,
            )
        auth_status = operation.findtext("authentication/status", "")
        if auth_status != "success":
            errors = _errors(operation.find("errormessage"))
            raise self._error(
                f"Intacct {step} failed: authentication refused (status {auth_status or 'missing'!r}); check the "
                "company id, user id and user password, and that the sender id is authorized for the company",
                level="authentication",
                detail=_join(errors),
                errors=errors,
                retryable=_transient(errors),
            )
        for result in operation.findall("result"):
            if result.findtext("controlid", "") == control_id:
                return _Result(
                    status=result.findtext("status", "").strip(),
                    function=result.findtext("function", "").strip(),
                    element=result,
                    errors=_errors(result.find("errormessage")),
                )
        raise self._error(
            f"Intacct {step} failed: the answer holds no result for function control id {control_id!r}",
            level="response",
            retryable=True,
            ambiguous=creates,
        )

    def _result_error(self, step: str, result: _Result) -> IntacctError:
        return self._error(
            f"Intacct {step} failed: the gateway answered {result.status or 'no status'!r} for "
            f"{result.function or 'the function'}",
            level="result",
            detail=_join(result.errors),
            errors=result.errors,
            retryable=_transient(result.errors),
        )

    def _retrying(self, fn: Callable[[], T]) -> T:
        attempts = 0

        def counted() -> T:
            nonlocal attempts
            attempts += 1
            return fn()

        retryer = Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, PostingError) and e.retryable),
            stop=stop_after_attempt(self.max_retries + 1),
            wait=wait_exponential(multiplier=self.backoff_initial, max=self.backoff_max)
            + wait_random(0, self.backoff_initial),
            before_sleep=lambda state: log.warning(
                "%s; retrying (attempt %d of %d)",
                state.outcome.exception() if state.outcome else "Intacct call failed",
                state.attempt_number + 1,
                self.max_retries + 1,
            ),
            reraise=True,
        )
        try:
            return retryer(counted)
        except IntacctError as exc:
            if exc.retryable and attempts > 1:
                exc.args = (f"{exc.args[0]} (gave up after {attempts} attempts)",)
            raise

    # ------------------------------------------------------------------ building

    def _glbatch_function(self, entry: JournalEntry, control_id: str, dims: set[str], step: str) -> Element:
        # Element names and order follow the SDKs' JournalEntryCreate / JournalEntryLineCreate writers.
        function = Element("function", controlid=control_id)
        batch = SubElement(SubElement(function, "create"), "GLBATCH")
        self._text(batch, "JOURNAL", self.journal, step)
        self._text(batch, "BATCH_DATE", entry.entry_date.strftime(_IA_DATE_FORMAT), step)
        self._text(batch, "BATCH_TITLE", entry.name, step)
        lines = SubElement(batch, "ENTRIES")
        for item in entry.items:
            line = SubElement(lines, "GLENTRY")
            self._text(line, "ACCOUNTNO", item.account_id, step)
            self._text(line, "TR_TYPE", "1" if item.side == "DEBIT" else "-1", step)
            self._text(line, "TRX_AMOUNT", item.amount, step)  # positive cents as "1234.50"
            if entry.currency:
                self._text(line, "CURRENCY", entry.currency, step)
                # The SDKs write an empty EXCH_RATE_TYPE_ID when only CURRENCY is set.
                self._text(line, "EXCH_RATE_TYPE_ID", "", step)
            values = {"Location": item.location_id, "Department": item.department_id, "Class": item.class_id}
            for dimension in DIMENSIONS:  # SDK order: LOCATION, DEPARTMENT, …, CLASSID
                if dimension in dims and values[dimension]:
                    self._text(line, _DIMENSION_ELEMENT[dimension], values[dimension] or "", step)
            if item.description:
                self._text(line, "DESCRIPTION", item.description, step)
        return function

    def _text(self, parent: Element, tag: str, value: str, step: str) -> Element:
        if _NOT_XML_CHAR.search(value):
            raise self._error(
                f"Intacct {step} not sent: the value of <{tag}> holds a control character XML cannot carry",
                level="input",
            )
        element = SubElement(parent, tag)
        element.text = value
        return element

    def _check_entry(self, entry: JournalEntry, step: str) -> None:
        if not entry.items:
            raise self._error(f"Intacct {step} not sent: the entry has no items", level="input")
        if not entry.is_balanced():
            raise self._error(
                f"Intacct {step} not sent: debits {entry.total_debit_cents} != credits "
                f"{entry.total_credit_cents} (cents)",
                level="input",
            )

    def _entity_for(self, entity_id: str | None) -> str:
        chosen = self.location_id if entity_id is None else entity_id
        return (chosen or "").strip()

    def _error(
        self,
        message: str,
        *,
        level: str,
        detail: str = "",
        errors: tuple[GatewayError, ...] = (),
        retryable: bool = False,
        ambiguous: bool = False,
    ) -> IntacctError:
        return IntacctError(
            self._redact(message),
            detail=self._redact(detail),
            level=level,
            errors=errors,
            retryable=retryable,
            ambiguous=ambiguous,
        )

    def _redact(self, text: str) -> str:
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            if secret and secret in text:
                text = text.replace(secret, "***")
        return text


# ---------------------------------------------------------------------- helpers


def _normalise_dimensions(dimensions: Iterable[str]) -> set[str]:
    by_lower = {d.lower(): d for d in DIMENSIONS}
    chosen = set()
    for name in dimensions:
        canonical = by_lower.get(name.strip().lower())
        if canonical is None:
            raise ValueError(f"unknown posting dimension {name!r}; expected some of {', '.join(DIMENSIONS)}")
        chosen.add(canonical)
    return chosen


def _parse(content: bytes) -> Element | None:
    if not content.strip():
        return None
    try:
        return SafeET.fromstring(content)
    except (SafeET.ParseError, DefusedXmlException, ValueError):
        return None


def _errors(errormessage: Element | None) -> tuple[GatewayError, ...]:
    if errormessage is None:
        return ()
    found = []
    for error in errormessage.findall("error"):
        parts = [
            (error.findtext(tag) or "").strip()
            for tag in ("errorno", "description", "description2", "correction")
        ]
        parts[2] = _SUPPORT_ID.sub(lambda m: f"[Support ID: {unquote(m.group(1))}]", parts[2])
        found.append(GatewayError(*parts))
    return tuple(found)


def _created_key(result: Element) -> str | None:
    # Generic create answers <data listtype="objects" count="1"><glbatch><RECORDNO>…; legacy create_* <key>.
    data = result.find("data")
    if data is not None:
        for record in data:
            key = (record.findtext("RECORDNO") or "").strip()
            if key:
                return key
    key = (result.findtext("key") or "").strip()
    return key or None


def _is_duplicate(errors: Iterable[GatewayError]) -> bool:
    return any(_DUPLICATE_TEXT.search(f"{e.description} {e.description2}") for e in errors)


def _transient(errors: Iterable[GatewayError]) -> bool:
    return any(
        e.errorno in _TRANSIENT_ERRORNOS or _TRANSIENT_TEXT.search(f"{e.description} {e.description2}")
        for e in errors
    )


def _join(errors: Iterable[GatewayError]) -> str:
    return "; ".join(str(e) for e in errors)


def _quote(value: str) -> str:
    # readByQuery string literal; the SDK's EqualToString escapes ' with a backslash (addcslashes).
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _snippet(text: str, limit: int = 500) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "…"


def _host(url: str) -> str:
    try:
        return httpx.URL(url).host or url
    except Exception:  # noqa: BLE001 - only for the message
        return url


def _entity_words(entity: str) -> str:
    return f" in entity {entity!r}" if entity else ""
