"""Contract tests against the real Rillet OpenAPI document, served by Stoplight Prism.

1. `prism mock` validates every request the client makes (query parameters, headers, body) and
   answers 422 with an `sl-violations` header when one breaks the schema.
2. `prism proxy` in front of the emulator validates the emulator's answers too, so the emulator the
   behaviour tests rely on speaks the spec's shapes.
3. Prism accepts properties and query parameters the spec does not declare, so the requests are also
   checked here, strictly: every name the client sends must be declared in the document.

Prism is installed by `bash .ci/install-prism.sh` into `node_modules/`; without it these tests fail
in CI (REVREC_CI=1) and skip elsewhere. Prism starts once per module.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from revrec_pipelines.lib.posting_model import JournalEntry, JournalEntryItem
from revrec_pipelines.lib.rillet import ENDPOINTS, DimensionField, RilletClient, dimension_fields
from revrec_pipelines_tests.emulators.rillet_emulator import RilletEmulator, customer, sample_seed
from revrec_pipelines_tests.support import free_port, require

REPO = Path(__file__).resolve().parents[1]
SPEC_PATH = Path(__file__).resolve().parents[2] / "shared" / "reference" / "rillet" / "openapi.json"
API_KEY = "rk_contract_7b1e2d"
UUID_A = "3f2b1c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
UUID_B = "9a8b7c6d-5e4f-4321-8fed-cba987654321"
# The spec's oneOf unions with a discriminator but no `const` on it (Price, Invoicing, Discount,
# BillingScheme): a valid FIXED_RECURRING price also matches OneTimePrice, a YEARLY invoicing also
# matches QUARTERLY and SEMI_ANNUAL. Prism (ajv) ignores discriminators, so it flags every such object;
# these are checked here by their discriminator instead.
DISCRIMINATED = {
    "price": "Price",
    "invoicing": "Invoicing",
    "discount": "Discount",
    "billing_scheme": "BillingScheme",
}


# -- Prism ---------------------------------------------------------------------------------------


def prism_binary() -> str | None:
    local = REPO / "node_modules" / ".bin" / "prism"
    return str(local) if local.exists() else shutil.which("prism")


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    require(SPEC_PATH.exists(), f"the Rillet OpenAPI document ({SPEC_PATH})")
    return json.loads(SPEC_PATH.read_text())


def start_prism(args: list[str], log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = prism_binary()
    require(binary is not None, "Stoplight Prism (bash .ci/install-prism.sh)")
    port = free_port()
    log = log_path.open("wb")
    process = subprocess.Popen(
        [str(binary), *args, "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"Prism exited with {process.returncode}:\n{log_path.read_text()}", pytrace=False)
        try:
            httpx.get(f"{base_url}/health", timeout=1)
            return process, base_url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    pytest.fail(f"Prism did not listen within 60 s:\n{log_path.read_text()}", pytrace=False)


def stop_prism(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def prism_mock(spec, tmp_path_factory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("prism") / "mock.log"
    process, base_url = start_prism(["mock", str(SPEC_PATH)], log)
    yield base_url
    stop_prism(process)


@pytest.fixture(scope="module")
def emulator() -> Iterator[RilletEmulator]:
    with RilletEmulator(api_key=API_KEY) as rillet:
        rillet.seed(**sample_seed())
        rillet.seed(customers=[customer(f"Customer {i}") for i in range(3)])
        rillet.page_size_cap = 2  # several pages, so next_cursor appears in the answers
        yield rillet


@pytest.fixture(scope="module")
def prism_proxy(spec, emulator, tmp_path_factory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("prism") / "proxy.log"
    process, base_url = start_prism(["proxy", str(SPEC_PATH), emulator.base_url], log)
    yield base_url
    stop_prism(process)


# -- recording what went over the wire ---------------------------------------------------------------


@dataclass
class Exchange:
    method: str
    path: str
    query: list[tuple[str, str]]
    body: Any
    status: int
    violations: list[dict[str, Any]]
    response_body: Any

    def describe(self) -> str:
        return f"{self.method} {self.path}?{self.query} -> {self.status} {json.dumps(self.violations)[:1500]}"


class RecordingTransport(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.exchanges: list[Exchange] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        response.read()
        url = urlsplit(str(request.url))
        self.exchanges.append(
            Exchange(
                method=request.method,
                path=url.path,
                query=parse_qsl(url.query, keep_blank_values=True),
                body=json.loads(request.content) if request.content else None,
                status=response.status_code,
                violations=json.loads(response.headers.get("sl-violations", "[]")),
                response_body=json.loads(response.content) if response.content else None,
            )
        )
        return response


def recording_client(base_url: str, api_key: str = API_KEY) -> tuple[RilletClient, RecordingTransport]:
    transport = RecordingTransport()
    client = RilletClient(
        base_url,
        api_key,
        timeout=10.0,
        max_requests_per_minute=10_000,
        max_retries=0,
        sleep=lambda _s: None,
        transport=transport,
    )
    return client, transport


def posting_entry(subsidiary_id: str | None) -> JournalEntry:
    return JournalEntry(
        entry_key="202501|SUB-US|0",
        period=202501,
        subsidiary_id="SUB-US",
        target_entity_id=subsidiary_id,
        name="RevRec 2025-01 SUB-US",
        entry_date=date(2025, 1, 31),
        currency="USD",
        items=(
            JournalEntryItem(
                "2400", "DEBIT", 1_234_550, "Deferred Revenue 2025-01", "CL-SAAS", "LOC-NY", "DEP-SALES"
            ),
            JournalEntryItem("4000", "CREDIT", 1_234_550, "Revenue 2025-01", "CL-SAAS", "LOC-NY"),
        ),
    )


def exercise_every_request(
    client: RilletClient, dimensions: dict[str, DimensionField], subsidiary_id: str
) -> str:
    """Every request the client makes, with pagination, `updated.gt`, fields and posting."""
    since = "2025-01-01T00:00:00Z"
    for path, endpoint in ENDPOINTS.items():
        list(client.iter_list(path))
        if endpoint.incremental:
            list(client.iter_list(path, updated_gt=since))
    list(
        client.iter_journal_entries(date_from="2025-01-01", date_to="2025-01-31", subsidiary_id=subsidiary_id)
    )
    client.verify_api_key()
    entry = posting_entry(subsidiary_id)
    entry_id = client.post_journal_entry(entry, "revrec:202501|SUB-US|0", dimensions)
    client.find_journal_entry(entry.name, entry.entry_date, subsidiary_id=subsidiary_id)
    return entry_id


# -- strict checks the validator does not make --------------------------------------------------------


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = spec
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def declared_properties(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    schema = resolve(spec, schema)
    properties = dict(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        properties.update(declared_properties(spec, part))
    return properties


def required_properties(spec: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    schema = resolve(spec, schema)
    required = set(schema.get("required", []))
    for part in schema.get("allOf", []):
        required |= required_properties(spec, part)
    return required


def undeclared_names(spec: dict[str, Any], schema: dict[str, Any], value: Any, where: str) -> list[str]:
    """Every key in `value` that the schema does not declare (additional properties Prism lets pass)."""
    schema = resolve(spec, schema)
    if isinstance(value, list):
        return [
            name
            for i, item in enumerate(value)
            for name in undeclared_names(spec, schema.get("items", {}), item, f"{where}[{i}]")
        ]
    if not isinstance(value, dict):
        return []
    properties = declared_properties(spec, schema)
    found = []
    for key, item in value.items():
        if key not in properties:
            found.append(f"{where}.{key}")
        else:
            found.extend(undeclared_names(spec, properties[key], item, f"{where}.{key}"))
    return found


def operation(spec: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    assert path in spec["paths"], f"{path} is not a path of the Rillet API"
    operations = spec["paths"][path]
    assert method.lower() in operations, f"{method} {path} is not an operation of the Rillet API"
    return operations[method.lower()]


def strict_request_problems(spec: dict[str, Any], exchange: Exchange) -> list[str]:
    op = operation(spec, exchange.method, exchange.path)
    parameters = {resolve(spec, p)["name"] for p in op.get("parameters", [])}
    problems = [
        f"undeclared query parameter {name!r}" for name, _ in exchange.query if name not in parameters
    ]
    if exchange.body is not None:
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        problems += [
            f"undeclared body property {name}" for name in undeclared_names(spec, schema, exchange.body, "$")
        ]
    return problems


def discriminated_ok(spec: dict[str, Any], body: Any, location: list[str]) -> bool:
    """A Prism oneOf complaint on a discriminated union, where the object fits the branch it names."""
    if location[:2] != ["response", "body"] or not any(part in DISCRIMINATED for part in location):
        return False
    index = max(i for i, part in enumerate(location) if part in DISCRIMINATED)
    node = body
    for part in location[2 : index + 1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    union = spec["components"]["schemas"][DISCRIMINATED[location[index]]]
    discriminator = union["discriminator"]
    branch = discriminator["mapping"].get(node.get(discriminator["propertyName"]))
    return branch is not None and required_properties(spec, {"$ref": branch}) <= node.keys()


# -- the document and the client's table agree ------------------------------------------------------


def test_the_client_endpoint_table_matches_the_document(spec):
    for path, endpoint in ENDPOINTS.items():
        op = operation(spec, "GET", path)
        parameters = {resolve(spec, p)["name"] for p in op.get("parameters", [])}
        assert endpoint.paginated == ({"limit", "cursor"} <= parameters), path
        assert endpoint.incremental == ("updated.gt" in parameters), path
        body = resolve(spec, op["responses"]["200"]["content"]["application/json"]["schema"])
        assert endpoint.collection in body["required"], path
        assert declared_properties(spec, body)[endpoint.collection]["type"] == "array", path
        assert ("pagination" in declared_properties(spec, body)) == endpoint.paginated, path
    limit = resolve(spec, spec["components"]["parameters"]["limit"]["schema"])
    assert limit["maximum"] == 100


# -- the client's requests against prism mock ---------------------------------------------------------


def test_prism_rejects_a_request_that_breaks_the_schema(prism_mock):
    """The validator is live: otherwise 'no violations' below would prove nothing."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    too_many = httpx.get(f"{prism_mock}/customers", params={"limit": 1000}, headers=headers)
    one_line = httpx.post(
        f"{prism_mock}/journal-entries",
        headers=headers,
        json={
            "name": "x",
            "date": "2025-01-31",
            "currency": "USD",
            "items": [{"account_code": "1", "side": "DEBIT"}],
        },
    )
    for response in (too_many, one_line):
        assert response.status_code == 422
        assert json.loads(response.headers["sl-violations"])


