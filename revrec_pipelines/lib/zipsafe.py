"""Open ZIP files of CSVs safely (SPEC §2: "A ZIP holds CSVs").

`safe_zip_members(path, display_name)` checks the whole archive before anything is decompressed, then
returns `(member name, bytes)` for each CSV; `zip_csv_members` returns `ZipMember`s to stream instead.
Reading counts the bytes actually decompressed and stops at the limit. Rejected:

- names that climb out of the archive (`..`), absolute names (`/x`, `C:\\x`), control characters,
  two members with the same name;
- symbolic links and other special files (Unix mode bits in the external attributes);
- encrypted (password-protected) members, compression methods Python cannot read;
- members that are not `.csv` (folders and macOS metadata such as `__MACOSX/` and `.DS_Store` are ignored);
- zip bombs: too many members, a declared total over the limit, a member expanding more than
  `max_ratio`-fold, entries that overlap each other's data; and, while reading, a member producing more
  bytes than declared (headers can lie) or failing its CRC.

Every rejection is a `ZipRejected` (a `SourceError`) whose message names the archive, the member and
the reason in words a person who prepared the file can act on.
"""

from __future__ import annotations

import io
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from revrec_pipelines.lib.sources import SourceError

GiB = 1 << 30
MiB = 1 << 20

DEFAULT_MAX_TOTAL_UNCOMPRESSED = 2 * GiB
DEFAULT_MAX_RATIO = 200
DEFAULT_MAX_MEMBERS = 10_000
# Small members may compress extremely well (a CSV of repeated rows); only larger ones are held to the
# ratio, so a harmless 200 KB file is never mistaken for a bomb.
DEFAULT_RATIO_GRACE_BYTES = 1 * MiB

_READABLE_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # as in zipfile: 30 bytes before the name
_LOCAL_SIGNATURE = b"PK\x03\x04"
_UNIX = 3  # ZipInfo.create_system for archives made on Unix (mode bits in external_attr's high word)


class ZipRejected(SourceError):
    """A ZIP file was refused as a whole; nothing from it may be imported."""

    def __init__(self, archive: str, member: str | None, reason: str):
        self.archive = archive
        self.member = member
        self.reason = reason
        where = f"ZIP file {archive}" + (f", member {member!r}" if member is not None else "")
        super().__init__(f"{where}: {reason} Nothing from this ZIP file was imported.")


@dataclass(frozen=True)
class ZipMember:
    """One CSV inside a checked archive. `name` is its path inside the archive (`/` separators)."""

    name: str
    size: int  # uncompressed size as declared by the archive (checked again while reading)
    compressed_size: int
    archive_path: Path = field(repr=False)
    archive_name: str = field(repr=False)
    max_bytes: int = field(repr=False)
    max_ratio: float = field(repr=False)
    ratio_grace_bytes: int = field(repr=False)

    def open(self) -> IO[bytes]:
        """A binary stream of the member's content; close it when done (or use `with`)."""
        archive = zipfile.ZipFile(self.archive_path)
        try:
            inner = archive.open(self.name)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            archive.close()
            raise self._rejected_damaged(exc) from None
        except BaseException:
            archive.close()
            raise
        return io.BufferedReader(_GuardedStream(self, inner, archive), buffer_size=MiB)

    def read_bytes(self) -> bytes:
        with self.open() as stream:
            return stream.read()

    def _rejected(self, reason: str) -> ZipRejected:
        return ZipRejected(self.archive_name, self.name, reason)

    def _rejected_damaged(self, exc: BaseException) -> ZipRejected:
        return self._rejected(
            f"it is damaged and cannot be read ({exc}). Create the ZIP file again from the CSV files and "
            "send it again."
        )


