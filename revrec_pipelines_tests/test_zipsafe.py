"""ZIP safety: real archives, including hostile ones built byte by byte."""

from __future__ import annotations

import io
import os
import stat
import struct
import time
import zipfile
from pathlib import Path

import pytest

from revrec_pipelines.lib.sources import SourceError
from revrec_pipelines.lib.zipsafe import (
    ZipMember,
    ZipRejected,
    _GuardedStream,
    safe_zip_members,
    zip_csv_members,
)

CUSTOMERS = b"Customer_Id,Customer_Name\nC1,Acme\n"
ORDERS = b"Sales_Order_Id,Sales_Order_Item_Id\nSO1,SO1-1\n"


def _zip(
    path: Path, entries: list[tuple[str | zipfile.ZipInfo, bytes]], method: int = zipfile.ZIP_DEFLATED
) -> Path:
    with zipfile.ZipFile(path, "w", compression=method) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return path


def _rejected(path: Path, **limits) -> ZipRejected:
    with pytest.raises(ZipRejected) as excinfo:
        safe_zip_members(path, "inbox/drop.zip", **limits)
    assert isinstance(excinfo.value, SourceError)  # the importer rejects the file, the run goes on
    assert str(excinfo.value).startswith("ZIP file inbox/drop.zip")
    assert str(excinfo.value).endswith("Nothing from this ZIP file was imported.")
    return excinfo.value


def _patch_headers(data: bytes, *, flag_bits: int | None = None, file_size: int | None = None) -> bytes:
    """Rewrite fields of every local and central header, as a hand-made or hostile archive would have."""
    out = bytearray(data)
    for signature, flags_at, size_at in ((b"PK\x03\x04", 6, 22), (b"PK\x01\x02", 8, 24)):
        start = 0
        while (at := out.find(signature, start)) != -1:
            if flag_bits is not None:
                old = struct.unpack_from("<H", out, at + flags_at)[0]
                struct.pack_into("<H", out, at + flags_at, old | flag_bits)
            if file_size is not None:
                struct.pack_into("<L", out, at + size_at, file_size)
            start = at + 4
    return bytes(out)


# ---------------------------------------------------------------------------------------------------
# Accepted


def test_csv_members_in_safe_folders_are_returned_sorted(tmp_path):
    path = _zip(
        tmp_path / "drop.zip",
        [
            ("2025/01/sales_orders_jan.csv", ORDERS),
            ("customers.CSV", CUSTOMERS),
            ("2025/", b""),  # a folder entry
            ("__MACOSX/._customers.CSV", b"\0\5\26\7"),  # macOS Finder metadata
            (".DS_Store", b"\0"),
        ],
    )
    assert safe_zip_members(path, "inbox/drop.zip") == [
        ("2025/01/sales_orders_jan.csv", ORDERS),
        ("customers.CSV", CUSTOMERS),
    ]


def test_streaming_members(tmp_path):
    big = b"Customer_Id,Customer_Name\n" + b"".join(b"C%07d,Customer %07d\n" % (i, i) for i in range(200_000))
    path = _zip(tmp_path / "drop.zip", [("customers.csv", big)], method=zipfile.ZIP_STORED)
    (member,) = zip_csv_members(path)
    assert (member.name, member.size) == ("customers.csv", len(big))
    with member.open() as stream:
        assert stream.readline() == b"Customer_Id,Customer_Name\n"
        assert stream.read() == big[len(b"Customer_Id,Customer_Name\n") :]


def test_small_files_that_compress_very_well_are_not_bombs(tmp_path):
    repetitive = b"Sales_Order_Item_Id,Usage_Date,Amount\n" + b"SO1-1,2025-01-01,0.00\n" * 40_000  # ~880 KB
    path = _zip(tmp_path / "drop.zip", [("usage.csv", repetitive)])
    assert zipfile.ZipFile(path).getinfo("usage.csv").compress_size * 200 < len(repetitive)
    assert safe_zip_members(path) == [("usage.csv", repetitive)]


# ---------------------------------------------------------------------------------------------------
# Names


