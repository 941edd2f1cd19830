"""Where input files come from and where export files go (SPEC §2 Sources, §6 Destinations).

A source lists files (cheaply: name, size, modification time or ETag) and downloads one to a local
temporary file, verifying it; a destination writes a finished local file atomically. Implementations:
local folder (`file://`), SFTP (`sftp://`, lib/sftp.py) and S3 (`s3://`, lib/s3.py).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

INPUT_SUFFIXES = (".csv", ".xlsx", ".zip")


class SourceError(Exception):
    """A source or destination could not be read or written; the message says what to do."""


@dataclass(frozen=True)
class RemoteFile:
    """A file as listed by a source. `path` is relative to the source root, with `/` separators."""

    path: str
    size: int
    mtime: float | None = None  # seconds since the epoch (local, SFTP)
    etag: str | None = None  # S3

    @property
    def version_tag(self) -> str:
        """What identifies this version of the file without reading it (ledger column)."""
        if self.etag:
            return f"etag:{self.etag}"
        return f"mtime:{self.mtime:.6f}" if self.mtime is not None else "mtime:"


@dataclass(frozen=True)
class SkippedFile:
    """A file a source left out of its last listing, and why (SFTP: still being written)."""

    path: str
    reason: str


class FileSource(Protocol):
    uri: str

    def list_files(self) -> list[RemoteFile]:
        """Every input file (.csv, .xlsx, .zip, case-insensitive) below the root, sorted by path."""
        ...

    def download(self, remote: RemoteFile, dest: Path) -> str:
        """Copy `remote` to `dest` (a local path), verify it, and return its SHA-256 hex digest."""
        ...


class ExportDestination(Protocol):
    uri: str

    def write_file(self, name: str, local_path: Path) -> None:
        """Publish `local_path` as `name` at the destination atomically (temp name, then rename)."""
        ...


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_input_file(name: str) -> bool:
    return name.lower().endswith(INPUT_SUFFIXES) and not Path(name).name.startswith(".")


class LocalFolderSource:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.uri = f"file://{self.root}"

    def list_files(self) -> list[RemoteFile]:
        if not self.root.exists():
            raise SourceError(
                f"The input folder {self.root} does not exist: create it or set REVREC_SOURCE to the folder "
                "that receives the files."
            )
        files = []
        for p in sorted(self.root.rglob("*")):
            if p.is_file() and is_input_file(p.name):
                st = p.stat()
                files.append(RemoteFile(p.relative_to(self.root).as_posix(), st.st_size, st.st_mtime))
        return files

    def download(self, remote: RemoteFile, dest: Path) -> str:
        shutil.copyfile(self.root / remote.path, dest)
        return sha256_file(dest)


class LocalFolderDestination:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.uri = f"file://{self.root}"

    def write_file(self, name: str, local_path: Path) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.root)
        os.close(fd)
        try:
            # A file written on the same file system is linked rather than copied (a change-sized continuous
            # export at 1M lines is 200 MB); the caller's copy may go away afterwards, the link stays.
            os.unlink(tmp)
            try:
                os.link(local_path, tmp)
            except OSError:
                shutil.copyfile(local_path, tmp)
            # Durable before it is published, and published durably: the caller records the file as written
            # (the continuous export's state, the close) right after, and a power cut must not leave that record
            # beside a lost or empty file (docs/decisions.md).
            _fsync(tmp)
            os.replace(tmp, self.root / name)
            _fsync((self.root / name).parent, directory=True)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _fsync(path: str | Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _local_path(uri: str) -> Path:
    # file://./data/inbox (relative) and file:///abs/path both work
    rest = uri[len("file://") :]
    return Path(rest)


def open_source(uri: str, env: Mapping[str, str] | None = None) -> FileSource:
    """A source for `uri`; credentials come from `env` (default: the process environment)."""
    env = os.environ if env is None else env
    scheme = urlparse(uri).scheme
    if scheme == "file":
        return LocalFolderSource(_local_path(uri))
    if scheme == "sftp":
        from revrec_pipelines.lib.sftp import SftpSource

        return SftpSource.from_uri(uri, env)
    if scheme == "s3":
        from revrec_pipelines.lib.s3 import S3Source

        return S3Source.from_uri(uri, env)
    raise SourceError(f"Unsupported source {uri!r}: use file://PATH, sftp://USER@HOST:PORT/PATH or s3://BUCKET/PREFIX")


def open_destination(uri: str, env: Mapping[str, str] | None = None) -> ExportDestination:
    env = os.environ if env is None else env
    scheme = urlparse(uri).scheme
    if scheme == "file":
        return LocalFolderDestination(_local_path(uri))
    if scheme == "sftp":
        from revrec_pipelines.lib.sftp import SftpDestination

        return SftpDestination.from_uri(uri, env)
    if scheme == "s3":
        from revrec_pipelines.lib.s3 import S3Destination

        return S3Destination.from_uri(uri, env)
    raise SourceError(
        f"Unsupported export destination {uri!r}: use file://PATH, sftp://USER@HOST:PORT/PATH or s3://BUCKET/PREFIX"
    )
