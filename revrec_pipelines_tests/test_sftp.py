"""The SFTP source and destination against real servers on loopback (sshd, asyncssh), faults injected
at the server or in the network, never in our client."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from pathlib import Path

import paramiko
import pytest

from revrec_pipelines.lib import sftp as sftp_module
from revrec_pipelines.lib.sftp import SftpDestination, SftpSettings, SftpSource
from revrec_pipelines.lib.sources import SourceError, open_destination, open_source
from revrec_pipelines_tests.servers import (
    SftpServerHandle,
    generate_ssh_key,
    known_hosts_line,
    start_asyncssh_sftp,
)
from revrec_pipelines_tests.support import free_port

pytest_plugins = ["revrec_pipelines_tests.servers"]

# paramiko's read-ahead (prefetch) thread dies with an EOFError when the link drops under it, and the download
# fails cleanly and is retried; our client logs that thread's end instead of leaving an unhandled thread
# exception on the run's stderr. The drop tests fail if such an exception still escapes.
no_unhandled_thread_exception = pytest.mark.filterwarnings(
    "error::pytest.PytestUnhandledThreadExceptionWarning"
)

FAST_RETRIES = {"backoff_seconds": 0.01, "max_backoff_seconds": 0.05, "attempts": 3, "timeout_seconds": 10}


def _write(path: Path, data: bytes | str, mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def _source(server: SftpServerHandle, subpath: str = "inbox", **overrides: object) -> SftpSource:
    return SftpSource.from_uri(server.uri(subpath), server.env(), **{**FAST_RETRIES, **overrides})


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ---------------------------------------------------------------------------------------------------
# Listing and identity


def test_lists_input_files_recursively_with_size_and_mtime(sftp_server):
    inbox = sftp_server.root / "inbox"
    _write(inbox / "customers_2025-01.csv", "Customer_Id,Customer_Name\nC1,Acme\n", mtime=1_735_000_000)
    _write(inbox / "2025" / "01" / "Invoices_Jan.CSV", "x\n", mtime=1_735_000_100)
    _write(inbox / "2025" / "drop.zip", b"PK\x05\x06" + b"\0" * 18)
    _write(inbox / "book.xlsx", b"xlsx")
    _write(inbox / "notes.txt", "not an input file")
    _write(inbox / ".hidden.csv", "a partial upload by a client that uses hidden names")
    (inbox / "empty_folder").mkdir()

    with open_source(sftp_server.uri("inbox")) as source:  # settings from os.environ, set by the fixture
        files = source.list_files()

    assert [f.path for f in files] == [
        "2025/01/Invoices_Jan.CSV",
        "2025/drop.zip",
        "book.xlsx",
        "customers_2025-01.csv",
    ]
    by_path = {f.path: f for f in files}
    customers = by_path["customers_2025-01.csv"]
    assert customers.size == len("Customer_Id,Customer_Name\nC1,Acme\n")
    assert customers.mtime == 1_735_000_000
    assert customers.etag is None and customers.version_tag == "mtime:1735000000.000000"
    assert by_path["2025/01/Invoices_Jan.CSV"].mtime == 1_735_000_100
    assert source.skipped == []


def test_identity_is_stable_until_the_file_changes(sftp_server):
    inbox = sftp_server.root / "inbox"
    orders = _write(inbox / "sales_orders.csv", "a,b\n1,2\n", mtime=1_735_000_000)
    _write(inbox / "customers.csv", "c\n", mtime=1_735_000_000)
    with _source(sftp_server) as source:
        first = source.list_files()
        assert source.list_files() == first  # nothing changed: same identity, the ledger skips them

        _write(orders, "a,b\n1,2\n3,4\n", mtime=1_735_000_500)  # new content
        second = {f.path: f for f in source.list_files()}
        assert second["customers.csv"] == first[0]
        assert (second["sales_orders.csv"].size, second["sales_orders.csv"].mtime) == (12, 1_735_000_500)

        os.utime(orders, (1_735_000_900, 1_735_000_900))  # same size, touched: a new version tag
        third = {f.path: f for f in source.list_files()}
        assert third["sales_orders.csv"].version_tag != second["sales_orders.csv"].version_tag


def test_missing_root_folder_says_what_to_do(sftp_server):
    with _source(sftp_server, "no_such_folder") as source, pytest.raises(SourceError) as excinfo:
        source.list_files()
    assert "does not exist on the SFTP server" in str(excinfo.value)
    assert str(sftp_server.root / "no_such_folder") in str(excinfo.value)


def test_a_file_still_being_written_is_skipped_for_this_run(sftp_server):
    inbox = sftp_server.root / "inbox"
    _write(inbox / "customers.csv", "Customer_Id,Customer_Name\nC1,Acme\n")
    growing = _write(inbox / "invoices_big.csv", "Invoice_Number,Invoice_Line\n")
    stop = threading.Event()

    def keep_writing() -> None:
        with open(growing, "a") as f:
            while not stop.is_set():
                f.write("INV-1,1\n" * 50)
                f.flush()
                time.sleep(0.02)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        source = _source(sftp_server, settle_seconds=0.3)
        files = source.list_files()
    finally:
        stop.set()
        writer.join()

    assert [f.path for f in files] == ["customers.csv"]
    assert [s.path for s in source.skipped] == ["invoices_big.csv"]
    assert "still being written" in source.skipped[0].reason

    # Once the writer has finished, the next run imports it.
    assert [f.path for f in source.list_files()] == ["customers.csv", "invoices_big.csv"]
    assert source.skipped == []
    source.close()


def test_settle_interval_comes_from_the_environment(sftp_server):
    env = sftp_server.env(REVREC_SFTP_SETTLE_SECONDS="0.25")
    source = open_source(sftp_server.uri("inbox"), env)
    assert source.settings.settle_seconds == 0.25
    (sftp_server.root / "inbox").mkdir()
    started = time.monotonic()
    source.list_files()
    assert time.monotonic() - started >= 0.25  # two listings, a settle interval apart
    source.close()


# ---------------------------------------------------------------------------------------------------
# Downloads


def test_download_verifies_size_and_returns_sha256(sftp_server, tmp_path):
    payload = os.urandom(3 * 1024 * 1024 + 17)
    _write(sftp_server.root / "inbox" / "usage" / "usage_2025-01.csv", payload)
    with _source(sftp_server) as source:
        (remote,) = source.list_files()
        dest = tmp_path / "downloads" / "usage_2025-01.csv"
        digest = source.download(remote, dest)

    assert digest == hashlib.sha256(payload).hexdigest()
    assert dest.read_bytes() == payload
    assert _leftovers(dest.parent) == ["usage_2025-01.csv"]  # no temporary file left beside it


def test_download_refuses_a_file_changed_since_the_listing(sftp_server, tmp_path):
    path = _write(sftp_server.root / "inbox" / "customers.csv", "Customer_Id\nC1\n", mtime=1_735_000_000)
    with _source(sftp_server) as source:
        (remote,) = source.list_files()
        _write(path, "Customer_Id\nC1\nC2\n")  # replaced between listing and download
        dest = tmp_path / "dl" / "customers.csv"
        with pytest.raises(SourceError, match="changed after it was listed"):
            source.download(remote, dest)
    assert _leftovers(dest.parent) == []


@no_unhandled_thread_exception
def test_connection_dropped_mid_transfer_is_retried_on_a_new_connection(
    sftp_server, tcp_fault_proxy, tmp_path
):
    payload = os.urandom(2 * 1024 * 1024)
    _write(sftp_server.root / "inbox" / "invoices.csv", payload)
    proxy = tcp_fault_proxy(sftp_server.host, sftp_server.port)
    via_proxy = sftp_server.through(proxy.port)
    with _source(via_proxy) as source:
        (remote,) = source.list_files()
        proxy.cut_after(300_000)  # the link drops once, in the middle of the file
        dest = tmp_path / "dl" / "invoices.csv"
        digest = source.download(remote, dest)

    assert proxy.cuts == 1 and proxy.connections == 2  # dropped, then reconnected once
    assert digest == hashlib.sha256(payload).hexdigest()
    assert dest.read_bytes() == payload
    assert _leftovers(dest.parent) == ["invoices.csv"]


@no_unhandled_thread_exception
def test_a_connection_that_keeps_dropping_gives_up_without_a_partial_file(
    sftp_server, tcp_fault_proxy, tmp_path
):
    _write(sftp_server.root / "inbox" / "invoices.csv", os.urandom(1024 * 1024))
    proxy = tcp_fault_proxy(sftp_server.host, sftp_server.port)
    via_proxy = sftp_server.through(proxy.port)
    source = _source(via_proxy, attempts=3)
    (remote,) = source.list_files()
    proxy.cut_after(200_000, times=100)
    dest = tmp_path / "dl" / "invoices.csv"
    with pytest.raises(SourceError) as excinfo:
        source.download(remote, dest)
    source.close()

    message = str(excinfo.value)
    assert "dropped the connection while downloading invoices.csv, 3 times" in message
    assert proxy.connections == 3  # the first connection and two reconnections: bounded
    assert not dest.exists()
    assert _leftovers(dest.parent) == []


def test_the_read_ahead_ending_with_its_connection_is_logged_not_left_unhandled(monkeypatch, caplog):
    # paramiko's own read-ahead loop, run on a client whose link is gone (its send raises as the transport's
    # does once the socket has closed): deterministic, where a drop in the network races with the loop.
    reported: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", reported.append)
    caplog.set_level(logging.DEBUG, logger=sftp_module.__name__)

    class Client:
        def __init__(self, error: BaseException):
            self.error = error

        def _async_request(self, *args: object) -> None:
            raise self.error

    def read_ahead(error: BaseException) -> None:
        f = paramiko.SFTPFile.__new__(paramiko.SFTPFile)
        f.sftp, f.handle, f._closed = Client(error), b"handle", True
        f._prefetch_lock, f._prefetch_extents = threading.Lock(), {}
        thread = threading.Thread(target=f._prefetch_thread, args=([(0, 32768)], None))
        thread.start()
        thread.join()

    def unrelated() -> None:
        raise EOFError("not the read-ahead")

    sftp_module._quiet_read_ahead_on_dropped_links()
    sftp_module._quiet_read_ahead_on_dropped_links()  # installed once, whatever the number of downloads
    read_ahead(EOFError())
    read_ahead(OSError("Socket is closed"))
    assert reported == []
    assert "SFTP read-ahead stopped with its connection (OSError: Socket is closed)" in caplog.text

    read_ahead(ValueError("a bug, not a dropped link"))
    other = threading.Thread(target=unrelated)
    other.start()
    other.join()
    assert [(a.exc_type, str(a.exc_value)) for a in reported] == [
        (ValueError, "a bug, not a dropped link"),
        (EOFError, "not the read-ahead"),
    ]


def test_an_unreachable_server_is_reported_after_bounded_retries(sftp_server):
    closed = sftp_server.through(free_port())  # nothing listens there
    source = SftpSource.from_uri(closed.uri("inbox"), closed.env(), **{**FAST_RETRIES, "attempts": 2})
    with pytest.raises(SourceError, match="could not be reached or dropped the connection while listing"):
        source.list_files()


# ---------------------------------------------------------------------------------------------------
# Authentication and host keys


def test_password_authentication(sftp_password_server):
    _write(sftp_password_server.root / "inbox" / "customers.csv", "Customer_Id\nC1\n")
    assert sftp_password_server.key_file is None
    with open_source(sftp_password_server.uri("inbox"), sftp_password_server.env()) as source:
        assert [f.path for f in source.list_files()] == ["customers.csv"]


def test_wrong_password_is_refused_without_revealing_it(sftp_password_server, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "Sup3r-Secret-Wrong-Pa55"
    env = sftp_password_server.env(REVREC_SFTP_PASSWORD=wrong)
    source = SftpSource.from_uri(sftp_password_server.uri("inbox"), env, **FAST_RETRIES)
    with pytest.raises(SourceError) as excinfo:
        source.list_files()
    message = str(excinfo.value)
    where = f"{sftp_password_server.user}@{sftp_password_server.host}:{sftp_password_server.port}"
    assert f"SFTP authentication failed for {where}" in message
    assert "REVREC_SFTP_PASSWORD" in message
    assert wrong not in message and wrong not in repr(source.settings)
    assert wrong not in caplog.text
    assert excinfo.value.__cause__ is None  # no chained paramiko exception carrying details


def test_wrong_private_key_is_refused(sftp_server, tmp_path):
    other_key = tmp_path / "someone_elses_key"
    generate_ssh_key(other_key)
    env = sftp_server.env(REVREC_SFTP_KEY_FILE=str(other_key))
    with pytest.raises(SourceError) as excinfo:
        SftpSource.from_uri(sftp_server.uri("inbox"), env, **FAST_RETRIES).list_files()
    assert f"SFTP authentication failed for {sftp_server.user}@{sftp_server.host}" in str(excinfo.value)
    assert "REVREC_SFTP_KEY_FILE" in str(excinfo.value)


def test_unknown_host_key_is_refused_never_trusted_on_first_use(sftp_server, tmp_path):
    known_hosts = tmp_path / "empty_known_hosts"
    known_hosts.write_text(known_hosts_line("sftp.example.com", 22, generate_ssh_key(tmp_path / "k")))
    env = sftp_server.env(REVREC_SFTP_KNOWN_HOSTS=str(known_hosts))
    for _ in range(2):  # the second attempt is refused too: nothing was learned from the first
        with pytest.raises(SourceError) as excinfo:
            SftpSource.from_uri(sftp_server.uri("inbox"), env, **FAST_RETRIES).list_files()
        message = str(excinfo.value)
        assert (
            f"[{sftp_server.host}]:{sftp_server.port} is not in the known-hosts file {known_hosts}" in message
        )
        assert "SHA256:" in message and "ssh-keyscan -p" in message
    assert "[127.0.0.1]" not in known_hosts.read_text()


def test_changed_host_key_is_refused(sftp_server, tmp_path):
    impostor_public = generate_ssh_key(tmp_path / "old_host_key")
    known_hosts = tmp_path / "stale_known_hosts"
    known_hosts.write_text(known_hosts_line(sftp_server.host, sftp_server.port, impostor_public))
    env = sftp_server.env(REVREC_SFTP_KNOWN_HOSTS=str(known_hosts))
    with pytest.raises(SourceError) as excinfo:
        SftpSource.from_uri(sftp_server.uri("inbox"), env, **FAST_RETRIES).list_files()
    message = str(excinfo.value)
    assert "presented a different host key" in message
    assert "intercepting" in message and "replace the server's line" in message


@pytest.mark.parametrize(
    ("drop", "expected"),
    [
        ("REVREC_SFTP_KNOWN_HOSTS", "REVREC_SFTP_KNOWN_HOSTS is not set"),
        ("credentials", "set REVREC_SFTP_PASSWORD or REVREC_SFTP_KEY_FILE"),
    ],
)
def test_missing_settings_are_errors_that_say_so(sftp_server, drop, expected):
    env = sftp_server.env()
    for name in ("REVREC_SFTP_PASSWORD", "REVREC_SFTP_KEY_FILE") if drop == "credentials" else (drop,):
        env.pop(name, None)
    with pytest.raises(SourceError, match=expected):
        open_source(sftp_server.uri("inbox"), env)


def test_uri_parsing(tmp_path):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    env = {"REVREC_SFTP_KNOWN_HOSTS": str(known_hosts), "REVREC_SFTP_PASSWORD": "pw"}
    parse = SftpSettings.from_uri
    assert parse("sftp://acme@files.example.com:2222/data/inbox/", env).root == "/data/inbox"
    assert parse("sftp://acme@files.example.com/~/inbox", env).root == "inbox"
    assert parse("sftp://acme@files.example.com", env).root == "."
    s = parse("sftp://acme%40corp@files.example.com/in%20box", env)
    assert (s.user, s.host, s.port, s.root) == ("acme@corp", "files.example.com", 22, "/in box")
    assert "pw" not in repr(s)
    with pytest.raises(SourceError, match="contains a password") as excinfo:
        parse("sftp://acme:hunter2@files.example.com/in", env)
    assert "hunter2" not in str(excinfo.value)
    with pytest.raises(SourceError, match="needs a user"):
        parse("sftp://files.example.com/in", env)
    with pytest.raises(SourceError, match="does not exist"):
        parse("sftp://acme@h/in", {**env, "REVREC_SFTP_KEY_FILE": str(tmp_path / "missing_key")})


# ---------------------------------------------------------------------------------------------------
# Export destination


def test_export_is_written_atomically_and_overwrites(sftp_server, tmp_path):
    old = _write(tmp_path / "old.csv", b"A" * (2 * 1024 * 1024))
    new = _write(tmp_path / "new.csv", b"B" * (3 * 1024 * 1024 + 3))
    name = "closedperiodexport-revenue-202501.csv"
    final = sftp_server.root / "exports" / "2025" / name
    destination = open_destination(sftp_server.uri("exports/2025"), sftp_server.env())
    destination.write_file(name, old)  # creates exports/2025
    assert final.read_bytes() == old.read_bytes()

    seen: set[tuple[int, bytes]] = set()
    done = threading.Event()

    def watch() -> None:  # a consumer polling the final name sees the old file or the new, never a mix
        while not done.is_set():
            data = final.read_bytes()
            seen.add((len(data), bytes(set(data))))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        destination.write_file(name, new)
    finally:
        done.set()
        watcher.join()
        destination.close()

    assert final.read_bytes() == new.read_bytes()
    assert seen <= {(old.stat().st_size, b"A"), (new.stat().st_size, b"B")}
    assert _leftovers(final.parent) == [name]  # the temporary upload was renamed, not left behind


def test_export_names_with_folders_are_created_and_traversal_refused(sftp_server, tmp_path):
    local = _write(tmp_path / "x.csv", "Closed_Period\n202501\n")
    with SftpDestination.from_uri(
        sftp_server.uri("exports"), sftp_server.env(), **FAST_RETRIES
    ) as destination:
        destination.write_file("2025/01/control.csv", local)
        with pytest.raises(SourceError, match="without '..'"):
            destination.write_file("../escape.csv", local)
    assert (
        sftp_server.root / "exports" / "2025" / "01" / "control.csv"
    ).read_text() == "Closed_Period\n202501\n"
    assert not (sftp_server.root / "escape.csv").exists()


@pytest.fixture(scope="module")
def legacy_rename_server(tmp_path_factory):
    """An asyncssh server without posix-rename whose plain rename refuses to overwrite (SFTP v3)."""
    import asyncssh

    class LegacyRename(asyncssh.SFTPServer):
        def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
            raise asyncssh.SFTPOpUnsupported("posix-rename is not supported by this server")

        def rename(self, oldpath: bytes, newpath: bytes) -> None:
            if os.path.exists(self.map_path(newpath)):
                raise asyncssh.SFTPFailure("the target exists")
            return super().rename(oldpath, newpath)

    backend = start_asyncssh_sftp(tmp_path_factory.mktemp("legacy"), sftp_factory=LegacyRename)
    yield backend
    backend.stop()


def test_export_overwrites_on_a_server_without_posix_rename(legacy_rename_server, tmp_path):
    server = legacy_rename_server.handle(tmp_path)
    first = _write(tmp_path / "v1.csv", "Version\n1\n")
    second = _write(tmp_path / "v2.csv", "Version\n2\n")
    with open_destination(server.uri("exports"), server.env()) as destination:
        destination.write_file("continuousexport-control-000001.csv", first)
        destination.write_file("continuousexport-control-000001.csv", second)
    folder = server.root / "exports"
    assert (folder / "continuousexport-control-000001.csv").read_text() == "Version\n2\n"
    assert _leftovers(folder) == ["continuousexport-control-000001.csv"]
