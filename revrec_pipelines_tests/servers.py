"""Real servers on loopback for integration tests: SFTP (OpenSSH sshd, or asyncssh), S3 (moto), and
fault-injecting proxies that break the network in front of them.

Register every fixture with `pytest_plugins = ["revrec_pipelines_tests.servers"]` in the top conftest.py
(the function-scoped fixtures depend on session-scoped ones defined here). Fixtures:

- `sftp_server`: OpenSSH `sshd` (internal-sftp, key authentication, as the user running the tests) on a
  free loopback port. Without sshd it falls back to an asyncssh server locally, and fails in CI.
- `sftp_password_server`: an asyncssh SFTP server that accepts a password (and the same key).
- Both yield an `SftpServerHandle` with a fresh, empty `root` folder per test; `handle.uri("inbox")`
  and `handle.env()` are what `open_source` / `open_destination` need (the settings are also set in
  os.environ for the test, with REVREC_SFTP_SETTLE_SECONDS=0).
- `tcp_fault_proxy`: a factory `(host, port) -> TcpFaultProxy`, a TCP forwarder that can cut
  connections after a number of bytes (a dropped connection), for SFTP or HTTP.
- `s3_server`: moto's standalone S3 server; every test starts from an empty store and fake
  credentials in the environment. Yields an `S3ServerHandle` (`endpoint_url`, `env()`, `client()`,
  `create_bucket()`, `put_many()` for thousands of objects at once).
- `http_fault_proxy`: a factory `(upstream_url) -> HttpFaultProxy`, an HTTP forwarder that answers
  chosen requests with an error status (a 500 from the endpoint).

Test modules also import helpers from here, sometimes before pytest loads it as a plugin, so it opts
out of assertion rewriting (it has no asserts): PYTEST_DONT_REWRITE.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from revrec_pipelines_tests.support import IN_CI, free_port, require

__all__ = [
    "HttpFaultProxy",
    "S3ServerHandle",
    "SftpServerHandle",
    "TcpFaultProxy",
    "generate_ssh_key",
    "http_fault_proxy",
    "known_hosts_line",
    "s3_server",
    "sftp_password_server",
    "sftp_server",
    "start_asyncssh_sftp",
    "tcp_fault_proxy",
]

LOOPBACK = "127.0.0.1"
SFTP_TEST_PASSWORD = "correct horse battery staple"
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


# --------------------------------------------------------------------------------------------------
# SSH keys and known_hosts


def generate_ssh_key(path: Path) -> str:
    """Write a new ed25519 private key (OpenSSH format, mode 600) to `path`; return its public line."""
    key = ed25519.Ed25519PrivateKey.generate()
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    path.with_name(path.name + ".pub").write_bytes(public + b"\n")
    return public.decode()


def known_hosts_line(host: str, port: int, public_key: str) -> str:
    name = host if port == 22 else f"[{host}]:{port}"
    return f"{name} {public_key}\n"


@dataclass(frozen=True)
class SftpServerHandle:
    """A running SFTP server as a test sees it. `root` is a fresh folder on the server for this test."""

    kind: str  # "openssh" or "asyncssh"
    host: str
    port: int
    user: str
    root: Path
    host_public_key: str  # "ssh-ed25519 AAAA..."
    known_hosts: Path  # trusts exactly this server's host key at host:port
    key_file: Path | None = None  # a client key the server accepts
    password: str | None = field(default=None, repr=False)

    def uri(self, subpath: str = "") -> str:
        path = self.root / subpath if subpath else self.root
        return f"sftp://{self.user}@{self.host}:{self.port}{path.as_posix()}"

    def env(self, **overrides: str) -> dict[str, str]:
        """Settings for `open_source` / `open_destination`: known hosts, credentials, no settle pause."""
        env = {"REVREC_SFTP_KNOWN_HOSTS": str(self.known_hosts), "REVREC_SFTP_SETTLE_SECONDS": "0"}
        if self.key_file is not None:
            env["REVREC_SFTP_KEY_FILE"] = str(self.key_file)
        if self.password is not None:
            env["REVREC_SFTP_PASSWORD"] = self.password
        env.update(overrides)
        return env

    def through(self, port: int, host: str = LOOPBACK) -> SftpServerHandle:
        """The same server reached at another address (a proxy), with a known_hosts file for it."""
        known_hosts = self.root.parent / f"known_hosts_{host}_{port}"
        known_hosts.write_text(known_hosts_line(host, port, self.host_public_key))
        return replace(self, host=host, port=port, known_hosts=known_hosts)


@dataclass
class _SftpBackend:
    kind: str
    port: int
    user: str
    host_public_key: str
    key_file: Path
    password: str | None
    stop: Callable[[], None]

    def handle(self, tmp_path: Path) -> SftpServerHandle:
        root = tmp_path / f"sftp_{self.port}"  # by port: a test may use several servers
        root.mkdir()
        known_hosts = tmp_path / f"known_hosts_{self.port}"
        known_hosts.write_text(known_hosts_line(LOOPBACK, self.port, self.host_public_key))
        return SftpServerHandle(
            kind=self.kind,
            host=LOOPBACK,
            port=self.port,
            user=self.user,
            root=root,
            host_public_key=self.host_public_key,
            known_hosts=known_hosts,
            key_file=self.key_file,
            password=self.password,
        )


def _current_user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


def _wait_for_ssh_banner(
    port: int, process: subprocess.Popen | None, log: Path, timeout: float = 10.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"sshd exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1) as s:
                if s.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sshd did not answer on port {port}:\n{log.read_text(errors='replace')}")


def _sshd_binary() -> str | None:
    found = shutil.which("sshd") or ("/usr/sbin/sshd" if os.access("/usr/sbin/sshd", os.X_OK) else None)
    return os.path.abspath(found) if found else None  # sshd re-executes itself: it needs an absolute path


def _start_openssh(sshd: str, workdir: Path) -> _SftpBackend:
    workdir.mkdir(parents=True, exist_ok=True)
    host_key = workdir / "ssh_host_ed25519_key"
    host_public = generate_ssh_key(host_key)
    client_key = workdir / "client_ed25519_key"
    client_public = generate_ssh_key(client_key)
    authorized = workdir / "authorized_keys"
    authorized.write_text(client_public + "\n")
    authorized.chmod(0o600)
    user = _current_user()
    if os.geteuid() == 0:
        # As root, sshd insists on its privilege-separation folder (created by systemd at boot).
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
    port = free_port()
    config = workdir / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                f"ListenAddress {LOOPBACK}",
                f"HostKey {host_key}",
                "PidFile none",
                f"AuthorizedKeysFile {authorized}",
                "AuthenticationMethods publickey",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",
                "PermitRootLogin prohibit-password",
                f"AllowUsers {user}",
                "Subsystem sftp internal-sftp",
                "ForceCommand internal-sftp",
                "AllowTcpForwarding no",
                "X11Forwarding no",
                "LogLevel VERBOSE",
                "",
            ]
        )
    )
    log = workdir / "sshd.log"
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [sshd, "-D", "-e", "-f", str(config)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        _wait_for_ssh_banner(port, process, log)
    except BaseException:
        process.kill()
        process.wait()
        raise

    def stop() -> None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    return _SftpBackend("openssh", port, user, host_public, client_key, None, stop)


# --------------------------------------------------------------------------------------------------
# asyncssh SFTP server (password authentication; server-side behaviour a test can change)


def start_asyncssh_sftp(
    workdir: Path,
    *,
    password: str | None = SFTP_TEST_PASSWORD,
    sftp_factory: Callable | None = None,
) -> _SftpBackend:
    """Start an asyncssh SFTP server in a thread: key auth (client key in `workdir`) and optional password.

    It serves the real file system as the current user (no chroot), like sshd's internal-sftp, so
    handles from either kind use the same absolute paths. `sftp_factory` (an `asyncssh.SFTPServer`
    subclass) changes what the server does.
    """
    import asyncssh

    workdir.mkdir(parents=True, exist_ok=True)
    host_key_path = workdir / "asyncssh_host_key"
    host_public = generate_ssh_key(host_key_path)
    client_key = workdir / "client_ed25519_key"
    client_public = generate_ssh_key(client_key)
    user = _current_user()

    class Server(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return password is not None

        def validate_password(self, username: str, given: str) -> bool:
            return username == user and given == password

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="asyncssh-sftp", daemon=True)
    thread.start()

    async def listen():
        return await asyncssh.listen(
            LOOPBACK,
            0,
            server_host_keys=[asyncssh.import_private_key(host_key_path.read_bytes())],
            authorized_client_keys=asyncssh.import_authorized_keys(client_public + "\n"),
            server_factory=Server,
            sftp_factory=sftp_factory or True,
            allow_scp=False,
        )

    acceptor = asyncio.run_coroutine_threadsafe(listen(), loop).result(timeout=10)
    port = acceptor.get_port()

    def stop() -> None:
        async def close():
            acceptor.close()
            await acceptor.wait_closed()

        try:
            asyncio.run_coroutine_threadsafe(close(), loop).result(timeout=5)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            loop.close()

    return _SftpBackend("asyncssh", port, user, host_public, client_key, password, stop)


@pytest.fixture(scope="session")
def _sftp_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_SftpBackend]:
    sshd = _sshd_binary()
    workdir = tmp_path_factory.mktemp("sshd")
    if sshd is None:
        if IN_CI:
            require(False, "OpenSSH sshd (apt-get install openssh-server; see .ci/install-servers.sh)")
        backend = start_asyncssh_sftp(workdir, password=None)  # locally: asyncssh stands in
    else:
        backend = _start_openssh(sshd, workdir)
    yield backend
    backend.stop()


@pytest.fixture(scope="session")
def _sftp_password_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_SftpBackend]:
    backend = start_asyncssh_sftp(tmp_path_factory.mktemp("asyncssh"))
    yield backend
    backend.stop()


def _export_env(handle: SftpServerHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REVREC_SFTP_PASSWORD", "REVREC_SFTP_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in handle.env().items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def sftp_server(
    _sftp_backend: _SftpBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> SftpServerHandle:
    """OpenSSH sshd (key auth) with a fresh root folder for this test; `handle.env()` is also put in
    os.environ for the test, so `open_source(handle.uri("inbox"))` works without an env argument."""
    handle = _sftp_backend.handle(tmp_path)
    _export_env(handle, monkeypatch)
    return handle


@pytest.fixture
def sftp_password_server(
    _sftp_password_backend: _SftpBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> SftpServerHandle:
    """An asyncssh SFTP server with password auth (handle.password; handle.key_file is unset); its
    settings are put in os.environ for the test, like `sftp_server`."""
    handle = replace(_sftp_password_backend.handle(tmp_path), key_file=None)
    _export_env(handle, monkeypatch)
    return handle


# --------------------------------------------------------------------------------------------------
# TCP proxy that drops connections


class TcpFaultProxy:
    """Forwards loopback TCP connections to a target and can cut them mid-stream.

    `cut_after(n, times)`: once `n` more bytes have gone from the target to the client (over any
    connection), that connection is reset; this happens `times` times, counting afresh after each cut.
    """

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self._listener = socket.create_server((LOOPBACK, 0))
        self.port: int = self._listener.getsockname()[1]
        self.connections = 0  # accepted so far
        self.cuts = 0  # connections cut so far
        self._lock = threading.Lock()
        self._cut_every: int | None = None
        self._cuts_left = 0
        self._budget = 0
        self._open: set[socket.socket] = set()
        self._closed = False
        threading.Thread(target=self._accept, name="tcp-fault-proxy", daemon=True).start()

    def cut_after(self, nbytes: int, times: int = 1) -> None:
        with self._lock:
            self._cut_every, self._cuts_left, self._budget = nbytes, times, nbytes

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            sockets, self._open = list(self._open), set()
        for s in sockets:
            _close_quietly(s)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close_quietly(client)
                continue
            with self._lock:
                self.connections += 1
                self._open |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, downstream: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                cut = False
                if downstream:
                    with self._lock:
                        if self._cut_every is not None:
                            if len(data) >= self._budget:
                                data, cut = data[: self._budget], True
                                self.cuts += 1
                                self._cuts_left -= 1
                                if self._cuts_left > 0:
                                    self._budget = self._cut_every
                                else:
                                    self._cut_every = None
                            else:
                                self._budget -= len(data)
                if data:
                    sink.sendall(data)
                if cut:
                    for s in (source, sink):
                        _reset(s)
                    return
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            for s in (source, sink):
                _close_quietly(s)


def _reset(s: socket.socket) -> None:
    """Close abruptly (RST), as a dropped link or a killed peer would look."""
    with contextlib.suppress(OSError):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    _close_quietly(s)


def _close_quietly(s: socket.socket) -> None:
    # shutdown first: close() alone neither wakes a thread blocked in recv() on it nor releases it
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        s.close()


@pytest.fixture
def tcp_fault_proxy() -> Iterator[Callable[[str, int], TcpFaultProxy]]:
    proxies: list[TcpFaultProxy] = []

    def make(host: str, port: int) -> TcpFaultProxy:
        proxy = TcpFaultProxy(host, port)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()


# --------------------------------------------------------------------------------------------------
# S3: moto standalone server


@dataclass(frozen=True)
class S3ServerHandle:
    endpoint_url: str

    def env(self, **overrides: str) -> dict[str, str]:
        """Settings for `open_source` / `open_destination` against this server (fake credentials)."""
        return {"REVREC_S3_ENDPOINT_URL": self.endpoint_url, **FAKE_AWS_ENV, **overrides}

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=FAKE_AWS_ENV["AWS_DEFAULT_REGION"],
            aws_access_key_id=FAKE_AWS_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        )

    def put_many(self, bucket: str, objects: dict[str, bytes]) -> None:
        """Store many objects at once, straight into moto's store (its server runs in this process):
        thousands of PUTs over HTTP would take seconds."""
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        for key, body in objects.items():
            backend.put_object(bucket, key, body)

    def create_bucket(self, name: str = "revrec-test"):
        """Create bucket `name`; return a boto3 client to fill it."""
        client = self.client()
        client.create_bucket(Bucket=name)
        return client


@pytest.fixture(scope="session")
def _moto_endpoint() -> Iterator[str]:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        require(False, "moto[server] (pip install 'moto[server]')")
    port = free_port()
    server = ThreadedMotoServer(ip_address=LOOPBACK, port=port, verbose=False)
    server.start()
    yield f"http://{LOOPBACK}:{port}"
    server.stop()


@pytest.fixture
def s3_server(_moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3ServerHandle:
    """moto S3, emptied for this test; fake AWS credentials in os.environ so no real account is used."""
    request = urllib.request.Request(f"{_moto_endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("REVREC_S3_ENDPOINT_URL", _moto_endpoint)
    return S3ServerHandle(_moto_endpoint)


# --------------------------------------------------------------------------------------------------
# HTTP proxy that answers with errors


_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
}


class HttpFaultProxy:
    """Forwards HTTP requests to `upstream_url`; `fail_next(n, status)` answers the next n with an error.

    Errors carry an S3-style XML body (`<Error><Code>...`), as S3 sends them. `requests` counts every
    request received, `failed` those answered with an injected error.
    """

    def __init__(self, upstream_url: str):
        parsed = urlparse(upstream_url)
        self.upstream = (parsed.hostname or LOOPBACK, parsed.port or 80)
        self.requests = 0
        self.failed = 0
        self._lock = threading.Lock()
        self._fail_left = 0
        self._fail_status = 500
        self._fail_code = "InternalError"
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

            def _handle(self) -> None:
                body = self._read_body()
                with proxy._lock:
                    proxy.requests += 1
                    inject = proxy._fail_left > 0
                    if inject:
                        proxy._fail_left -= 1
                        proxy.failed += 1
                    status, code = proxy._fail_status, proxy._fail_code
                if inject:
                    payload = (
                        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                        f"<Message>Injected by the test proxy</Message><RequestId>proxy</RequestId></Error>"
                    ).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    return
                connection = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                    if body is not None:
                        headers["Content-Length"] = str(len(body))
                    connection.request(self.command, self.path, body=body, headers=headers)
                    response = connection.getresponse()
                    payload = response.read()
                    self.send_response(response.status, response.reason)
                    for name, value in response.getheaders():
                        if name.lower() not in _HOP_BY_HOP and name.lower() not in (
                            "content-length",
                            "date",
                            "server",
                        ):
                            self.send_header(name, value)
                    length = response.getheader("Content-Length") if self.command == "HEAD" else None
                    self.send_header("Content-Length", length or str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                finally:
                    connection.close()

            def _read_body(self) -> bytes | None:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else None

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self._server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.endpoint_url = f"http://{LOOPBACK}:{self.port}"
        threading.Thread(target=self._server.serve_forever, name="http-fault-proxy", daemon=True).start()

    def fail_next(self, count: int, status: int = 500, code: str = "InternalError") -> None:
        with self._lock:
            self._fail_left, self._fail_status, self._fail_code = count, status, code

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def http_fault_proxy() -> Iterator[Callable[[str], HttpFaultProxy]]:
    proxies: list[HttpFaultProxy] = []

    def make(upstream_url: str) -> HttpFaultProxy:
        proxy = HttpFaultProxy(upstream_url)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()