class _GuardedStream(io.RawIOBase):
    """Counts decompressed bytes and stops at the first that the archive did not declare."""

    def __init__(self, member: ZipMember, inner: IO[bytes], archive: zipfile.ZipFile | None = None):
        self.member = member
        self.inner = inner
        self.archive = archive
        self.produced = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        m = self.member
        # Never ask for more than one byte past what may legitimately come, so a lie costs nothing.
        allowed = min(m.size, m.max_bytes) - self.produced
        want = min(len(buffer), max(allowed, 0) + 1)
        try:
            data = self.inner.read(want)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise m._rejected_damaged(exc) from None
        self.produced += len(data)
        if self.produced > m.max_bytes:
            raise m._rejected(
                f"it expands to more than {_size(m.max_bytes)}, the limit for one ZIP file (it may be a "
                "'zip bomb'). Split the data into smaller files."
            )
        if self.produced > m.size:
            raise m._rejected(
                f"it holds more data than the archive declares ({_size(m.size)}): the ZIP file is damaged or "
                "was built to attack the importer. Create it again from the CSV files."
            )
        ratio = self.produced / max(m.compressed_size, 1)
        if self.produced > m.ratio_grace_bytes and ratio > m.max_ratio:
            raise m._rejected(_ratio_reason(ratio, m.max_ratio))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self.inner.close()
            if self.archive is not None:
                self.archive.close()
        finally:
            super().close()


def safe_zip_members(
    path: str | Path,
    display_name: str | None = None,
    *,
    max_total_uncompressed: int = DEFAULT_MAX_TOTAL_UNCOMPRESSED,
    max_ratio: float = DEFAULT_MAX_RATIO,
    max_members: int = DEFAULT_MAX_MEMBERS,
    ratio_grace_bytes: int = DEFAULT_RATIO_GRACE_BYTES,
) -> list[tuple[str, bytes]]:
    """(name inside the archive, content) of every CSV in the ZIP at `path`, sorted by name.

    The whole archive is checked first, then each member is read under the byte limits. `display_name`
    is how the archive is called in messages (default: its file name), e.g. its path at the source.
    Raises `ZipRejected`. For archives too large to hold in memory, use `zip_csv_members` and stream.
    """
    members = zip_csv_members(
        path,
        display_name,
        max_total_uncompressed=max_total_uncompressed,
        max_ratio=max_ratio,
        max_members=max_members,
        ratio_grace_bytes=ratio_grace_bytes,
    )
    return [(member.name, member.read_bytes()) for member in members]


def zip_csv_members(
    path: str | Path,
    display_name: str | None = None,
    *,
    max_total_uncompressed: int = DEFAULT_MAX_TOTAL_UNCOMPRESSED,
    max_ratio: float = DEFAULT_MAX_RATIO,
    max_members: int = DEFAULT_MAX_MEMBERS,
    ratio_grace_bytes: int = DEFAULT_RATIO_GRACE_BYTES,
) -> list[ZipMember]:
    """The CSV members of the ZIP at `path`, sorted by name, after checking the whole archive; nothing
    is decompressed yet. Read each with `member.open()` (a stream) or `member.read_bytes()`, which
    raise `ZipRejected` if the archive turns out to have lied about its sizes or content.
    """
    path = Path(path)
    archive_name = display_name or path.name

    def reject(member: str | None, reason: str) -> ZipRejected:
        return ZipRejected(archive_name, member, reason)

    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if len(infos) > max_members:
                raise reject(
                    None,
                    f"it holds {len(infos):,} entries, more than the {max_members:,} allowed. "
                    "Split it into several ZIP files.",
                )
            with open(path, "rb") as raw:
                _check_no_overlap(infos, raw, archive.start_dir, reject)
    except zipfile.BadZipFile as exc:
        raise reject(
            None,
            f"it is not a readable ZIP file ({exc}); it may be incomplete or damaged. Send it again, or send "
            "the CSV files themselves.",
        ) from None

    members: list[ZipMember] = []
    seen: dict[str, str] = {}
    total = 0
    for info in infos:
        member = info.filename
        _check_name(member, reject)
        if _is_link_or_special(info):
            raise reject(
                member,
                "it is a symbolic link or a special file, not a plain file. A ZIP file may hold only CSV files.",
            )
        if info.is_dir() or _is_metadata(member):
            continue
        if info.flag_bits & 0x1:
            raise reject(
                member,
                "it is password-protected (encrypted). Send the ZIP file without a password; the transfer "
                "itself (SFTP, S3) protects it.",
            )
        if info.compress_type not in _READABLE_METHODS:
            raise reject(
                member,
                f"it is compressed with a method that cannot be read (method {info.compress_type}). Create the "
                "ZIP file again with the standard 'Deflate' compression.",
            )
        if not member.lower().endswith(".csv"):
            raise reject(member, "it is not a CSV file. A ZIP file may hold only CSV files (and folders).")
        key = member.lower()
        if key in seen:
            raise reject(member, f"the ZIP file holds two files with this name ({seen[key]!r}). Keep one.")
        seen[key] = member
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > ratio_grace_bytes and ratio > max_ratio:
            raise reject(member, _ratio_reason(ratio, max_ratio))
        total += info.file_size
        if total > max_total_uncompressed:
            raise reject(
                member,
                f"the files in this ZIP expand to more than {_size(max_total_uncompressed)}, the limit for one "
                "ZIP file (it may be a 'zip bomb'). Split the data into several smaller ZIP files.",
            )
        members.append(
            ZipMember(
                name=member,
                size=info.file_size,
                compressed_size=info.compress_size,
                archive_path=path,
                archive_name=archive_name,
                max_bytes=max_total_uncompressed,
                max_ratio=max_ratio,
                ratio_grace_bytes=ratio_grace_bytes,
            )
        )
    if not members:
        raise reject(None, "it holds no CSV files.")
    return sorted(members, key=lambda m: m.name)


