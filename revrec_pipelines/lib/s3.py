"""S3 file source and export destination (SPEC §2 Sources, §6 Exports), through dagster-aws's S3Resource.

`s3://BUCKET/PREFIX`: the prefix is a folder (`s3://b/inbox` and `s3://b/inbox/` both mean the keys
under `inbox/`); paths are relative to it. Settings come from the environment: `REVREC_S3_ENDPOINT_URL`
(any S3-compatible store; empty for AWS) and the usual `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
`AWS_SESSION_TOKEN`, `AWS_PROFILE`, `AWS_REGION` / `AWS_DEFAULT_REGION`, and `AWS_MAX_ATTEMPTS`: attempts
per request, the first included (boto retries throttling, 5xx and lost connections; default 6).
Without keys in the environment boto's usual chain applies (profile, instance role).

A file's identity is its ETag, and a download asks for exactly that version (If-Match). A body that
breaks off mid-download is fetched again (boto does not retry those). Exports are one put_object each:
S3 shows the new object whole or not at all.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    IncompleteReadError,
    NoCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from dagster_aws.s3 import S3Resource
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from revrec_pipelines.lib.sources import RemoteFile, SkippedFile, SourceError, is_input_file

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
# Storage classes whose objects cannot be read without a restore request first.
_ARCHIVED = {"GLACIER", "DEEP_ARCHIVE"}
# A body that breaks off mid-download: boto does not retry those, we do (on a new request).
_BROKEN_BODY = (ResponseStreamingError, IncompleteReadError, ReadTimeoutError, ConnectionClosedError)


def s3_resource_from_env(env: Mapping[str, str]) -> S3Resource:
    """The dagster-aws resource for the settings in `env` (see the module docstring)."""

    def setting(*names: str) -> str | None:
        for name in names:
            value = (env.get(name) or "").strip()
            if value:
                return value
        return None

    # AWS_MAX_ATTEMPTS counts every attempt (the AWS convention); boto's and S3Resource's
    # `max_attempts` counts the retries after the first.
    attempts = setting("AWS_MAX_ATTEMPTS") or "6"
    try:
        retries = max(1, int(attempts)) - 1
    except ValueError:
        raise SourceError(f"AWS_MAX_ATTEMPTS must be a whole number, not {attempts!r}") from None
    return S3Resource(
        endpoint_url=setting("REVREC_S3_ENDPOINT_URL"),
        region_name=setting("AWS_REGION", "AWS_DEFAULT_REGION"),
        profile_name=setting("AWS_PROFILE"),
        aws_access_key_id=setting("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=setting("AWS_SECRET_ACCESS_KEY"),
        aws_session_token=setting("AWS_SESSION_TOKEN"),
        max_attempts=retries,
    )


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, prefix) for `s3://BUCKET/PREFIX`; the prefix is empty or ends with `/`."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise SourceError(f"Not an S3 address: {uri!r}; use s3://BUCKET/PREFIX")
    prefix = unquote(parsed.path).strip("/")
    return parsed.netloc, f"{prefix}/" if prefix else ""


class _S3Endpoint:
    def __init__(self, bucket: str, prefix: str, client: Any, *, endpoint_url: str | None = None):
        self.bucket = bucket
        self.prefix = prefix
        self.client = client
        self.uri = f"s3://{bucket}/{prefix}"
        self._endpoint = endpoint_url or "AWS"

    @classmethod
    def from_uri(cls, uri: str, env: Mapping[str, str]):
        bucket, prefix = parse_s3_uri(uri)
        resource = s3_resource_from_env(env)
        try:
            client = resource.get_client()
        except BotoCoreError as exc:
            raise SourceError(
                f"Could not set up the S3 client for {uri}: {type(exc).__name__}: {exc}"
            ) from None
        return cls(bucket, prefix, client, endpoint_url=resource.endpoint_url)

    def close(self) -> None:
        self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _error(self, exc: Exception, action: str, key: str | None = None) -> SourceError:
        """A SourceError that says what went wrong in words that point at the fix."""
        where = f"s3://{self.bucket}/{key if key is not None else self.prefix}"
        at = f" at {self._endpoint}" if self._endpoint != "AWS" else ""
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            attempts = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
            if code == "NoSuchBucket":
                return SourceError(
                    f"The S3 bucket {self.bucket!r} does not exist{at} (while {action}): check the bucket name "
                    "in the s3:// address and REVREC_S3_ENDPOINT_URL."
                )
            if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"):
                return SourceError(
                    f"The S3 service{at} rejected the credentials while {action} ({code}): check "
                    "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN (or AWS_PROFILE)."
                )
            if code == "AccessDenied" or status == 403:
                return SourceError(
                    f"Access to {where} was denied while {action}: the credentials in use need "
                    "s3:ListBucket and s3:GetObject on it (s3:PutObject to write exports)."
                )
            if code in ("NoSuchKey", "404") or status == 404:
                return SourceError(f"{where} no longer exists (while {action}); a later run will list again.")
            if code == "PreconditionFailed" or status == 412:
                return SourceError(
                    f"{where} changed after it was listed (while {action}); it was not imported, and a later "
                    "run will pick up the new version."
                )
            if code == "InvalidObjectState":
                return SourceError(f"{where} is archived (Glacier): restore it before it can be imported.")
            if status >= 500:
                return SourceError(
                    f"The S3 service{at} failed with HTTP {status} {code} while {action}, {attempts} times in "
                    "a row. This is usually temporary: nothing was changed, and the next run will try again."
                )
            return SourceError(f"S3 refused {action} on {where}: HTTP {status} {code}")
        if isinstance(exc, NoCredentialsError):
            return SourceError(
                f"No AWS credentials were found for {where}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "or AWS_PROFILE."
            )
        if isinstance(exc, EndpointConnectionError):
            return SourceError(
                f"Could not connect to the S3 service{at} while {action}: check REVREC_S3_ENDPOINT_URL and "
                "the network. Nothing was changed; the next run will try again."
            )
        return SourceError(f"S3 failed while {action} on {where}: {type(exc).__name__}: {exc}")


class S3Source(_S3Endpoint):
    """Input files under an S3 prefix (a `FileSource`)."""

    def __init__(self, bucket: str, prefix: str, client: Any, *, endpoint_url: str | None = None):
        super().__init__(bucket, prefix, client, endpoint_url=endpoint_url)
        self.skipped: list[SkippedFile] = []  # files left out of the last listing, and why
        self.download_attempts = 3

    def list_files(self) -> list[RemoteFile]:
        """Every input file under the prefix (all pages), sorted by path; the ETag identifies a version."""
        files: list[RemoteFile] = []
        skipped: list[SkippedFile] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            ):
                for obj in page.get("Contents", []):
                    path = obj["Key"][len(self.prefix) :]
                    if not path or path.endswith("/") or not is_input_file(path):
                        continue
                    if obj.get("StorageClass") in _ARCHIVED:
                        skipped.append(
                            SkippedFile(
                                path, f"it is archived ({obj['StorageClass']}); restore it to import it"
                            )
                        )
                        continue
                    files.append(
                        RemoteFile(
                            path=path,
                            size=int(obj["Size"]),
                            mtime=obj["LastModified"].timestamp(),
                            etag=obj["ETag"].strip('"'),
                        )
                    )
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, f"listing {self.uri}") from None
        for note in skipped:
            log.warning("Skipped %s in %s: %s", note.path, self.uri, note.reason)
        self.skipped = skipped
        return sorted(files, key=lambda f: f.path)

    def download(self, remote: RemoteFile, dest: Path) -> str:
        """Copy `remote` (exactly the listed version) to `dest` via a temporary file; return the SHA-256."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        key = self.prefix + remote.path
        action = f"downloading {remote.path}"
        request: dict[str, str] = {"Bucket": self.bucket, "Key": key}
        if remote.etag:
            request["IfMatch"] = f'"{remote.etag}"'  # never a newer version than the one listed

        def fetch() -> str:
            fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
            try:
                digest = hashlib.sha256()
                received = 0
                with os.fdopen(fd, "wb") as out:
                    response = self.client.get_object(**request)
                    for chunk in response["Body"].iter_chunks(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                if received != remote.size:
                    raise SourceError(
                        f"s3://{self.bucket}/{key}: received {received} bytes but the listing said {remote.size}; "
                        "it was not imported, and a later run will try again."
                    )
                os.replace(tmp, dest)
                return digest.hexdigest()
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

        retrying = Retrying(
            stop=stop_after_attempt(self.download_attempts),
            wait=wait_exponential(multiplier=0.5, max=10),
            retry=retry_if_exception_type(_BROKEN_BODY),
            reraise=True,
        )
        try:
            return retrying(fetch)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, action, key) from None


class S3Destination(_S3Endpoint):
    """Export files written under an S3 prefix (an `ExportDestination`)."""

    def write_file(self, name: str, local_path: Path) -> None:
        """One put_object: S3 makes the new object visible whole or not at all."""
        parts = [p for p in name.split("/") if p]
        if not parts or any(p in (".", "..") for p in parts) or name.startswith("/"):
            raise SourceError(f"Invalid export file name {name!r}: it must be a relative path without '..'")
        key = self.prefix + "/".join(parts)
        content_type = (
            "text/csv; charset=utf-8" if name.lower().endswith(".csv") else "application/octet-stream"
        )
        try:
            with open(local_path, "rb") as body:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, f"writing {name}", key) from None
