"""A stateful Sage Intacct XML Web Services gateway (API 3.0) on loopback, for tests.

It answers `POST /ia/xml/xmlgw.phtml` like the real gateway as far as the reference describes it
(`shared/reference/intacct/README.md` and its `samples/`): it validates the request envelope (element
order and required elements of `v3.0/api.xsd` for request, control, operation, authentication, login,
content, function, getAPISession), checks the sender credentials (control) and the user credentials or
session (authentication), issues sessions at a second endpoint, keeps a ledger of created GLBATCHes,
honours `uniqueid=true` on function controlids, and answers `readByQuery` on GLBATCH. Responses copy the
sample shapes element for element: control → operation/authentication → result, with `errormessage/error
(errorno, description, description2, correction)` at the level that failed.

Faults are injected here, on the wire, never in the client: HTTP 5xx/429, dropped connections, stalls
after the work is done, control/authentication/result failures and session expiry, each for the next N
requests (optionally only those carrying a given function).

    with IntacctGatewayEmulator() as gateway:
        client = IntacctClient(**gateway.client_kwargs(), backoff_initial=0.001)
        gateway.stall(2.0, on="create")  # the next create is executed, then answered too late
        ...
        assert len(gateway.batches) == 1

Where the reference is silent the emulator makes a choice, marked "NOT IN THE REFERENCE" below, and
uses error numbers starting with "EMU-" so no one mistakes them for Intacct's own.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit
from xml.etree.ElementTree import Element, SubElement, tostring

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

INITIAL_PATH = "/ia/xml/xmlgw.phtml"
SESSION_PATH = "/session-gw/ia/xml/xmlgw.phtml"  # the `<endpoint>` getAPISession hands out

ErrorSpec = tuple[str, str, str, str]  # errorno, description, description2, correction

# Errors the reference documents, with their real numbers and words.
ERR_SIGN_IN: ErrorSpec = ("XL03000006", "", "Sign-in information is incorrect", "")
ERR_DEMO_EXPIRED: ErrorSpec = ("PL04000055", "", "This company is a demo company and has expired.", "")
ERR_ROLLED_BACK: ErrorSpec = (
    "XL03000009",
    "",
    "The entire transaction in this operation has been rolled back due to an error.",
    "",
)
# NOT IN THE REFERENCE: the wording for wrong sender credentials (code as in the transport-policy sample).
ERR_SENDER: ErrorSpec = ("XL03000006", "", "Incorrect Intacct XML Partner ID or password.", "")
DUPLICATE_ERRORNO = "EMU-DUPLICATE-CONTROLID"

_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_XML_TYPE = "text/xml; charset=UTF-8"

# v3.0/api.xsd sequences (tag, min, max; None = unbounded), as quoted in the reference §1.2.
_REQUEST_SEQ = [("control", 1, 1), ("operation", 1, None)]
_CONTROL_SEQ = [
    ("appid", 0, 1),
    ("senderid", 1, 1),
    ("password", 0, 1),
    ("controlid", 1, 1),
    ("uniqueid", 0, 1),
    ("dtdversion", 0, 1),
    ("policyid", 0, 1),
    ("debug", 0, 1),
    ("includewhitespace", 0, 1),
    ("showadditionalerrorinfo", 0, 1),
]
_OPERATION_SEQ = [("authentication", 1, 1), ("preferences", 0, None), ("content", 0, None)]
_LOGIN_SEQ = [
    ("userid", 1, 1),
    ("companyid", 1, 1),
    ("password", 1, 1),
    ("clientid", 0, 1),
    ("locationid", 0, 1),
]
_GETAPISESSION_SEQ = [("locationid", 0, 1)]
_READBYQUERY_CHILDREN = {"object", "query", "fields", "pagesize", "returnFormat", "docparid"}

# GLBATCH / GLENTRY elements the SDKs write (reference §1.4 tables) plus the extras seen in use.
_GLBATCH_FIELDS = {
    "JOURNAL",
    "BATCH_DATE",
    "REVERSEDATE",
    "BATCH_TITLE",
    "HISTORY_COMMENT",
    "REFERENCENO",
    "BASELOCATION_NO",
    "SUPDOCID",
    "STATE",
    "ENTRIES",
    "TAXIMPLICATIONS",
    "TAXSOLUTIONID",
}
_GLENTRY_FIELDS = {
    "DOCUMENT",
    "ACCOUNTNO",
    "TR_TYPE",
    "TRX_AMOUNT",
    "CURRENCY",
    "EXCH_RATE_DATE",
    "EXCH_RATE_TYPE_ID",
    "EXCHANGE_RATE",
    "ALLOCATION",
    "SPLIT",
    "LOCATION",
    "DEPARTMENT",
    "PROJECTID",
    "TASKID",
    "CUSTOMERID",
    "VENDORID",
    "EMPLOYEEID",
    "ITEMID",
    "CLASSID",
    "CONTRACTID",
    "WAREHOUSEID",
    "DESCRIPTION",
    "BILLABLE",
    "COSTTYPEID",
    "TAXENTRIES",
}
_QUERYABLE = (
    "RECORDNO",
    "BATCHNO",
    "BATCH_TITLE",
    "JOURNAL",
    "BATCH_DATE",
    "STATE",
    "WHENCREATED",
    "REFERENCENO",
    "MEGAENTITYID",
)
_IA_DATE = re.compile(r"^\d{2}/\d{2}/\d{4}$")
_AMOUNT = re.compile(r"^\d+(\.\d{1,2})?$")
_CONDITION = re.compile(r"\s*\(?\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*'((?:[^'\\]|\\.)*)'\s*\)?\s*", re.DOTALL)
_AND = re.compile(r"AND\b", re.IGNORECASE)


# ---------------------------------------------------------------------- the ledger


@dataclass(frozen=True)
class GlEntryRecord:
    fields: dict[str, str]

    def get(self, name: str) -> str | None:
        return self.fields.get(name)

    @property
    def account_no(self) -> str:
        return self.fields["ACCOUNTNO"]

    @property
    def tr_type(self) -> int:
        return int(self.fields["TR_TYPE"])

    @property
    def amount(self) -> Decimal:
        return Decimal(self.fields["TRX_AMOUNT"])


@dataclass(frozen=True)
class GlBatchRecord:
    recordno: str
    batchno: int
    journal: str
    batch_date: str  # as sent, m/d/Y
    batch_title: str
    entity: str  # "" = top level
    state: str
    control_id: str
    when_created: str
    header: dict[str, str]
    entries: tuple[GlEntryRecord, ...]

    @property
    def total_debit(self) -> Decimal:
        return sum((e.amount for e in self.entries if e.tr_type == 1), Decimal(0))

    @property
    def total_credit(self) -> Decimal:
        return sum((e.amount for e in self.entries if e.tr_type == -1), Decimal(0))

    def is_balanced(self) -> bool:
        return self.total_debit == self.total_credit

    def field(self, name: str) -> str:
        values = {
            "RECORDNO": self.recordno,
            "BATCHNO": str(self.batchno),
            "BATCH_TITLE": self.batch_title,
            "JOURNAL": self.journal,
            "BATCH_DATE": self.batch_date,
            "STATE": self.state,
            "WHENCREATED": self.when_created,
            "REFERENCENO": self.header.get("REFERENCENO", ""),
            "MEGAENTITYID": self.entity,
        }
        return values[name]


@dataclass
class LoggedRequest:
    """One HTTP request as the gateway saw it (the raw body includes passwords: test use only)."""

    path: str
    content_type: str
    body: bytes
    senderid: str | None = None
    uniqueid: str | None = None
    auth: str | None = None  # "login" | "sessionid" | "oauth"
    login_locationid: str | None = None
    sessionid: str | None = None
    functions: list[tuple[str, str]] = field(default_factory=list)  # (function, controlid)
    outcome: str = ""  # ok | invalid | control-failure | auth-failure | http-<n> | dropped | stalled
    results: list[tuple[str, str, str]] = field(default_factory=list)  # (function, controlid, status)
    errornos: list[str] = field(default_factory=list)

    @property
    def function_names(self) -> list[str]:
        return [name for name, _ in self.functions]


# ---------------------------------------------------------------------- internals


@dataclass
class _Fault:
    kind: str  # http | drop | stall | control | auth
    on: str | None  # only requests carrying this function; None = any request
    remaining: int
    status: int = 0
    after_execute: bool = False
    seconds: float = 0.0
    error: ErrorSpec = ERR_SIGN_IN


@dataclass
class _ResultFault:
    function: str
    remaining: int
    errors: list[ErrorSpec]


@dataclass
class _Session:
    session_id: str
    userid: str
    companyid: str
    entity: str
    created: str
    expires_at: float


@dataclass
class _Function:
    controlid: str
    name: str
    body: Element


@dataclass
class _Operation:
    transaction: bool
    auth_kind: str
    login: dict[str, str | None] | None
    sessionid: str | None
    functions: list[_Function]


@dataclass
class _Envelope:
    senderid: str
    password: str
    controlid: str
    uniqueid_text: str | None
    dtdversion: str
    operations: list[_Operation]

    @property
    def unique(self) -> bool:
        return self.uniqueid_text == "true"


@dataclass
class _Auth:
    ok: bool
    userid: str
    companyid: str
    entity: str
    session: _Session | None = None
    error: ErrorSpec = ERR_SIGN_IN


@dataclass
class _Outcome:
    status: str
    function: str
    controlid: str
    data: Element | None = None
    errors: list[ErrorSpec] = field(default_factory=list)
    undo: Callable[[], None] | None = None


class _Invalid(Exception):
    """The request does not satisfy the schema: answered as an XL03000003 control failure."""


class _QueryFailed(Exception):
    pass


# ---------------------------------------------------------------------- the gateway


class IntacctGatewayEmulator:
    """Start with `start()` (or `with`); `url` is the initial endpoint, `batches` the ledger."""

    def __init__(
        self,
        *,
        sender_id: str = "revrec_sender",
        sender_password: str = "S3nder&<pass>'\"",
        company_id: str = "REVREC-TEST",
        user_id: str = "ws_revrec",
        user_password: str = "Us3r&<päss>'\"",
        journals: Iterable[str] | None = ("APJ", "GJ"),
        entities: Iterable[str] | None = None,
        session_ttl: float = 3600.0,
        first_recordno: int = 1001,
    ) -> None:
        self.sender_id = sender_id
        self.sender_password = sender_password
        self.company_id = company_id
        self.user_id = user_id
        self.user_password = user_password
        self.journals = set(journals) if journals is not None else None  # None = any journal
        self.entities = set(entities) if entities is not None else None  # None = any entity id
        self.session_ttl = session_ttl
        self._next_recordno = first_recordno
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._batches: list[GlBatchRecord] = []
        self._requests: list[LoggedRequest] = []
        self._sessions: dict[str, _Session] = {}
        self._executed: set[tuple[str, str]] = set()  # (company, function controlid) completed
        self._faults: list[_Fault] = []
        self._result_faults: list[_ResultFault] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> IntacctGatewayEmulator:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 30  # idle keep-alive connections end on their own
            disable_nagle_algorithm = True  # headers and body are separate writes

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                gateway._serve(self)

            def do_GET(self) -> None:  # noqa: N802
                _respond(self, 405, b"POST only", "text/plain")

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="intacct-gateway",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes stalled handlers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> IntacctGatewayEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the gateway emulator is not started")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """The initial endpoint (the client's `endpoint_url`)."""
        return f"http://127.0.0.1:{self.port}{INITIAL_PATH}"

    @property
    def session_endpoint(self) -> str:
        """The endpoint getAPISession returns; session requests are expected here."""
        return f"http://127.0.0.1:{self.port}{SESSION_PATH}"

    def client_kwargs(self) -> dict[str, str]:
        """Endpoint and credentials for `IntacctClient(**gateway.client_kwargs(), ...)`."""
        return {
            "endpoint_url": self.url,
            "sender_id": self.sender_id,
            "sender_password": self.sender_password,
            "company_id": self.company_id,
            "user_id": self.user_id,
            "user_password": self.user_password,
        }

    # ------------------------------------------------------------------ state

    @property
    def batches(self) -> list[GlBatchRecord]:
        with self._lock:
            return list(self._batches)

    @property
    def requests(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def issued_session_ids(self) -> list[str]:
        with self._lock:
            return list(self._sessions)

    def requests_with(self, function: str) -> list[LoggedRequest]:
        return [r for r in self.requests if function in r.function_names]

    # ------------------------------------------------------------------ fault injection

    def fail_http(
        self, status: int, *, times: int = 1, on: str | None = None, after_execute: bool = False
    ) -> None:
        """The next `times` requests (carrying function `on`) answer HTTP `status` (500, 502, 429, …).

        With `after_execute` the request is executed first (a proxy error after the work, like a 524).
        A 429 carries the documented GW-0010 body; 5xx an HTML page, as a proxy would.
        """
        self._add_fault(_Fault("http", on, times, status=status, after_execute=after_execute))

    def drop_connection(self, *, times: int = 1, on: str | None = None, after_execute: bool = False) -> None:
        """Close the connection without an answer, before or after executing the request."""
        self._add_fault(_Fault("drop", on, times, after_execute=after_execute))

    def stall(self, seconds: float, *, times: int = 1, on: str | None = "create") -> None:
        """Execute the request (e.g. create the batch), then wait `seconds` before answering."""
        self._add_fault(_Fault("stall", on, times, seconds=seconds, after_execute=True))

    def fail_control(
        self, *, times: int = 1, on: str | None = None, error: ErrorSpec = ERR_DEMO_EXPIRED
    ) -> None:
        """Refuse the next requests at the control level (response/control/status failure)."""
        self._add_fault(_Fault("control", on, times, error=error))

    def fail_authentication(
        self, *, times: int = 1, on: str | None = None, error: ErrorSpec = ERR_SIGN_IN
    ) -> None:
        """Refuse the next requests at operation/authentication (login or session)."""
        self._add_fault(_Fault("auth", on, times, error=error))

    def fail_result(
        self, errors: Sequence[ErrorSpec] | None = None, *, times: int = 1, function: str = "create"
    ) -> None:
        """The next `times` functions named `function` answer result status failure with `errors`."""
        chosen = list(errors) if errors else [("EMU-RESULT-FAILURE", "", "Injected result failure", "")]
        with self._lock:
            self._result_faults.append(_ResultFault(function, times, chosen))

    def expire_sessions(self) -> None:
        """Every session issued so far is expired from now on (the next use fails authentication)."""
        with self._lock:
            for session in self._sessions.values():
                session.expires_at = 0.0

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._result_faults.clear()

    def _add_fault(self, fault: _Fault) -> None:
        if fault.remaining < 1:
            raise ValueError("times must be >= 1")
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, functions: list[str], kinds: Iterable[str]) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.kind in kinds and (fault.on is None or fault.on in functions):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _take_result_fault(self, function: str) -> _ResultFault | None:
        for fault in self._result_faults:
            if fault.function == function:
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._result_faults.remove(fault)
                return fault
        return None

    # ------------------------------------------------------------------ HTTP

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        path = urlsplit(handler.path).path
        if path not in (INITIAL_PATH, SESSION_PATH):
            _respond(handler, 404, b"Not Found", "text/plain")
            return
        record = LoggedRequest(path=path, content_type=handler.headers.get("Content-Type", ""), body=body)
        with self._lock:
            self._requests.append(record)

        envelope: _Envelope | None = None
        early: tuple[int, bytes] | None = None
        try:
            envelope = self._parse(body, record)
        except _Invalid as exc:
            early = self._invalid_response(body, str(exc))
            record.outcome = "invalid"

        # An invalid request is never executed, so only the faults that do not need execution apply to it.
        kinds = ("http", "drop") if early is not None else ("http", "drop", "stall", "control", "auth")
        fault = self._take_fault(record.function_names, kinds)
        if fault is not None and not fault.after_execute and fault.kind in ("http", "drop"):
            self._deliver_fault(handler, fault, record)
            return
        if early is not None:
            _respond(handler, early[0], early[1], _XML_TYPE)
            return
        assert envelope is not None
        with self._lock:
            response = self._execute(envelope, record, fault)
        if fault is not None and fault.after_execute and fault.kind in ("http", "drop"):
            self._deliver_fault(handler, fault, record)
            return
        if fault is not None and fault.kind == "stall":
            record.outcome = "stalled"
            self._stopping.wait(fault.seconds)
        _respond(handler, 200, response, _XML_TYPE)

    def _deliver_fault(self, handler: BaseHTTPRequestHandler, fault: _Fault, record: LoggedRequest) -> None:
        if fault.kind == "drop":
            record.outcome = "dropped"
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
            return
        record.outcome = f"http-{fault.status}"
        if fault.status == 429:
            # Reference §1.1: "gateway error GW-0010 means HTTP 429"; shape of the GW-0011 docs sample.
            root = Element("response")
            SubElement(SubElement(root, "control"), "status").text = "failure"
            error = SubElement(SubElement(root, "errormessage"), "error")
            SubElement(error, "errorno").text = "GW-0010"
            SubElement(
                error, "description"
            ).text = f"API rate limit exceeded [Request ID: {secrets.token_hex(6)}]"
            _respond(handler, 429, _serialize(root), _XML_TYPE, close=True)
            return
        try:
            phrase = HTTPStatus(fault.status).phrase
        except ValueError:
            phrase = "Error"
        page = f"<html><body><h1>{fault.status} {phrase}</h1></body></html>".encode()
        _respond(handler, fault.status, page, "text/html; charset=UTF-8", close=True)

    # ------------------------------------------------------------------ parsing and validation

    def _parse(self, body: bytes, record: LoggedRequest) -> _Envelope:
        if not body.strip():
            raise _Invalid("XML Parse error: empty request body")
        try:
            root = SafeET.fromstring(body)
        except (SafeET.ParseError, DefusedXmlException, ValueError) as exc:
            raise _Invalid(f"XML Parse error: {exc}") from None
        if root.tag != "request":
            raise _Invalid(
                f"XML Parse schema error: Element '{root.tag}': No matching global declaration available "
                "for the validation root."
            )
        _check_sequence(root, _REQUEST_SEQ)
        control = root.find("control")
        assert control is not None
        _check_sequence(control, _CONTROL_SEQ)
        record.senderid = _text(control, "senderid")
        record.uniqueid = control.findtext("uniqueid")
        controlid = _text(control, "controlid")
        if not 1 <= len(controlid) <= 256:
            raise _Invalid("XML Parse schema error: Element 'controlid': must be 1 to 256 characters.")
        uniqueid = control.findtext("uniqueid")
        if uniqueid is not None and uniqueid not in ("true", "false"):
            raise _Invalid(
                f"XML Parse schema error: Element 'uniqueid': '{uniqueid}' is not a valid value of the "
                "atomic type 'xs:boolean'."
            )
        dtdversion = control.findtext("dtdversion")
        if dtdversion is None:  # optional in the XSD, required by the requests page
            raise _Invalid(
                "XML Parse schema error: Element 'control': Missing child element(s). Expected is "
                "( dtdversion )."
            )
        if dtdversion != "3.0":
            raise _Invalid(f"XML Parse schema error: dtdversion '{dtdversion}' is not emulated; use 3.0.")

        operations = []
        for op in root.findall("operation"):
            transaction = op.get("transaction", "false")
            if transaction not in ("true", "false"):
                raise _Invalid(
                    f"XML Parse schema error: Attribute 'transaction': '{transaction}' is not a valid value."
                )
            _check_sequence(op, _OPERATION_SEQ)
            auth = op.find("authentication")
            assert auth is not None
            kinds = [child.tag for child in auth]
            if len(kinds) != 1 or kinds[0] not in ("login", "sessionid", "oauth"):
                raise _Invalid(
                    "XML Parse schema error: Element 'authentication': Expected is one of ( login, "
                    "sessionid, oauth )."
                )
            login = None
            sessionid = None
            if kinds[0] == "login":
                login_el = auth.find("login")
                assert login_el is not None
                _check_sequence(login_el, _LOGIN_SEQ)
                login = {
                    "userid": _text(login_el, "userid"),
                    "companyid": _text(login_el, "companyid"),
                    "password": login_el.findtext("password") or "",
                    "locationid": login_el.findtext("locationid"),
                }
                record.login_locationid = login["locationid"]
            elif kinds[0] == "sessionid":
                sessionid = auth.findtext("sessionid") or ""
                record.sessionid = sessionid
            record.auth = kinds[0]
            functions = []
            for content in op.findall("content"):
                if len(content) == 0:
                    raise _Invalid(
                        "XML Parse schema error: Element 'content': Missing child element(s). "
                        "Expected is ( function )."
                    )
                for fn in content:
                    if fn.tag != "function":
                        raise _Invalid(
                            f"XML Parse schema error: Element '{fn.tag}': This element is not "
                            "expected. Expected is ( function )."
                        )
                    fn_controlid = fn.get("controlid")
                    if fn_controlid is None:
                        raise _Invalid(
                            "XML Parse schema error: Element 'function': The attribute 'controlid' "
                            "is required but missing."
                        )
                    if len(fn_controlid) > 256:
                        raise _Invalid(
                            "XML Parse schema error: Element 'function', attribute 'controlid': "
                            "longer than 256 characters."
                        )
                    if len(fn) != 1:
                        raise _Invalid(
                            "XML Parse schema error: Element 'function': exactly one function "
                            "element expected."
                        )
                    name = fn[0].tag
                    if name == "getAPISession":
                        _check_sequence(fn[0], _GETAPISESSION_SEQ)
                    functions.append(_Function(fn_controlid, name, fn[0]))
                    record.functions.append((name, fn_controlid))
            operations.append(_Operation(transaction == "true", kinds[0], login, sessionid, functions))
        return _Envelope(
            senderid=record.senderid or "",
            password=control.findtext("password") or "",
            controlid=controlid,
            uniqueid_text=uniqueid,
            dtdversion=dtdversion,
            operations=operations,
        )

    def _invalid_response(self, body: bytes, message: str) -> tuple[int, bytes]:
        if message.startswith("XML Parse error: empty"):
            # Shape of the GW-0011 docs sample.
            root = Element("response")
            SubElement(SubElement(root, "control"), "status").text = "failure"
            error = SubElement(SubElement(root, "errormessage"), "error")
            SubElement(error, "errorno").text = "GW-0011"
            SubElement(error, "description").text = f"Invalid Request [Request ID: {secrets.token_hex(6)}]"
            return 400, _serialize(root)
        echo = _control_echo(body)
        support = f" [Support ID: {secrets.token_urlsafe(9)}]"
        return 200, self._control_failure(echo, [("XL03000003", "", message + support, "")])

    # ------------------------------------------------------------------ execution

    def _execute(self, env: _Envelope, record: LoggedRequest, fault: _Fault | None) -> bytes:
        echo = {
            "senderid": env.senderid,
            "controlid": env.controlid,
            "uniqueid": env.uniqueid_text or "false",
            "dtdversion": env.dtdversion,
        }
        if fault is not None and fault.kind == "control":
            record.outcome = "control-failure"
            record.errornos.append(fault.error[0])
            return self._control_failure(echo, [fault.error])
        if env.senderid != self.sender_id or env.password != self.sender_password:
            record.outcome = "control-failure"
            record.errornos.append(ERR_SENDER[0])
            return self._control_failure(echo, [ERR_SENDER])

        root = Element("response")
        control = SubElement(root, "control")
        SubElement(control, "status").text = "success"
        for tag in ("senderid", "controlid", "uniqueid", "dtdversion"):
            SubElement(control, tag).text = echo[tag]
        record.outcome = "ok"
        for op in env.operations:
            self._execute_operation(root, env, op, record, fault)
        return _serialize(root)

    def _execute_operation(
        self, root: Element, env: _Envelope, op: _Operation, record: LoggedRequest, fault: _Fault | None
    ) -> None:
        op_el = SubElement(root, "operation")
        auth = self._authenticate(op, fault)
        auth_el = SubElement(op_el, "authentication")
        if not auth.ok:
            # Shape of the auth-failure sample: status, userid, companyid, locationid; errors under operation.
            record.outcome = "auth-failure"
            record.errornos.append(auth.error[0])
            SubElement(auth_el, "status").text = "failure"
            SubElement(auth_el, "userid").text = auth.userid
            SubElement(auth_el, "companyid").text = auth.companyid
            SubElement(auth_el, "locationid").text = auth.entity
            _errormessage(op_el, [auth.error])
            return
        now = datetime.now().astimezone()
        SubElement(auth_el, "status").text = "success"
        SubElement(auth_el, "userid").text = auth.userid
        SubElement(auth_el, "companyid").text = auth.companyid
        SubElement(auth_el, "locationid").text = auth.entity
        SubElement(auth_el, "sessiontimestamp").text = _iso(now)
        names = [f.name for f in op.functions]
        if "getAPISession" not in names:
            # The getAPISession sample has no sessiontimeout; the result samples carry one.
            timeout = now.timestamp() + self.session_ttl
            SubElement(auth_el, "sessiontimeout").text = _iso(datetime.fromtimestamp(timeout).astimezone())

        outcomes = [self._run(fn, env, op, auth, names) for fn in op.functions]
        if op.transaction and any(o.status != "success" for o in outcomes):
            for outcome in outcomes:
                if outcome.undo is not None:
                    outcome.undo()
                outcome.status = "aborted"
                outcome.data = None
                outcome.errors = [*outcome.errors, ERR_ROLLED_BACK]
        for outcome in outcomes:
            result = SubElement(op_el, "result")
            SubElement(result, "status").text = outcome.status
            SubElement(result, "function").text = outcome.function
            SubElement(result, "controlid").text = outcome.controlid
            if outcome.data is not None:
                result.append(outcome.data)
            if outcome.errors:
                _errormessage(result, outcome.errors)
            record.results.append((outcome.function, outcome.controlid, outcome.status))
            record.errornos.extend(e[0] for e in outcome.errors)

    def _authenticate(self, op: _Operation, fault: _Fault | None) -> _Auth:
        login = op.login or {}
        session = self._sessions.get(op.sessionid or "") if op.auth_kind == "sessionid" else None
        userid = str(login.get("userid") or (session.userid if session else ""))
        companyid = str(login.get("companyid") or (session.companyid if session else ""))
        entity = str(login.get("locationid") or (session.entity if session else ""))
        if fault is not None and fault.kind == "auth":
            return _Auth(False, userid, companyid, entity, error=fault.error)
        if op.auth_kind == "login":
            if (login.get("userid"), login.get("companyid"), login.get("password")) != (
                self.user_id,
                self.company_id,
                self.user_password,
            ):
                return _Auth(False, userid, companyid, entity)
            if entity and self.entities is not None and entity not in self.entities:
                return _Auth(False, userid, companyid, entity)
            return _Auth(True, userid, companyid, entity)
        if op.auth_kind == "sessionid":
            # NOT IN THE REFERENCE: the answer to an expired or unknown session; the documented
            # sign-in failure (XL03000006) is used for it.
            now = datetime.now().timestamp()
            if session is None or session.expires_at <= now:
                return _Auth(False, userid, companyid, entity)
            session.expires_at = now + self.session_ttl  # sliding timeout (API-sessions page)
            return _Auth(True, userid, companyid, entity, session=session)
        return _Auth(False, userid, companyid, entity)  # oauth is not emulated

    def _run(self, fn: _Function, env: _Envelope, op: _Operation, auth: _Auth, names: list[str]) -> _Outcome:
        injected = self._take_result_fault(fn.name)
        if injected is not None:
            return _Outcome("failure", fn.name, fn.controlid, errors=list(injected.errors))
        key = (self.company_id, fn.controlid)
        if env.unique and key in self._executed:
            # NOT IN THE REFERENCE: the shape of the uniqueid refusal. The requests page says the function
            # controlid "will be checked to determine if the operation was previously executed and completed";
            # the emulator refuses at result level with the sentence production clients match on.
            return _Outcome(
                "failure",
                fn.name,
                fn.controlid,
                errors=[
                    (
                        DUPLICATE_ERRORNO,
                        "",
                        f"A successful transaction has already been recorded with the control id {fn.controlid}.",
                        "",
                    )
                ],
            )
        handlers: dict[str, Callable[[_Function, _Auth, list[str]], _Outcome]] = {
            "getAPISession": self._get_api_session,
            "create": self._create,
            "readByQuery": self._read_by_query,
        }
        handler = handlers.get(fn.name)
        if handler is None:
            return _Outcome(
                "failure",
                fn.name,
                fn.controlid,
                errors=[
                    (
                        "EMU-UNKNOWN-FUNCTION",
                        "",
                        f"The emulator does not implement function {fn.name}.",
                        "",
                    )
                ],
            )
        outcome = handler(fn, auth, names)
        if outcome.status == "success":
            self._executed.add(key)
            undo = outcome.undo

            def forget(undo: Callable[[], None] | None = undo) -> None:
                self._executed.discard(key)
                if undo is not None:
                    undo()

            outcome.undo = forget
        return outcome

    def _get_api_session(self, fn: _Function, auth: _Auth, names: list[str]) -> _Outcome:
        if len(names) > 1:
            # The API-sessions page: "always isolate getAPISession in a single request". Enforced here.
            return _Outcome(
                "failure",
                fn.name,
                fn.controlid,
                errors=[
                    (
                        "EMU-SESSION-NOT-ISOLATED",
                        "",
                        "getAPISession must be the only function in its request.",
                        "",
                    )
                ],
            )
        location = fn.body.find("locationid")
        entity = (location.text or "").strip() if location is not None else auth.entity
        if entity and self.entities is not None and entity not in self.entities:
            return _Outcome(
                "failure",
                fn.name,
                fn.controlid,
                errors=[
                    (
                        "EMU-UNKNOWN-ENTITY",
                        "",
                        f"Entity {entity} not found.",
                        "",
                    )
                ],
            )
        session_id = secrets.token_urlsafe(24) + ".."
        self._sessions[session_id] = _Session(
            session_id,
            auth.userid,
            auth.companyid,
            entity,
            _iso(datetime.now().astimezone()),
            datetime.now().timestamp() + self.session_ttl,
        )
        data = Element("data")
        api = SubElement(data, "api")
        SubElement(api, "sessionid").text = session_id
        SubElement(api, "endpoint").text = self.session_endpoint
        SubElement(api, "locationid").text = entity
        return _Outcome("success", fn.name, fn.controlid, data=data)

    def _create(self, fn: _Function, auth: _Auth, names: list[str]) -> _Outcome:
        objects = list(fn.body)
        if len(objects) != 1 or objects[0].tag != "GLBATCH":
            return _Outcome(
                "failure",
                fn.name,
                fn.controlid,
                errors=[
                    (
                        "EMU-UNSUPPORTED-OBJECT",
                        "",
                        "The emulator creates exactly one GLBATCH per create.",
                        "",
                    )
                ],
            )
        errors = self._validate_glbatch(objects[0])
        if errors:
            return _Outcome("failure", fn.name, fn.controlid, errors=errors)
        batch_el = objects[0]
        header = {child.tag: child.text or "" for child in batch_el if child.tag != "ENTRIES"}
        entries_el = batch_el.find("ENTRIES")
        assert entries_el is not None
        entries = tuple(
            GlEntryRecord({child.tag: child.text or "" for child in line if len(child) == 0})
            for line in entries_el
        )
        recordno = str(self._next_recordno)
        self._next_recordno += 1
        batch = GlBatchRecord(
            recordno=recordno,
            batchno=len(self._batches) + 1,
            journal=header["JOURNAL"],
            batch_date=header["BATCH_DATE"],
            batch_title=header["BATCH_TITLE"],
            entity=auth.entity,
            state=header.get("STATE") or "Posted",
            control_id=fn.controlid,
            when_created=datetime.now().strftime("%m/%d/%Y %H:%M:%S"),
            header=header,
            entries=entries,
        )
        self._batches.append(batch)
        # Reference §1.5: <data listtype="objects" count="1"><glbatch><RECORDNO>…</RECORDNO>…</glbatch></data>.
        data = Element("data", listtype="objects", count="1")
        glbatch = SubElement(data, "glbatch")
        for name in ("RECORDNO", "BATCHNO", "BATCH_TITLE", "JOURNAL", "BATCH_DATE", "STATE", "WHENCREATED"):
            SubElement(glbatch, name).text = batch.field(name)

        def undo() -> None:
            self._batches.remove(batch)

        return _Outcome("success", fn.name, fn.controlid, data=data, undo=undo)

    def _validate_glbatch(self, batch: Element) -> list[ErrorSpec]:
        # NOT IN THE REFERENCE: Intacct's own validation messages for GLBATCH (none captured); these are the
        # emulator's, over the field lists of reference §1.4.
        problems = []
        for child in batch:
            if child.tag not in _GLBATCH_FIELDS:
                problems.append(f"GLBATCH field {child.tag} is not a valid field.")
        journal = _text(batch, "JOURNAL")
        if not journal:
            problems.append("JOURNAL is required.")
        elif self.journals is not None and journal not in self.journals:
            problems.append(f"Journal {journal} does not exist.")
        batch_date = _text(batch, "BATCH_DATE")
        if not _valid_ia_date(batch_date):
            problems.append(f"BATCH_DATE '{batch_date}' is not a date in the format mm/dd/yyyy.")
        if not _text(batch, "BATCH_TITLE"):
            problems.append("BATCH_TITLE is required.")
        entries = batch.find("ENTRIES")
        lines = list(entries) if entries is not None else []
        if len(lines) < 2:
            problems.append("A journal entry must have at least 2 lines.")
        debit = credit = Decimal(0)
        for number, line in enumerate(lines, start=1):
            if line.tag != "GLENTRY":
                problems.append(f"ENTRIES may hold only GLENTRY, not {line.tag}.")
                continue
            for child in line:
                if child.tag not in _GLENTRY_FIELDS:
                    problems.append(f"Line {number}: GLENTRY field {child.tag} is not a valid field.")
            if not _text(line, "ACCOUNTNO"):
                problems.append(f"Line {number}: ACCOUNTNO is required.")
            tr_type = _text(line, "TR_TYPE")
            amount = _text(line, "TRX_AMOUNT")
            if tr_type not in ("1", "-1"):
                problems.append(f"Line {number}: TR_TYPE must be 1 (debit) or -1 (credit), not '{tr_type}'.")
            if not _AMOUNT.match(amount):
                problems.append(
                    f"Line {number}: TRX_AMOUNT '{amount}' is not a positive amount with at most 2 decimals."
                )
            elif tr_type == "1":
                debit += Decimal(amount)
            elif tr_type == "-1":
                credit += Decimal(amount)
        if not problems and debit != credit:
            problems.append(f"The entry is out of balance: debits {debit}, credits {credit}.")
        return [("EMU-GLBATCH-INVALID", "Could not create GLBATCH record!", p, "") for p in problems]

    def _read_by_query(self, fn: _Function, auth: _Auth, names: list[str]) -> _Outcome:
        body = fn.body
        try:
            for child in body:
                if child.tag not in _READBYQUERY_CHILDREN:
                    raise _QueryFailed(f"Element {child.tag} is not allowed in readByQuery")
            object_name = _text(body, "object")
            if object_name.upper() != "GLBATCH":
                # As in the aborted-transaction sample.
                raise _QueryFailed(f"Object definition {object_name} not found")
            if body.find("query") is None:
                raise _QueryFailed("readByQuery requires a query element")
            conditions = _parse_query(body.findtext("query") or "")
            fields_text = _text(body, "fields") or "*"
            fields = (
                list(_QUERYABLE)
                if fields_text == "*"
                else [f.strip().upper() for f in fields_text.split(",")]
            )
            for name in [*fields, *(c[0] for c in conditions)]:
                if name not in _QUERYABLE:
                    raise _QueryFailed(f"Invalid field {name} for object GLBATCH")
            page_text = _text(body, "pagesize") or "1000"
            if not page_text.isdigit() or not 1 <= int(page_text) <= 1000:
                raise _QueryFailed(f"pagesize {page_text} must be 1 to 1000")
            if (_text(body, "returnFormat") or "xml") != "xml":
                raise _QueryFailed("The emulator answers returnFormat xml only")
        except _QueryFailed as exc:
            return _Outcome("failure", fn.name, fn.controlid, errors=[("Query Failed", "", str(exc), "")])
        visible = [b for b in self._batches if not auth.entity or b.entity == auth.entity]
        matches = [b for b in visible if all(b.field(name) == value for name, value in conditions)]
        page = matches[: int(page_text)]
        # NOT IN THE REFERENCE: readByQuery's <data> attributes; taken from the .NET SDK's readByQuery
        # fixture (listtype, count, totalcount, numremaining, resultId), records named like the read sample.
        data = Element(
            "data",
            listtype=object_name,
            count=str(len(page)),
            totalcount=str(len(matches)),
            numremaining=str(len(matches) - len(page)),
            resultId="",
        )
        for batch in page:
            record = SubElement(data, object_name)
            for name in fields:
                SubElement(record, name).text = batch.field(name)
        return _Outcome("success", fn.name, fn.controlid, data=data)

    # ------------------------------------------------------------------ response pieces

    def _control_failure(self, echo: dict[str, str] | None, errors: list[ErrorSpec]) -> bytes:
        root = Element("response")
        control = SubElement(root, "control")
        SubElement(control, "status").text = "failure"
        if echo is None:  # nothing readable: the PL04000055 sample's empty senderid/controlid
            SubElement(control, "senderid").text = ""
            SubElement(control, "controlid").text = ""
        else:  # the transport-policy / parse-error samples
            for tag in ("senderid", "controlid", "uniqueid", "dtdversion"):
                SubElement(control, tag).text = echo.get(tag, "")
        _errormessage(root, errors)
        return _serialize(root)


# ---------------------------------------------------------------------- helpers


def _respond(
    handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str, *, close: bool = False
) -> None:
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        if close:
            handler.send_header("Connection", "close")
            handler.close_connection = True
        handler.end_headers()
        handler.wfile.write(body)
        handler.wfile.flush()
    except OSError:  # the client gave up (timeout): nothing to tell it
        handler.close_connection = True


def _serialize(root: Element) -> bytes:
    return _XML_DECLARATION + tostring(root, encoding="utf-8", short_empty_elements=False)


def _errormessage(parent: Element, errors: Iterable[ErrorSpec]) -> None:
    errormessage = SubElement(parent, "errormessage")
    for errorno, description, description2, correction in errors:
        error = SubElement(errormessage, "error")
        SubElement(error, "errorno").text = errorno
        SubElement(error, "description").text = description
        SubElement(error, "description2").text = description2
        SubElement(error, "correction").text = correction


def _check_sequence(parent: Element, spec: list[tuple[str, int, int | None]]) -> None:
    children = list(parent)
    i = 0
    for tag, low, high in spec:
        count = 0
        while i < len(children) and children[i].tag == tag and (high is None or count < high):
            i += 1
            count += 1
        if count < low:
            if i < len(children):
                raise _Invalid(
                    f"XML Parse schema error: Element '{children[i].tag}': This element is not "
                    f"expected. Expected is ( {tag} )."
                )
            raise _Invalid(
                f"XML Parse schema error: Element '{parent.tag}': Missing child element(s). "
                f"Expected is ( {tag} )."
            )
    if i < len(children):
        raise _Invalid(f"XML Parse schema error: Element '{children[i].tag}': This element is not expected.")


def _control_echo(body: bytes) -> dict[str, str] | None:
    try:
        root = SafeET.fromstring(body)
    except (SafeET.ParseError, DefusedXmlException, ValueError):
        return None
    control = root.find("control")
    if control is None:
        return None
    return {tag: control.findtext(tag) or "" for tag in ("senderid", "controlid", "uniqueid", "dtdversion")}


def _text(parent: Element, tag: str) -> str:
    return (parent.findtext(tag) or "").strip()


def _valid_ia_date(value: str) -> bool:
    if not _IA_DATE.match(value):
        return False
    try:
        datetime.strptime(value, "%m/%d/%Y")
    except ValueError:
        return False
    return True


def _parse_query(query: str) -> list[tuple[str, str]]:
    """`FIELD = 'value' [AND FIELD = 'value' …]`, backslash escapes (the SDK's EqualToString)."""
    query = query.strip()
    conditions: list[tuple[str, str]] = []
    position = 0
    while position < len(query):
        match = _CONDITION.match(query, position)
        if match is None:
            raise _QueryFailed(
                f"The emulator understands FIELD = 'value' joined by AND; cannot read: "
                f"{query[position:][:60]}"
            )
        conditions.append((match.group(1).upper(), re.sub(r"\\(.)", r"\1", match.group(2), flags=re.DOTALL)))
        position = match.end()
        if position < len(query):
            joiner = _AND.match(query, position)
            if joiner is None:
                raise _QueryFailed(f"Expected AND at: {query[position:][:60]}")
            position = joiner.end()
    return conditions


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