def test_every_client_request_is_accepted_by_prism(spec, prism_mock):
    client, transport = recording_client(prism_mock)
    dimensions = {
        "Class": DimensionField(field_id=UUID_A, value_ids={"CL-SAAS": UUID_B}),
        "Location": DimensionField(field_id=UUID_B, value_ids={"LOC-NY": UUID_A}),
        "Department": DimensionField(field_id=UUID_A, value_ids={"DEP-SALES": UUID_A}),
    }
    with client:
        entry_id = exercise_every_request(client, dimensions, subsidiary_id=UUID_A)

    assert entry_id  # the example JournalEntry's id
    exchanges = transport.exchanges
    seen = {(e.method, e.path) for e in exchanges}
    assert seen >= {("GET", p) for p in ENDPOINTS} | {("POST", "/journal-entries"), ("GET", "/api-key")}
    assert any(("cursor", "iLQvkEj3sh3UiweC") in e.query for e in exchanges)  # a second page was asked for
    (post,) = [e for e in exchanges if e.method == "POST"]
    assert all(item.get("fields") for item in post.body["items"])
    for exchange in exchanges:
        request_violations = [v for v in exchange.violations if v["location"][0] == "request"]
        assert exchange.status < 400 and not request_violations, exchange.describe()
        assert strict_request_problems(spec, exchange) == [], exchange.describe()