def _check_name(member: str, reject) -> None:
    if not member or any(ord(c) < 32 or c == "\x7f" for c in member):
        raise reject(
            member, "its name is empty or contains control characters. Rename the file and zip it again."
        )
    normalized = member.replace("\\", "/")
    if normalized.startswith("/") or (len(normalized) > 1 and normalized[1] == ":"):
        raise reject(
            member,
            "its name is an absolute path (it starts with '/' or a drive letter such as 'C:'), which could "
            "write outside the import folder. Create the ZIP file again from inside the folder that holds "
            "the CSV files.",
        )
    if ".." in PurePosixPath(normalized).parts:
        raise reject(
            member,
            "its name climbs out of the archive's folder with '..', which could overwrite other files. "
            "Create the ZIP file again from the CSV files themselves.",
        )


def _is_link_or_special(info: zipfile.ZipInfo) -> bool:
    mode = info.external_attr >> 16
    if info.create_system != _UNIX or stat.S_IFMT(mode) == 0:
        return False  # no Unix file type recorded (e.g. made on Windows): a plain file or folder
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _is_metadata(member: str) -> bool:
    """Files that archivers add beside the data (macOS Finder) and hidden files: ignored, not imported."""
    parts = PurePosixPath(member.replace("\\", "/")).parts
    return parts[0] == "__MACOSX" or parts[-1].startswith(".") or parts[-1] == "Thumbs.db"


def _check_no_overlap(
    infos: Iterable[zipfile.ZipInfo], raw: IO[bytes], central_directory: int, reject
) -> None:
    """Each member's data must end before the next one starts: overlapping entries are a known zip-bomb
    construction (one compressed block counted many times) that declared sizes do not reveal."""
    ordered = sorted(infos, key=lambda i: i.header_offset)
    for current, following in zip(ordered, [*ordered[1:], None], strict=True):
        raw.seek(current.header_offset)
        header = raw.read(_LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size or header[:4] != _LOCAL_SIGNATURE:
            raise reject(
                current.filename, "its entry is damaged (no file header where the index says). Send it again."
            )
        fields = _LOCAL_HEADER.unpack(header)
        name_length, extra_length = fields[-2], fields[-1]
        data_end = (
            current.header_offset + _LOCAL_HEADER.size + name_length + extra_length + current.compress_size
        )
        limit = following.header_offset if following is not None else central_directory
        if data_end > limit:
            raise reject(
                current.filename,
                "its data overlaps another entry's, a construction used by 'zip bombs'. Create the ZIP file "
                "again with a standard tool.",
            )


def _ratio_reason(ratio: float, max_ratio: float) -> str:
    return (
        f"it expands {ratio:,.0f}-fold, more than the {max_ratio:,.0f}-fold limit. Real CSV files compress far "
        "less, so the ZIP file may be a 'zip bomb'. Send the CSV files without zipping them, or check where "
        "this file came from."
    )


def _size(n: int) -> str:
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"
