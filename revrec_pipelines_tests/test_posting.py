"""Journal posting (SPEC §5) against the Rillet emulator and the Intacct XML gateway emulator on loopback:
one balanced entry per period and subsidiary whatever faults are injected, failures recorded with the
target's words, retries that never double-post, and only the difference posted after a reopen."""

import csv
import shutil
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest

from revrec_pipelines.lib import close, exports, importer, posting, sources, warehouse
from revrec_pipelines.lib.intacct import IntacctClient
from revrec_pipelines.lib.posting_targets import IntacctTarget, RilletTarget
from revrec_pipelines.lib.rillet import RilletClient
from revrec_pipelines_tests.emulators.intacct_gateway import IntacctGatewayEmulator
from revrec_pipelines_tests.emulators.rillet_emulator import RilletEmulator, account, field, subsidiary

EXAMPLE = Path(__file__).resolve().parents[2] / "shared" / "examples" / "worked-example"
DIMENSIONS = ("Class", "Location", "Department")
SUBSIDIARIES = (
    "Subsidiary_Id,Subsidiary_Name,Rillet_Subsidiary_Id,Intacct_Location_Id\n"
    "SUB-US,Northwind US,sub_us,US01\n"
    "SUB-DE,Contoso DE,sub_de,DE01\n"
)
ACCOUNTS = ["4900", "4000", "2400", "1250", "1400", "2150", "6100", "4001", "2401"]


def _import(con, folder: Path) -> None:
    report = importer.import_from_source(con, sources.LocalFolderSource(folder))
    assert not report.rejected, report.failure_message()


@pytest.fixture
def ledger(tmp_path):
    """The worked example through two closes, with subsidiaries mapped to both targets' entities."""
    batch1 = tmp_path / "batch1"
    shutil.copytree(EXAMPLE / "batch1", batch1)
    (batch1 / "subsidiaries.csv").write_text(SUBSIDIARIES)
    con = warehouse.connect(tmp_path / "w.duckdb")
    _import(con, batch1)
    for period in (202501, 202502):
        close.close_period(con, period, home_currency="USD", actor="test")
        exports.write_close_exports(con, period, sources.LocalFolderDestination(tmp_path / "exports"))
    yield con, tmp_path
    con.close()


def expected_nets(export_dir: Path, period: int) -> dict[tuple[str, str], int]:
    """Net debit per (subsidiary entity, account) recomputed from the exported journals CSV alone."""
    subsidiary_of = {"C100": "SUB-US", "C200": "SUB-DE"}  # the worked example's customers
    nets: dict[tuple[str, str], int] = defaultdict(int)
    with open(export_dir / f"closedperiodexport-journals-{period}.csv", newline="") as f:
        for row in csv.DictReader(f):
            cents = int(Decimal(row["Debit_Amount"]) * 100) - int(Decimal(row["Credit_Amount"]) * 100)
            nets[(subsidiary_of[row["Customer_Id"]], row["Account_Id"])] += cents
    return {k: v for k, v in nets.items() if v}


# ---------------------------------------------------------------------------------------------- Rillet


@pytest.fixture
def rillet():
    with RilletEmulator(api_key="test-key") as emu:
        emu.seed(
            accounts=[account(code, f"Account {code}") for code in ACCOUNTS],
            subsidiaries=[subsidiary("Northwind US", id="sub_us"), subsidiary("Contoso DE", "EUR", id="sub_de")],
            fields=[
                field("Class", ["SaaS", "Services", "Usage"]),
                field("Location", ["NYC", "BER"]),
                field("Department", ["Sales", "Services"]),
            ],
        )
        yield emu


def rillet_target(emu, **kw) -> RilletTarget:
    client = RilletClient(emu.base_url, "test-key", sleep=lambda _s: None, backoff_base=0.001, timeout=kw.pop("timeout", 5.0), **kw)
    return RilletTarget(client, DIMENSIONS)


def rillet_nets(emu) -> dict[tuple[str, str], int]:
    entity = {"sub_us": "SUB-US", "sub_de": "SUB-DE"}
    nets: dict[tuple[str, str], int] = defaultdict(int)
    for entry in emu.journal_entries:
        for item in entry["items"]:
            cents = int(Decimal(item["amount"]["amount"]) * 100)
            nets[(entity[entry["subsidiary_id"]], item["account_code"])] += cents if item["side"] == "DEBIT" else -cents
    return {k: v for k, v in nets.items() if v}


def _plan_and_post(con, target, period):
    posting.plan_entries(con, period, target=target.name, home_currency="USD", dimensions=DIMENSIONS)
    return posting.post_pending(con, target, period=period)