@pytest.mark.parametrize(
    ("member", "words"),
    [
        ("../../etc/cron.d/evil.csv", "climbs out of the archive's folder with '..'"),
        ("data/../../evil.csv", "climbs out of the archive's folder with '..'"),
        ("..\\..\\windows\\evil.csv", "climbs out of the archive's folder with '..'"),
        ("/etc/evil.csv", "is an absolute path"),
        ("C:/Windows/evil.csv", "is an absolute path"),
        ("C:\\evil.csv", "is an absolute path"),
        ("bad\x01name.csv", "control characters"),
    ],
)
def test_unsafe_names_are_rejected(tmp_path, member, words):
    path = _zip(tmp_path / "drop.zip", [("customers.csv", CUSTOMERS), (zipfile.ZipInfo(member), CUSTOMERS)])
    error = _rejected(path)
    assert error.member == member
    assert words in str(error)
    assert repr(member) in str(error)


def test_traversal_hidden_in_ignored_metadata_is_still_rejected(tmp_path):
    path = _zip(tmp_path / "drop.zip", [("customers.csv", CUSTOMERS), ("__MACOSX/../../evil", b"x")])
    assert "'..'" in str(_rejected(path))


def test_symlinks_are_rejected(tmp_path):
    link = zipfile.ZipInfo("customers.csv")
    link.create_system = 3  # Unix
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    path = _zip(tmp_path / "drop.zip", [(link, b"/etc/passwd")])
    error = _rejected(path)
    assert error.member == "customers.csv" and "symbolic link" in str(error)


def test_regular_unix_files_with_mode_bits_are_fine(tmp_path):
    plain = zipfile.ZipInfo("customers.csv")
    plain.create_system = 3
    plain.external_attr = (stat.S_IFREG | 0o644) << 16
    assert safe_zip_members(_zip(tmp_path / "drop.zip", [(plain, CUSTOMERS)])) == [
        ("customers.csv", CUSTOMERS)
    ]


def test_non_csv_members_duplicates_and_empty_archives_are_rejected(tmp_path):
    nested = _zip(
        tmp_path / "nested.zip", [("customers.csv", CUSTOMERS), ("inner.zip", b"PK\x05\x06" + b"\0" * 18)]
    )
    assert "not a CSV file" in str(_rejected(nested))

    with pytest.warns(UserWarning, match="Duplicate name"):
        twice = _zip(
            tmp_path / "twice.zip", [("customers.csv", CUSTOMERS), ("customers.csv", CUSTOMERS + b"C2,B\n")]
        )
    assert "two files with this name" in str(_rejected(twice))

    empty = _zip(tmp_path / "empty.zip", [("folder/", b"")])
    assert "holds no CSV files" in str(_rejected(empty))


def test_a_file_that_is_not_a_zip(tmp_path):
    path = tmp_path / "drop.zip"
    path.write_bytes(b"Customer_Id\nC1\n")
    error = _rejected(path)
    assert error.member is None and "not a readable ZIP file" in str(error)

    truncated = _zip(tmp_path / "t.zip", [("customers.csv", os.urandom(10_000))])
    truncated.write_bytes(truncated.read_bytes()[:5_000])  # an upload cut short
    assert "not a readable ZIP file" in str(_rejected(truncated))


# ---------------------------------------------------------------------------------------------------
# Encryption and compression methods


def test_encrypted_members_are_rejected(tmp_path):
    plain = _zip(tmp_path / "plain.zip", [("customers.csv", CUSTOMERS)], method=zipfile.ZIP_STORED)
    encrypted = tmp_path / "drop.zip"
    encrypted.write_bytes(_patch_headers(plain.read_bytes(), flag_bits=0x1))  # the "encrypted" flag
    error = _rejected(encrypted)
    assert error.member == "customers.csv" and "password-protected" in str(error)


def test_unreadable_compression_methods_are_rejected(tmp_path):
    path = tmp_path / "drop.zip"
    data = bytearray(
        _zip(tmp_path / "p.zip", [("customers.csv", CUSTOMERS)], method=zipfile.ZIP_STORED).read_bytes()
    )
    for signature, method_at in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        struct.pack_into("<H", data, data.find(signature) + method_at, 9)  # Deflate64
    path.write_bytes(bytes(data))
    assert "compressed with a method that cannot be read (method 9)" in str(_rejected(path))


# ---------------------------------------------------------------------------------------------------
# Zip bombs