# -- the emulator's answers through prism proxy -------------------------------------------------------


def test_the_emulator_answers_in_the_documents_shapes(spec, emulator, prism_proxy):
    client, transport = recording_client(prism_proxy)
    with client:
        subsidiary_id = next(client.iter_subsidiaries())["id"]
        dimensions = dimension_fields(client.iter_fields())
        entry_id = exercise_every_request(client, dimensions, subsidiary_id)
        assert client.find_journal_entry("RevRec 2025-01 SUB-US", date(2025, 1, 31)) == entry_id
    httpx.get(f"{prism_proxy}/journal-entries/{entry_id}", headers={"Authorization": f"Bearer {API_KEY}"})
    # problem answers: 422 (unbalanced), 401 (wrong key), 429 (rate limit)
    unbalanced = {
        "name": "x",
        "date": "2025-01-31",
        "currency": "USD",
        "items": [
            {"account_code": "2400", "side": "DEBIT", "amount": {"amount": "1.00", "currency": "USD"}},
            {"account_code": "4000", "side": "CREDIT", "amount": {"amount": "2.00", "currency": "USD"}},
        ],
    }
    problems = [
        httpx.post(
            f"{prism_proxy}/journal-entries", json=unbalanced, headers={"Authorization": f"Bearer {API_KEY}"}
        ),
        httpx.get(f"{prism_proxy}/customers", headers={"Authorization": "Bearer not-the-key"}),
    ]
    emulator.fail_next(429, retry_after=2)
    problems.append(httpx.get(f"{prism_proxy}/invoices", headers={"Authorization": f"Bearer {API_KEY}"}))

    assert [p.status_code for p in problems] == [422, 401, 429]
    for response in problems:
        assert "sl-violations" not in response.headers, response.headers["sl-violations"]
        body = response.json()
        assert {"type", "title", "status", "detail"} <= body.keys() and body["status"] == response.status_code
    paged = [e for e in transport.exchanges if e.response_body and (e.response_body.get("pagination") or {})]
    assert paged, "no answer carried a next_cursor"
    for exchange in transport.exchanges:
        assert exchange.status < 400, exchange.describe()
        unexplained = [
            v
            for v in exchange.violations
            if not discriminated_ok(spec, exchange.response_body, v["location"])
        ]
        assert unexplained == [], exchange.describe()
