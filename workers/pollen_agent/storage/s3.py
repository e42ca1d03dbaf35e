"""S3 storage (AWS, SeaweedFS, MinIO...): one bucket, optionally under a prefix.

Only the agent holds these credentials. Browsers and hospital systems get
short-lived presigned URLs instead; the hub never sees a key or a pixel.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any, BinaryIO, NoReturn, cast

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)

from pollen_agent.errors import RetryableError, UserError
from pollen_agent.storage.base import (
    ObjectInfo,
    ObjectNotFound,
    PresignedRequest,
    Storage,
    StorageAccessDenied,
    validate_expiry,
    validate_key,
    validate_prefix,
)

DENIED_CODES = {
    "AccessDenied",
    "403",
    "Forbidden",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AllAccessDisabled",
    "AccountProblem",
}
MISSING_CODES = {"NoSuchKey", "404", "NotFound"}
RETRY_CODES = {
    "SlowDown",
    "ServiceUnavailable",
    "InternalError",
    "RequestTimeout",
    "Throttling",
    "ThrottlingException",
    "RequestTimeTooSkewed",
}


def _raise_translated(exc: Exception, what: str) -> NoReturn:
    """Turn a botocore error into the agent error that says what to do."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in DENIED_CODES or status == 403:
            raise StorageAccessDenied(
                f"Site storage refused access to {what} ({code or status}). "
                "Check the agent's storage credentials and bucket policy."
            ) from exc
        if code == "NoSuchBucket":
            raise UserError(
                f"The storage bucket for {what} does not exist; check the agent's settings.",
                code="storage_misconfigured",
            ) from exc
        if code in MISSING_CODES or status == 404:
            raise ObjectNotFound(f"No file is stored at {what}.") from exc
        if code in RETRY_CODES or status >= 500:
            raise RetryableError(f"Site storage is unavailable ({code or status}).") from exc
        raise UserError(
            f"Site storage rejected the request for {what}: {error.get('Message') or code}.",
            code="storage_error",
        ) from exc
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        raise UserError(
            "The agent has no storage credentials configured.", code="storage_misconfigured"
        ) from exc
    if isinstance(exc, ConnectionError | HTTPClientError):
        raise RetryableError(f"Site storage could not be reached: {exc}.") from exc
    raise RetryableError(f"Site storage failed: {exc}.") from exc


@contextlib.contextmanager
def _s3_errors(what: str) -> Iterator[None]:
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        _raise_translated(exc, what)


class S3Storage(Storage):
    def __init__(
        self,
        bucket: str,
        *,
        access_key: str | None = None,
        secret_key: str | None = None,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        prefix: str = "",
        addressing_style: str = "path",
        connect_timeout: float = 5,
        read_timeout: float = 60,
        max_attempts: int = 3,
    ) -> None:
        if not bucket:
            raise ValueError("an S3 storage needs a bucket")
        validate_prefix(prefix)
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": addressing_style},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"mode": "standard", "max_attempts": max_attempts},
        )
        self.client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url or None,
            region_name=region,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=config,
        )

    def _key(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def _what(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        extra = {"ContentType": content_type} if content_type else {}
        with _s3_errors(self._what(key)):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **extra)

    def get_bytes(self, key: str) -> bytes:
        with self.open_stream(key) as body, _s3_errors(self._what(key)):
            return body.read()

    def open_stream(self, key: str) -> AbstractContextManager[BinaryIO]:
        with _s3_errors(self._what(key)):
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        return cast(AbstractContextManager[BinaryIO], contextlib.closing(response["Body"]))

    def _head(self, key: str) -> dict[str, Any]:
        with _s3_errors(self._what(key)):
            return cast(
                dict[str, Any], self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            )

    def exists(self, key: str) -> bool:
        try:
            self._head(key)
        except ObjectNotFound:
            return False
        return True

    def size(self, key: str) -> int:
        return int(self._head(key)["ContentLength"])

    def delete(self, key: str) -> None:
        with _s3_errors(self._what(key)):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        paginator = self.client.get_paginator("list_objects_v2")
        with _s3_errors(self._what(prefix)):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for item in page.get("Contents", []):
                    yield ObjectInfo(item["Key"][len(self.prefix) :], int(item["Size"]))

    def delete_prefix(self, prefix: str) -> int:
        validate_prefix(prefix)
        if not prefix:
            raise UserError("Refusing to delete every object in storage.", code="invalid_key")
        keys = [self.prefix + info.key for info in self.list(prefix)]
        deleted = 0
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            with _s3_errors(self._what(prefix)):
                response = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            errors = response.get("Errors", [])
            if errors:
                # DeleteObjects answers 200 and reports refusals per key.
                fake = {"Error": errors[0], "ResponseMetadata": {"HTTPStatusCode": 0}}
                _raise_translated(ClientError(fake, "DeleteObjects"), self._what(prefix))
            deleted += len(batch)
        return deleted

    def presign_put(
        self,
        key: str,
        *,
        expires_in: int,
        content_type: str | None = None,
        max_bytes: int | None = None,
        size: int | None = None,
    ) -> PresignedRequest:
        """Presigned PUT. With ``size``, Content-Length is signed, so the S3 server refuses a
        body of any other length; without it, a query-signed PUT cannot cap the body size, and
        ``max_bytes`` is enforced after upload, by ingest's size check."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key)}
        headers = {}
        if size is not None:
            params["ContentLength"] = int(size)
        if content_type:
            params["ContentType"] = content_type
            headers["Content-Type"] = content_type
        with _s3_errors(self._what(key)):
            url = self.client.generate_presigned_url(
                "put_object", Params=params, ExpiresIn=validate_expiry(expires_in)
            )
        return PresignedRequest(url, "PUT", headers)

    def presign_get(self, key: str, *, expires_in: int) -> str:
        with _s3_errors(self._what(key)):
            return cast(
                str,
                self.client.generate_presigned_url(
                    "get_object",
                    Params={"Bucket": self.bucket, "Key": self._key(key)},
                    ExpiresIn=validate_expiry(expires_in),
                ),
            )
