"""SFTP file source and export destination (SPEC §2 Sources, §6 Exports), over paramiko.

`sftp://USER@HOST:PORT/PATH`: PATH is absolute on the server (`/data/inbox`); `/~/inbox` is relative
to the login folder, and an empty path is the login folder itself. Settings come from the environment:

- `REVREC_SFTP_PASSWORD` or `REVREC_SFTP_KEY_FILE` (an unencrypted private key file); both may be set.
- `REVREC_SFTP_KNOWN_HOSTS` (required): a known_hosts file holding the server's host key. An unknown or
  changed host key is refused; nothing is ever trusted on first use.
- `REVREC_SFTP_SETTLE_SECONDS` (default 2): the pause between the two listings that reveal files still
  being written (their size or modification time changes in between); such files are skipped for this
  run and reported in `SftpSource.skipped`.

A dropped connection is retried with exponential backoff on a new connection, a bounded number of
times; authentication and host-key failures are never retried. Passwords never appear in messages.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import posixpath
import socket
import stat
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlparse

import paramiko
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from revrec_pipelines.lib.sources import RemoteFile, SkippedFile, SourceError, is_input_file

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_PORT = 22
DEFAULT_SETTLE_SECONDS = 2.0
_CHUNK = 1 << 20


def _is_read_ahead_dying_with_its_link(args: threading.ExceptHookArgs) -> bool:
    """Whether a thread's uncaught exception is paramiko's read-ahead (`SFTPFile.prefetch`) losing its link.

    That thread sends a download's read requests in the background; when the connection drops under it, it dies
    with an EOFError or OSError that nothing can catch. The download itself fails on the same dropped link and
    is retried on a new connection or reported (`_run`), so the thread's traceback says nothing an operator
    must act on; printed to the run's stderr it reads like a crash."""
    if args.exc_type is None or not issubclass(args.exc_type, (EOFError, OSError, paramiko.SSHException)):
        return False
    tb = args.exc_traceback
    while tb is not None:
        code = tb.tb_frame.f_code
        if (
            code.co_name == "_prefetch_thread"
            and tb.tb_frame.f_globals.get("__name__") == "paramiko.sftp_file"
        ):
            return True
        tb = tb.tb_next
    return False


def _quiet_read_ahead_on_dropped_links() -> None:
    """Log the read-ahead's death on a dropped link at debug level instead of as an unhandled thread exception;
    every other thread exception goes to the hook that was in place (installed once, on top of the current)."""
    previous = threading.excepthook
    if getattr(previous, "revrec_read_ahead_filter", False):
        return

    def hook(args: threading.ExceptHookArgs) -> None:
        if _is_read_ahead_dying_with_its_link(args):
            log.debug(
                "SFTP read-ahead stopped with its connection (%s: %s)", args.exc_type.__name__, args.exc_value
            )
            return
        previous(args)

    hook.revrec_read_ahead_filter = True  # type: ignore[attr-defined]
    threading.excepthook = hook


