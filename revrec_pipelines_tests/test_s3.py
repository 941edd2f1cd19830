"""The S3 source and destination against moto's S3 server on loopback; errors injected in the network
(an HTTP proxy answering 5xx / 403, a TCP proxy dropping the connection), never in our client."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from revrec_pipelines.lib.s3 import S3Destination, S3Source, parse_s3_uri
from revrec_pipelines.lib.sources import SourceError, open_destination, open_source
from revrec_pipelines_tests.support import free_port

pytest_plugins = ["revrec_pipelines_tests.servers"]

BUCKET = "revrec-inbox"


def _put(client, key: str, body: bytes | str, bucket: str = BUCKET) -> None:
    client.put_object(Bucket=bucket, Key=key, Body=body.encode() if isinstance(body, str) else body)


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def bucket(s3_server):
    """An empty bucket; returns a plain boto3 client (test-side, to arrange objects)."""
    return s3_server.create_bucket(BUCKET)


# ---------------------------------------------------------------------------------------------------
# Listing, prefixes, identity


@pytest.mark.parametrize("uri", [f"s3://{BUCKET}/inbox", f"s3://{BUCKET}/inbox/", f"s3://{BUCKET}//inbox//"])
def test_listing_under_a_prefix_with_or_without_trailing_slash(s3_server, bucket, uri):
    _put(bucket, "inbox/customers_2025-01.csv", "Customer_Id,Customer_Name\nC1,Acme\n")
    _put(bucket, "inbox/2025/01/Invoices.CSV", "x\n")
    _put(bucket, "inbox/book.xlsx", b"xlsx")
    _put(bucket, "inbox/drop.zip", b"zip")
    _put(bucket, "inbox/", b"")  # a "folder" placeholder, as consoles create them
    _put(bucket, "inbox/readme.txt", "not an input")
    _put(bucket, "inbox/.partial.csv", "hidden")
    _put(bucket, "inbox2/not_under_the_prefix.csv", "x\n")
    _put(bucket, "top.csv", "x\n")

    with open_source(uri, s3_server.env()) as source:
        files = source.list_files()

    assert [f.path for f in files] == [
        "2025/01/Invoices.CSV",
        "book.xlsx",
        "customers_2025-01.csv",
        "drop.zip",
    ]
    customers = files[2]
    body = b"Customer_Id,Customer_Name\nC1,Acme\n"
    assert customers.size == len(body)
    assert customers.etag == _md5(body)  # the ETag without its quotes
    assert customers.version_tag == f"etag:{_md5(body)}"
    assert customers.mtime is not None


def test_listing_a_whole_bucket(s3_server, bucket):
    _put(bucket, "top.csv", "x\n")
    _put(bucket, "inbox/a.csv", "x\n")
    source = open_source(f"s3://{BUCKET}", s3_server.env())
    assert [f.path for f in source.list_files()] == ["inbox/a.csv", "top.csv"]
    assert parse_s3_uri(f"s3://{BUCKET}") == (BUCKET, "")
    assert parse_s3_uri(f"s3://{BUCKET}/a/b/") == (BUCKET, "a/b/")


def test_more_than_1000_keys_are_listed_page_by_page(s3_server, bucket, http_fault_proxy):
    keys = [f"inbox/usage/usage_{i:05d}.csv" for i in range(1205)]
    s3_server.put_many(BUCKET, {key: key.encode() for key in keys})
    _put(bucket, "archive/old.csv", "x")

    proxy = http_fault_proxy(s3_server.endpoint_url)  # counts the requests the listing makes
    source = S3Source.from_uri(
        f"s3://{BUCKET}/inbox", s3_server.env(REVREC_S3_ENDPOINT_URL=proxy.endpoint_url)
    )
    files = source.list_files()

    assert len(files) == 1205
    assert [f.path for f in files] == [k.removeprefix("inbox/") for k in keys]
    assert proxy.requests == 2  # two pages of at most 1,000 keys


def test_etag_identifies_the_version(s3_server, bucket):
    _put(bucket, "inbox/products.csv", "Product_Id\nP1\n")
    _put(bucket, "inbox/customers.csv", "Customer_Id\nC1\n")
    source = S3Source.from_uri(f"s3://{BUCKET}/inbox", s3_server.env())
    first = {f.path: f for f in source.list_files()}

    _put(bucket, "inbox/products.csv", "Product_Id\nP1\n")  # same content written again
    _put(bucket, "inbox/customers.csv", "Customer_Id\nC2\n")  # same size, new content
    second = {f.path: f for f in source.list_files()}

    assert second["products.csv"].version_tag == first["products.csv"].version_tag
    assert second["customers.csv"].size == first["customers.csv"].size
    assert second["customers.csv"].version_tag != first["customers.csv"].version_tag


# ---------------------------------------------------------------------------------------------------
# Downloads


def test_download_verifies_size_and_returns_sha256(s3_server, bucket, tmp_path):
    payload = os.urandom(2 * 1024 * 1024 + 5)
    _put(bucket, "inbox/invoices/invoices_2025-01.csv", payload)
    source = S3Source.from_uri(f"s3://{BUCKET}/inbox/", s3_server.env())
    (remote,) = source.list_files()
    dest = tmp_path / "dl" / "invoices_2025-01.csv"

    assert source.download(remote, dest) == hashlib.sha256(payload).hexdigest()
    assert dest.read_bytes() == payload
    assert os.listdir(dest.parent) == ["invoices_2025-01.csv"]


def test_download_never_returns_a_newer_version_than_listed(s3_server, bucket, tmp_path):
    _put(bucket, "inbox/customers.csv", "Customer_Id\nC1\n")
    source = S3Source.from_uri(f"s3://{BUCKET}/inbox", s3_server.env())
    (remote,) = source.list_files()
    _put(bucket, "inbox/customers.csv", "Customer_Id\nC9\n")  # replaced after the listing
    dest = tmp_path / "dl" / "customers.csv"
    with pytest.raises(SourceError, match="changed after it was listed"):
        source.download(remote, dest)
    assert os.listdir(dest.parent) == []

    bucket.delete_object(Bucket=BUCKET, Key="inbox/customers.csv")
    with pytest.raises(SourceError, match="no longer exists"):
        source.download(source.list_files()[0] if source.list_files() else remote, dest)


def test_connection_dropped_mid_download_is_retried(s3_server, bucket, tcp_fault_proxy, tmp_path):
    payload = os.urandom(3 * 1024 * 1024)
    _put(bucket, "inbox/usage.csv", payload)
    port = int(s3_server.endpoint_url.rsplit(":", 1)[1])
    proxy = tcp_fault_proxy("127.0.0.1", port)
    env = s3_server.env(REVREC_S3_ENDPOINT_URL=f"http://127.0.0.1:{proxy.port}")
    source = S3Source.from_uri(f"s3://{BUCKET}/inbox", env)
    (remote,) = source.list_files()
    proxy.cut_after(500_000)  # the body breaks off a sixth of the way in
    dest = tmp_path / "dl" / "usage.csv"

    assert source.download(remote, dest) == hashlib.sha256(payload).hexdigest()
    assert proxy.cuts == 1
    assert dest.read_bytes() == payload
    assert os.listdir(dest.parent) == ["usage.csv"]


# ---------------------------------------------------------------------------------------------------
# Errors


def test_missing_bucket(s3_server, tmp_path):
    local = tmp_path / "x.csv"
    local.write_text("x\n")
    with pytest.raises(SourceError, match="The S3 bucket 'no-such-bucket' does not exist"):
        open_source("s3://no-such-bucket/inbox", s3_server.env()).list_files()
    with pytest.raises(SourceError, match="does not exist"):
        open_destination("s3://no-such-bucket/exports", s3_server.env()).write_file("x.csv", local)


def test_a_transient_500_is_retried_and_a_persistent_one_reported(s3_server, bucket, http_fault_proxy):
    _put(bucket, "inbox/a.csv", "x\n")
    proxy = http_fault_proxy(s3_server.endpoint_url)
    env = s3_server.env(REVREC_S3_ENDPOINT_URL=proxy.endpoint_url, AWS_MAX_ATTEMPTS="2")

    proxy.fail_next(1)  # one 500, then the real answer
    assert [f.path for f in S3Source.from_uri(f"s3://{BUCKET}/inbox", env).list_files()] == ["a.csv"]
    assert proxy.failed == 1

    proxy.fail_next(10)
    with pytest.raises(SourceError) as excinfo:
        S3Source.from_uri(f"s3://{BUCKET}/inbox", env).list_files()
    message = str(excinfo.value)
    assert "failed with HTTP 500 InternalError while listing" in message
    assert "2 times in a row" in message and "next run will try again" in message
    assert proxy.failed == 3


def test_access_denied_and_bad_credentials_say_what_to_check(s3_server, bucket, http_fault_proxy, tmp_path):
    proxy = http_fault_proxy(s3_server.endpoint_url)
    env = s3_server.env(REVREC_S3_ENDPOINT_URL=proxy.endpoint_url, AWS_SECRET_ACCESS_KEY="TopSecretValue123")

    proxy.fail_next(1, status=403, code="AccessDenied")
    with pytest.raises(SourceError, match=f"Access to s3://{BUCKET}/inbox/ was denied while listing"):
        S3Source.from_uri(f"s3://{BUCKET}/inbox", env).list_files()

    local = tmp_path / "revenue.csv"
    local.write_text("x\n")
    proxy.fail_next(1, status=403, code="SignatureDoesNotMatch")
    with pytest.raises(SourceError) as excinfo:
        S3Destination.from_uri(f"s3://{BUCKET}/exports", env).write_file("revenue.csv", local)
    assert "rejected the credentials while writing revenue.csv" in str(excinfo.value)
    assert "AWS_SECRET_ACCESS_KEY" in str(excinfo.value)
    assert "TopSecretValue123" not in str(excinfo.value)


def test_an_unreachable_endpoint(s3_server):
    env = s3_server.env(REVREC_S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}", AWS_MAX_ATTEMPTS="1")
    with pytest.raises(SourceError, match="Could not connect to the S3 service at http://127.0.0.1"):
        S3Source.from_uri(f"s3://{BUCKET}/inbox", env).list_files()


# ---------------------------------------------------------------------------------------------------
# Export destination


def test_export_is_one_put_under_the_prefix_and_overwrites(s3_server, bucket, tmp_path):
    v1, v2 = tmp_path / "v1.csv", tmp_path / "v2.csv"
    v1.write_text("Closed_Period,Export_Timestamp\n202501,2025-02-01T00:00:00Z\n")
    v2.write_text("Closed_Period,Export_Timestamp\n202501,2025-02-02T00:00:00Z\n")
    name = "closedperiodexport-control-202501.csv"
    with open_destination(f"s3://{BUCKET}/exports", s3_server.env()) as destination:
        destination.write_file(name, v1)
        destination.write_file(name, v2)
        destination.write_file("2025/01/revenue.csv", v1)
        with pytest.raises(SourceError, match="without '..'"):
            destination.write_file("../outside.csv", v1)

    keys = sorted(o["Key"] for o in bucket.list_objects_v2(Bucket=BUCKET)["Contents"])
    assert keys == ["exports/2025/01/revenue.csv", f"exports/{name}"]
    obj = bucket.get_object(Bucket=BUCKET, Key=f"exports/{name}")
    assert obj["Body"].read() == v2.read_bytes()
    assert obj["ContentType"].startswith("text/csv")


def test_destination_reads_credentials_from_the_given_env(s3_server, bucket, tmp_path):
    local = Path(tmp_path / "x.csv")
    local.write_text("x\n")
    destination = S3Destination.from_uri(f"s3://{BUCKET}", s3_server.env())
    destination.write_file("x.csv", local)
    assert bucket.get_object(Bucket=BUCKET, Key="x.csv")["Body"].read() == b"x\n"
    assert destination.uri == f"s3://{BUCKET}/"