def test_rillet_one_balanced_entry_per_subsidiary_matching_the_journals(ledger, rillet):
    con, tmp = ledger
    target = rillet_target(rillet)
    for period in (202501, 202502):
        report = _plan_and_post(con, target, period)
        assert not report.failed
    names = sorted(e["name"] for e in rillet.journal_entries)
    assert names == ["RevRec 2025-01 SUB-US", "RevRec 2025-02 SUB-DE", "RevRec 2025-02 SUB-US"]
    for entry in rillet.journal_entries:
        debit = sum(Decimal(i["amount"]["amount"]) for i in entry["items"] if i["side"] == "DEBIT")
        credit = sum(Decimal(i["amount"]["amount"]) for i in entry["items"] if i["side"] == "CREDIT")
        assert debit == credit > 0
        assert entry["date"] in ("2025-01-31", "2025-02-28") and entry["currency"] == "USD"
        assert all(len(i["fields"]) >= 1 for i in entry["items"])  # Class / Location / Department as Rillet fields
    expected = {**expected_nets(tmp / "exports", 202501)}
    feb = expected_nets(tmp / "exports", 202502)
    for k, v in feb.items():
        expected[k] = expected.get(k, 0) + v
    assert rillet_nets(rillet) == {k: v for k, v in expected.items() if v}
    rows = con.execute("SELECT status, count(*), count(target_id) FROM posting_entries GROUP BY ALL").fetchall()
    assert rows == [("Success", 3, 3)]
    # posting again sends nothing
    assert posting.post_pending(con, target).succeeded == []
    assert len(rillet.journal_entries) == 3


def test_rillet_faults_never_double_post(ledger, rillet):
    con, _ = ledger
    rillet.fail_next(500, times=2, method="POST", path="/journal-entries")
    rillet.fail_next(429, times=1, retry_after="1", method="POST", path="/journal-entries")
    report = _plan_and_post(con, rillet_target(rillet), 202501)
    assert not report.failed and len(rillet.journal_entries) == 1
    # the entry is stored, then the answer comes too late: the client looks it up instead of sending again
    rillet.stall_next(2.0, method="POST", path="/journal-entries")
    report = _plan_and_post(con, rillet_target(rillet, timeout=0.5), 202502)
    assert not report.failed, report.failure_message()
    assert sorted(e["name"] for e in rillet.journal_entries) == [
        "RevRec 2025-01 SUB-US", "RevRec 2025-02 SUB-DE", "RevRec 2025-02 SUB-US"]


def test_rillet_refusal_is_recorded_with_its_words_and_a_later_post_succeeds(ledger, rillet):
    con, _ = ledger
    rillet.remove("accounts", next(a["id"] for a in rillet.objects("accounts") if a["code"] == "4900"))
    report = _plan_and_post(con, rillet_target(rillet), 202501)
    assert len(report.failed) == 1 and "4900" in report.failed[0][1]
    status, error, ambiguous = con.execute("SELECT status, error, ambiguous FROM posting_entries").fetchall()[0]
    assert status == "Failed" and "422" in error and "4900" in error and not ambiguous
    assert "test-key" not in error
    assert rillet.journal_entries == []
    rillet.seed(accounts=[account("4900", "Billings contra revenue")])
    report = posting.post_pending(con, rillet_target(rillet))
    assert [n for n, _ in report.succeeded] == ["RevRec 2025-01 SUB-US"] and len(rillet.journal_entries) == 1


def test_rillet_reclose_after_reopen_posts_only_the_difference(ledger, rillet):
    con, tmp = ledger
    target = rillet_target(rillet)
    for period in (202501, 202502):
        _plan_and_post(con, target, period)
    before = rillet_nets(rillet)
    close.reopen_period(con, 202502, home_currency="USD", actor="test")
    # a late upsell of the subscription changes February's journals
    _import(con, EXAMPLE / "batch2")
    close.close_period(con, 202502, home_currency="USD", actor="test")
    exports.write_close_exports(con, 202502, sources.LocalFolderDestination(tmp / "exports2"))
    report = _plan_and_post(con, target, 202502)
    assert not report.failed
    adjustments = [e for e in rillet.journal_entries if "adjustment" in e["name"]]
    assert [e["name"] for e in adjustments] == ["RevRec 2025-02 SUB-US adjustment 1"]
    # posted totals now equal the re-closed journals; the adjustment holds only the difference
    expected = dict(expected_nets(tmp / "exports", 202501))
    for k, v in expected_nets(tmp / "exports2", 202502).items():
        expected[k] = expected.get(k, 0) + v
    assert rillet_nets(rillet) == {k: v for k, v in expected.items() if v}
    assert rillet_nets(rillet) != before
    assert len(rillet.journal_entries) == 4  # nothing already posted was sent again


# --------------------------------------------------------------------------------------------- Intacct


@pytest.fixture
def gateway():
    with IntacctGatewayEmulator() as gw:
        yield gw


def intacct_target(gw, **kw) -> IntacctTarget:
    client = IntacctClient(**gw.client_kwargs(), backoff_initial=0.001, backoff_max=0.01, **kw)
    return IntacctTarget(client, DIMENSIONS)