def test_a_high_compression_ratio_is_rejected_before_decompressing(tmp_path):
    path = _zip(tmp_path / "drop.zip", [("usage.csv", b"0" * (64 * 1024 * 1024))])  # 64 MiB -> ~64 KiB
    started = time.monotonic()
    error = _rejected(path)
    assert time.monotonic() - started < 1  # nothing was inflated
    assert error.member == "usage.csv"
    assert "-fold, more than the 200-fold limit" in str(error) and "zip bomb" in str(error)


def test_a_declared_total_over_the_limit_is_rejected(tmp_path):
    path = _zip(tmp_path / "drop.zip", [(f"usage_{i}.csv", os.urandom(400_000)) for i in range(4)])
    error = _rejected(path, max_total_uncompressed=1_000_000)
    assert error.member == "usage_2.csv"  # the member that crosses the limit
    assert "expand to more than 976.6 KiB" in str(error) and "Split the data" in str(error)


def test_too_many_members_are_rejected(tmp_path):
    path = _zip(tmp_path / "drop.zip", [(f"usage_{i}.csv", b"x\n") for i in range(6)])
    assert "holds 6 entries, more than the 5 allowed" in str(_rejected(path, max_members=5))


def test_a_member_that_lies_about_its_size_is_stopped_while_reading(tmp_path):
    # The headers claim 1,000 bytes; the data inflates to 32 MiB. Declared checks pass, reading must stop.
    honest = _zip(tmp_path / "honest.zip", [("usage.csv", b"0" * (32 * 1024 * 1024))])
    lying = tmp_path / "drop.zip"
    lying.write_bytes(_patch_headers(honest.read_bytes(), file_size=1_000))
    (member,) = zip_csv_members(lying, "inbox/drop.zip")
    assert member.size == 1_000
    with pytest.raises(ZipRejected) as excinfo:
        member.read_bytes()
    assert excinfo.value.member == "usage.csv" and "damaged" in str(excinfo.value)


def test_the_read_guard_stops_at_the_first_undeclared_byte():
    member = ZipMember("usage.csv", 1_000, 10, Path("x.zip"), "drop.zip", 2**31, 1e9, 1 << 20)
    stream = io.BufferedReader(_GuardedStream(member, io.BytesIO(b"0" * 50_000)))
    with pytest.raises(ZipRejected, match="more data than the archive declares"):
        stream.read()

    small_limit = ZipMember("usage.csv", 50_000, 10, Path("x.zip"), "drop.zip", 4_096, 1e9, 1 << 20)
    with pytest.raises(ZipRejected, match="expands to more than 4.0 KiB"):
        io.BufferedReader(_GuardedStream(small_limit, io.BytesIO(b"0" * 50_000))).read()

    ratio = ZipMember("usage.csv", 50_000, 10, Path("x.zip"), "drop.zip", 2**31, 200, 1_024)
    with pytest.raises(ZipRejected, match="-fold"):
        io.BufferedReader(_GuardedStream(ratio, io.BytesIO(b"0" * 50_000))).read()


def test_overlapping_entries_are_rejected(tmp_path):
    # Two central-directory entries pointing at the same compressed data: counted twice, stored once.
    one = _zip(tmp_path / "one.zip", [("a.csv", CUSTOMERS)]).read_bytes()
    central = one.find(b"PK\x01\x02")
    end = one.find(b"PK\x05\x06")
    entry = one[central:end]
    twin = bytearray(entry)
    twin[46 : 46 + len("a.csv")] = b"b.csv"
    eocd = bytearray(one[end:])
    struct.pack_into("<HH", eocd, 8, 2, 2)  # two entries
    struct.pack_into("<L", eocd, 12, 2 * len(entry))  # central directory size
    path = tmp_path / "drop.zip"
    path.write_bytes(one[:central] + entry + bytes(twin) + bytes(eocd))
    error = _rejected(path)
    assert "overlaps another entry" in str(error)


def test_corrupted_content_is_rejected_when_read(tmp_path):
    good = bytearray(
        _zip(tmp_path / "g.zip", [("customers.csv", CUSTOMERS)], method=zipfile.ZIP_STORED).read_bytes()
    )
    at = good.find(CUSTOMERS)
    good[at] ^= 0xFF  # one flipped byte in transit
    path = tmp_path / "drop.zip"
    path.write_bytes(bytes(good))
    error = _rejected(path)
    assert "damaged" in str(error) and "CRC" in str(error)