@dataclass(frozen=True)
class SftpSettings:
    """Where and how to connect; built from the URI and the environment by `from_uri`."""

    user: str
    host: str
    port: int
    root: str  # the folder on the server, absolute or relative to the login folder
    known_hosts: Path
    password: str | None = field(default=None, repr=False)
    key_file: Path | None = None
    settle_seconds: float = DEFAULT_SETTLE_SECONDS
    attempts: int = 4  # connection attempts per operation, the first included
    backoff_seconds: float = 1.0  # first wait before a retry; doubles each time
    max_backoff_seconds: float = 30.0
    timeout_seconds: float = 30.0

    @property
    def where(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    @property
    def uri(self) -> str:
        path = (
            self.root if self.root.startswith("/") else "/~" + ("" if self.root == "." else "/" + self.root)
        )
        return f"sftp://{self.where}{path}"

    @classmethod
    def from_uri(cls, uri: str, env: Mapping[str, str], **overrides: object) -> SftpSettings:
        """Parse `sftp://USER@HOST:PORT/PATH` and read credentials and options from `env`.

        `overrides` (settle_seconds, attempts, backoff_seconds, max_backoff_seconds, timeout_seconds)
        take precedence over the environment.
        """
        parsed = urlparse(uri)
        if parsed.scheme != "sftp":
            raise SourceError(f"Not an SFTP address: {uri!r}; use sftp://USER@HOST:PORT/PATH")
        if parsed.password is not None:
            # The URI is shown in logs and run metadata: a password in it would leak.
            raise SourceError(
                "The SFTP address contains a password: remove it from the address and put it in "
                "REVREC_SFTP_PASSWORD instead."
            )
        user = unquote(parsed.username or "")
        host = parsed.hostname or ""
        if not user or not host:
            raise SourceError(f"The SFTP address {uri!r} needs a user and a host: sftp://USER@HOST:PORT/PATH")
        try:
            port = parsed.port or DEFAULT_PORT
        except ValueError:
            raise SourceError(f"The SFTP address {uri!r} has an invalid port number") from None

        known_hosts_setting = (env.get("REVREC_SFTP_KNOWN_HOSTS") or "").strip()
        if not known_hosts_setting:
            raise SourceError(
                f"REVREC_SFTP_KNOWN_HOSTS is not set: it must name a known_hosts file that holds the host key "
                f"of {host}:{port}, so that the server can be verified. Ask the server's administrator for "
                "the key's fingerprint, and never accept a key you have not checked."
            )
        known_hosts = Path(known_hosts_setting).expanduser()
        if not known_hosts.is_file():
            raise SourceError(
                f"The known-hosts file {known_hosts} (REVREC_SFTP_KNOWN_HOSTS) does not exist: create it with "
                f"the host key of {host}:{port}."
            )

        password = env.get("REVREC_SFTP_PASSWORD") or None
        key_setting = (env.get("REVREC_SFTP_KEY_FILE") or "").strip()
        key_file = Path(key_setting).expanduser() if key_setting else None
        if key_file is not None and not key_file.is_file():
            raise SourceError(f"The private key file {key_file} (REVREC_SFTP_KEY_FILE) does not exist.")
        if password is None and key_file is None:
            raise SourceError(
                f"No SFTP credentials for {user}@{host}:{port}: set REVREC_SFTP_PASSWORD or "
                "REVREC_SFTP_KEY_FILE (a private key file)."
            )

        settle = env.get("REVREC_SFTP_SETTLE_SECONDS")
        try:
            settle_seconds = float(settle) if settle not in (None, "") else DEFAULT_SETTLE_SECONDS
        except ValueError:
            raise SourceError(
                f"REVREC_SFTP_SETTLE_SECONDS must be a number of seconds, not {settle!r}"
            ) from None
        if settle_seconds < 0:
            raise SourceError("REVREC_SFTP_SETTLE_SECONDS must not be negative")

        settings = cls(
            user=user,
            host=host,
            port=port,
            root=_root_from_path(unquote(parsed.path)),
            known_hosts=known_hosts,
            password=password,
            key_file=key_file,
            settle_seconds=settle_seconds,
        )
        return replace(settings, **overrides) if overrides else settings


def _root_from_path(path: str) -> str:
    if path in ("", "/~", "/~/"):
        return "."
    if path.startswith("/~/"):
        return path[3:].rstrip("/") or "."
    return path.rstrip("/") or "/"


class _ConnectionLost(Exception):
    """The connection failed or dropped in a way a new connection may fix."""


class _UnknownHostKey(Exception):
    def __init__(self, hostname: str, key: paramiko.PKey):
        super().__init__(hostname)
        self.hostname = hostname
        self.key = key


class _RefuseUnknownHost(paramiko.MissingHostKeyPolicy):
    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise _UnknownHostKey(hostname, key)


def _load_private_key(path: Path) -> paramiko.PKey:
    try:
        return paramiko.PKey.from_path(path)
    except paramiko.PasswordRequiredException:
        raise SourceError(
            f"The private key file {path} (REVREC_SFTP_KEY_FILE) is protected by a passphrase: use a key "
            "without a passphrase, kept readable only by the account that runs the pipeline."
        ) from None
    except (paramiko.SSHException, ValueError, OSError) as exc:
        raise SourceError(
            f"The private key file {path} (REVREC_SFTP_KEY_FILE) could not be read as an SSH private key "
            f"({type(exc).__name__}): point REVREC_SFTP_KEY_FILE at an OpenSSH or PEM private key."
        ) from None


class _Session:
    """One lazily opened SSH connection with its SFTP channel; reopened after a drop."""

    def __init__(self, settings: SftpSettings):
        self.settings = settings
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None

    def sftp(self) -> paramiko.SFTPClient:
        if self._sftp is not None and self.is_active():
            return self._sftp
        self.close()
        self._client, self._sftp = self._connect()
        return self._sftp

    def is_active(self) -> bool:
        transport = self._client.get_transport() if self._client is not None else None
        return transport is not None and transport.is_active()

    def close(self) -> None:
        client, self._client, self._sftp = self._client, None, None
        if client is not None:
            with contextlib.suppress(Exception):  # closing a dead connection may fail; it is gone anyway
                client.close()

    def _connect(self) -> tuple[paramiko.SSHClient, paramiko.SFTPClient]:
        s = self.settings
        pkey = _load_private_key(s.key_file) if s.key_file is not None else None
        client = paramiko.SSHClient()
        try:
            client.load_host_keys(str(s.known_hosts))
        except (OSError, paramiko.SSHException) as exc:
            raise SourceError(
                f"The known-hosts file {s.known_hosts} (REVREC_SFTP_KNOWN_HOSTS) could not be read: "
                f"{type(exc).__name__}. It must be in OpenSSH known_hosts format."
            ) from None
        client.set_missing_host_key_policy(_RefuseUnknownHost())
        try:
            client.connect(
                s.host,
                port=s.port,
                username=s.user,
                password=s.password,
                pkey=pkey,
                look_for_keys=False,
                allow_agent=False,
                timeout=s.timeout_seconds,
                banner_timeout=s.timeout_seconds,
                auth_timeout=s.timeout_seconds,
                channel_timeout=s.timeout_seconds,
            )
            sftp = client.open_sftp()
            sftp.get_channel().settimeout(s.timeout_seconds)
            return client, sftp
        except _UnknownHostKey as exc:
            client.close()
            raise SourceError(_unknown_host_message(s, exc.hostname, exc.key)) from None
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise SourceError(_changed_host_message(s, exc.hostname, exc.key, exc.expected_key)) from None
        except paramiko.AuthenticationException:
            client.close()
            raise SourceError(_auth_failed_message(s)) from None
        except socket.gaierror:
            client.close()
            raise SourceError(
                f"The SFTP host {s.host!r} could not be found: check the host name in the sftp:// address."
            ) from None
        except (paramiko.SSHException, EOFError, OSError) as exc:
            client.close()
            raise _ConnectionLost(f"could not connect to {s.host}:{s.port} ({_describe(exc)})") from exc


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _key_description(key: paramiko.PKey) -> str:
    return f"{key.get_name()} key {key.fingerprint}"


def _unknown_host_message(s: SftpSettings, hostname: str, key: paramiko.PKey) -> str:
    port_flag = f"-p {s.port} " if s.port != DEFAULT_PORT else ""
    return (
        f"The SFTP server {hostname} is not in the known-hosts file {s.known_hosts} "
        f"(REVREC_SFTP_KNOWN_HOSTS), so the connection was refused. It presented the "
        f"{_key_description(key)}. Ask the server's administrator to confirm that fingerprint, then add the "
        f"server's key to that file (for example with `ssh-keyscan {port_flag}{s.host}`, after checking the "
        "fingerprint it prints with `ssh-keygen -lf`)."
    )


def _changed_host_message(s: SftpSettings, hostname: str, got: paramiko.PKey, expected: paramiko.PKey) -> str:
    return (
        f"The SFTP server {hostname} presented a different host key from the one in {s.known_hosts} "
        f"(REVREC_SFTP_KNOWN_HOSTS): expected the {_key_description(expected)}, got the "
        f"{_key_description(got)}. The connection was refused because this can mean that someone is "
        "intercepting it. If the server's administrator confirms that the key was changed, replace the "
        "server's line in the known-hosts file with the new key; otherwise do not connect."
    )


def _auth_failed_message(s: SftpSettings) -> str:
    used = []
    if s.key_file is not None:
        used.append(f"the private key in REVREC_SFTP_KEY_FILE ({s.key_file})")
    if s.password is not None:
        used.append("the password in REVREC_SFTP_PASSWORD")
    return (
        f"SFTP authentication failed for {s.user}@{s.host}:{s.port}: the server did not accept "
        f"{' or '.join(used)}. Check that setting (and the user name in the sftp:// address) with the "
        "server's administrator."
    )


class _SftpEndpoint:
    """What the source and the destination share: settings, one connection, retries."""

    def __init__(self, settings: SftpSettings):
        self.settings = settings
        self.uri = settings.uri
        self._session = _Session(settings)
        # A source dropped without close() still releases its connection.
        self._finalizer = weakref.finalize(self, self._session.close)

    @classmethod
    def from_uri(cls, uri: str, env: Mapping[str, str], **overrides: object):
        return cls(SftpSettings.from_uri(uri, env, **overrides))

    def close(self) -> None:
        self._session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _remote(self, relative: str) -> str:
        return posixpath.join(self.settings.root, relative) if relative else self.settings.root

    def _run(self, what: str, op: Callable[[paramiko.SFTPClient], T]) -> T:
        """Run `op` on a live connection; reconnect and retry, with backoff, when the connection is lost."""
        s = self.settings

        def note_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "SFTP connection to %s lost while %s (%s); retry %d of %d",
                s.where,
                what,
                exc,
                state.attempt_number,
                s.attempts - 1,
            )

        retrying = Retrying(
            stop=stop_after_attempt(max(1, s.attempts)),
            wait=wait_exponential(multiplier=s.backoff_seconds, max=s.max_backoff_seconds),
            retry=retry_if_exception_type(_ConnectionLost),
            before_sleep=note_retry,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    sftp = self._session.sftp()
                    try:
                        return op(sftp)
                    except SourceError:
                        raise
                    except Exception as exc:
                        if isinstance(exc, EOFError | socket.timeout | paramiko.SSHException) or (
                            not self._session.is_active()
                        ):
                            self._session.close()
                            raise _ConnectionLost(_describe(exc)) from exc
                        raise self._translate(exc, what) from exc
        except _ConnectionLost as exc:
            raise SourceError(
                f"The SFTP server {s.where} could not be reached or dropped the connection while {what}, "
                f"{s.attempts} times in a row (last: {exc}). Nothing was changed; check the network and the "
                "server, then run again."
            ) from exc
        raise AssertionError("unreachable")  # pragma: no cover - Retrying either returns or raises

    def _translate(self, exc: Exception, what: str) -> SourceError:
        code = getattr(exc, "errno", None)
        if code == errno.ENOENT:
            return SourceError(f"Not found on the SFTP server {self.settings.where} while {what}: {exc}")
        if code == errno.EACCES:
            return SourceError(
                f"Permission denied on the SFTP server {self.settings.where} while {what}: ask the server's "
                f"administrator to give {self.settings.user} access."
            )
        return SourceError(f"The SFTP server {self.settings.where} failed while {what}: {_describe(exc)}")


class SftpSource(_SftpEndpoint):
    """Input files on an SFTP server (a `FileSource`)."""

    def __init__(self, settings: SftpSettings):
        super().__init__(settings)
        self.skipped: list[SkippedFile] = []  # files left out of the last listing, and why

    def list_files(self) -> list[RemoteFile]:
        """Every input file below the root, sorted by path, leaving out files still being written."""
        where = f"listing {self.settings.root}"
        first = self._run(where, self._walk)
        second = first
        if self.settings.settle_seconds > 0:
            time.sleep(self.settings.settle_seconds)
            second = self._run(where, self._walk)

        files: list[RemoteFile] = []
        skipped: list[SkippedFile] = []
        for path in sorted(second.keys() | first.keys()):
            before, after = first.get(path), second.get(path)
            if before is not None and before == after:
                files.append(RemoteFile(path, after[0], float(after[1])))
            elif after is None:
                skipped.append(SkippedFile(path, "it disappeared while the folder was being listed"))
            else:
                skipped.append(
                    SkippedFile(
                        path,
                        "it is still being written (its size or modification time changed during the "
                        f"{self.settings.settle_seconds:g} s between two listings); a later run will import it",
                    )
                )
        for note in skipped:
            log.warning("Skipped %s on %s: %s", note.path, self.settings.where, note.reason)
        self.skipped = skipped
        return files

    def _walk(self, sftp: paramiko.SFTPClient) -> dict[str, tuple[int, int]]:
        """{relative path: (size, mtime)} of every input file below the root."""
        found: dict[str, tuple[int, int]] = {}
        pending = [""]
        while pending:
            folder = pending.pop()
            try:
                entries = sftp.listdir_attr(self._remote(folder))
            except OSError as exc:
                if getattr(exc, "errno", None) == errno.ENOENT and folder == "":
                    raise SourceError(
                        f"The folder {self.settings.root} does not exist on the SFTP server "
                        f"{self.settings.where}: create it or correct the path in the sftp:// address."
                    ) from None
                raise
            for entry in entries:
                name = entry.filename
                if name in (".", ".."):
                    continue
                path = f"{folder}/{name}" if folder else name
                mode = entry.st_mode or 0
                if stat.S_ISLNK(mode):
                    # Follow links to files, never to folders (a link loop would never end).
                    try:
                        entry = sftp.stat(self._remote(path))
                    except FileNotFoundError:
                        continue
                    mode = entry.st_mode or 0
                    if stat.S_ISDIR(mode):
                        continue
                if stat.S_ISDIR(mode):
                    pending.append(path)
                elif stat.S_ISREG(mode) and is_input_file(name):
                    found[path] = (entry.st_size or 0, entry.st_mtime or 0)
        return found

    def download(self, remote: RemoteFile, dest: Path) -> str:
        """Copy `remote` to `dest` through a temporary file beside it; verify the size; return the SHA-256."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        remote_path = self._remote(remote.path)
        _quiet_read_ahead_on_dropped_links()

        def fetch(sftp: paramiko.SFTPClient) -> str:
            now = sftp.stat(remote_path)
            changed = now.st_size != remote.size or (
                remote.mtime is not None and float(now.st_mtime or 0) != remote.mtime
            )
            if changed:
                raise SourceError(
                    f"{remote.path} on {self.settings.where} changed after it was listed (it may still be "
                    "being written); it was not imported, and a later run will pick up the new version."
                )
            fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
            try:
                digest = hashlib.sha256()
                received = 0
                with os.fdopen(fd, "wb") as out, sftp.open(remote_path, "rb") as f:
                    f.prefetch(remote.size)
                    while chunk := f.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                if received != remote.size:
                    raise SourceError(
                        f"{remote.path} on {self.settings.where}: received {received} bytes but the listing "
                        f"said {remote.size}; it was not imported, and a later run will try again."
                    )
                os.replace(tmp, dest)
                return digest.hexdigest()
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

        return self._run(f"downloading {remote.path}", fetch)


class SftpDestination(_SftpEndpoint):
    """Export files written to an SFTP server (an `ExportDestination`)."""

    def write_file(self, name: str, local_path: Path) -> None:
        """Upload under a temporary name in the target folder, then rename it over `name`."""
        parts = [p for p in name.split("/") if p]
        if not parts or any(p in (".", "..") for p in parts) or name.startswith("/"):
            raise SourceError(f"Invalid export file name {name!r}: it must be a relative path without '..'")
        target = self._remote("/".join(parts))
        folder, base = posixpath.split(target)

        def upload(sftp: paramiko.SFTPClient) -> None:
            _makedirs(sftp, folder)
            tmp = posixpath.join(folder, f".{base}.{uuid.uuid4().hex[:12]}.tmp")
            try:
                sftp.put(str(local_path), tmp, confirm=True)  # confirm: the uploaded size is checked
                _replace(sftp, tmp, target)
            except BaseException:
                # Gone already, or the connection is: a leftover hidden .tmp is never imported.
                with contextlib.suppress(Exception):
                    sftp.remove(tmp)
                raise

        self._run(f"writing {name}", upload)


def _makedirs(sftp: paramiko.SFTPClient, folder: str) -> None:
    if folder in ("", ".", "/"):
        return
    try:
        if stat.S_ISDIR(sftp.stat(folder).st_mode or 0):
            return
    except FileNotFoundError:
        pass
    _makedirs(sftp, posixpath.dirname(folder.rstrip("/")))
    try:
        sftp.mkdir(folder)
    except OSError:
        if not stat.S_ISDIR(sftp.stat(folder).st_mode or 0):  # created meanwhile by someone else is fine
            raise


def _replace(sftp: paramiko.SFTPClient, tmp: str, target: str) -> None:
    """Rename `tmp` over `target`: atomic with posix-rename, else remove + rename (a short gap)."""
    try:
        sftp.posix_rename(tmp, target)
        return
    except OSError as exc:
        if getattr(exc, "errno", None) is not None:  # a real failure, not "unsupported"
            raise
        log.info("SFTP server does not support posix-rename (%s); falling back to remove + rename", exc)
    try:
        sftp.rename(tmp, target)
    except OSError:
        sftp.remove(target)  # plain SFTP rename refuses to overwrite
        sftp.rename(tmp, target)