def test_intacct_one_balanced_glbatch_per_subsidiary_despite_faults(ledger, gateway):
    con, tmp = ledger
    gateway.fail_http(502, times=1, on="create")
    report = _plan_and_post(con, intacct_target(gateway), 202501)
    assert not report.failed, report.failure_message()
    gateway.stall(2.0, on="create")  # creates the batch, answers after the client's timeout
    report = _plan_and_post(con, intacct_target(gateway, timeout=0.5), 202502)
    assert not report.failed, report.failure_message()
    titles = sorted((b.batch_title, b.entity) for b in gateway.batches)
    assert titles == [("RevRec 2025-01 SUB-US", "US01"), ("RevRec 2025-02 SUB-DE", "DE01"), ("RevRec 2025-02 SUB-US", "US01")]
    assert all(b.is_balanced() and b.journal == "APJ" for b in gateway.batches)
    nets: dict[tuple[str, str], int] = defaultdict(int)
    for b in gateway.batches:
        for e in b.entries:
            nets[({"US01": "SUB-US", "DE01": "SUB-DE"}[b.entity], e.fields["ACCOUNTNO"])] += int(e.amount * 100) * e.tr_type
    expected = dict(expected_nets(tmp / "exports", 202501))
    for k, v in expected_nets(tmp / "exports", 202502).items():
        expected[k] = expected.get(k, 0) + v
    assert {k: v for k, v in nets.items() if v} == {k: v for k, v in expected.items() if v}


def test_intacct_authentication_failure_shows_the_gateways_words_then_retry_succeeds(ledger, gateway):
    con, _ = ledger
    kwargs = gateway.client_kwargs() | {"user_password": "wrong-password"}
    bad = IntacctTarget(IntacctClient(**kwargs, backoff_initial=0.001, backoff_max=0.01, max_retries=0), DIMENSIONS)
    report = _plan_and_post(con, bad, 202501)
    assert len(report.failed) == 1
    status, error = con.execute("SELECT status, error FROM posting_entries").fetchall()[0]
    assert status == "Failed" and "XL03000006" in error and "wrong-password" not in error
    assert gateway.batches == []
    report = posting.post_pending(con, intacct_target(gateway))
    assert len(report.succeeded) == 1 and len(gateway.batches) == 1


def test_unmapped_subsidiary_entity_fails_the_entry_with_a_clear_reason(tmp_path, gateway):
    batch1 = tmp_path / "batch1"
    shutil.copytree(EXAMPLE / "batch1", batch1)
    con = warehouse.connect(tmp_path / "w.duckdb")
    _import(con, batch1)  # no subsidiaries file: SUB-US has no Intacct location
    close.close_period(con, 202501, home_currency="USD", actor="test")
    report = _plan_and_post(con, intacct_target(gateway), 202501)
    assert len(report.failed) == 1 and "SUB-US" in report.failed[0][1] and "Intacct_Location_Id" in report.failed[0][1]
    assert gateway.batches == []
    con.close()


# ------------------------------------------------------------------------------------- through Dagster


def test_close_outputs_job_posts_to_rillet_when_posting_is_on(tmp_path, rillet, monkeypatch):
    inbox = tmp_path / "inbox"
    shutil.copytree(EXAMPLE / "batch1", inbox / "batch1")
    (inbox / "batch1" / "subsidiaries.csv").write_text(SUBSIDIARIES)
    monkeypatch.setenv("REVREC_WAREHOUSE", str(tmp_path / "w.duckdb"))
    monkeypatch.setenv("REVREC_SOURCE", f"file://{inbox}")
    monkeypatch.setenv("REVREC_EXPORT_DEST", f"file://{tmp_path / 'exports'}")
    monkeypatch.setenv("REVREC_POSTING", "rillet")
    monkeypatch.setenv("RILLET_BASE_URL", rillet.base_url)
    monkeypatch.setenv("RILLET_API_KEY", "test-key")
    from revrec_pipelines.definitions import build_definitions

    defs = build_definitions()
    instance = dg.DagsterInstance.ephemeral()

    def run(job, config=None):
        return defs.resolve_job_def(job).execute_in_process(run_config=config or {}, instance=instance, raise_on_error=False)

    assert run("import_files").success
    assert run("close_period", {"ops": {"closed_periods": {"config": {"period": "202501"}}}}).success
    outputs = {"ops": {"close_period_exports": {"config": {"period": "202501"}}, "journal_postings": {"config": {"period": "202501"}}}}
    rillet.fail_next(422, times=1, detail="Period 2025-01 is locked", method="POST", path="/journal-entries")
    result = run("close_outputs", outputs)
    assert not result.success and rillet.journal_entries == []
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "Period 2025-01 is locked" in failure.step_failure_data.user_failure_data.description
    rillet.reset_faults()
    assert run("post_journals", {"ops": {"post_journals_op": {"config": {}}}}).success
    assert [e["name"] for e in rillet.journal_entries] == ["RevRec 2025-01 SUB-US"]
    for event in result.all_events:  # the key never reaches the run's events
        assert "test-key" not in str(event)
