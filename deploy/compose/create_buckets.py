"""One-shot: create the stack's buckets with the S3 admin identity (compose service s3-init).

Runs in the hub image (it has boto3) with this file mounted. Idempotent.
Env: S3_ENDPOINT, S3_ADMIN_ACCESS_KEY, S3_ADMIN_SECRET_KEY_FILE, S3_BUCKETS (space-separated),
S3_CORS_ORIGINS (space-separated origins allowed to PUT presigned uploads from a browser).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError


def client():  # type: ignore[no-untyped-def]
    return boto3.client(
        "s3",
        endpoint_url=os.environ["S3_ENDPOINT"],
        aws_access_key_id=os.environ["S3_ADMIN_ACCESS_KEY"],
        aws_secret_access_key=Path(os.environ["S3_ADMIN_SECRET_KEY_FILE"]).read_text().strip(),
        region_name=os.environ.get("S3_REGION", "us-east-1"),
        config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard"}),
    )


def wait_until_ready(s3, deadline: float) -> None:  # type: ignore[no-untyped-def]
    while True:
        try:
            s3.list_buckets()
            return
        except (BotoCoreError, ClientError) as exc:
            if time.monotonic() > deadline:
                raise SystemExit(f"s3-init: the S3 server did not answer in time: {exc}") from exc
            time.sleep(0.5)


def main() -> int:
    s3 = client()
    wait_until_ready(s3, time.monotonic() + 60)
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    origins = os.environ.get("S3_CORS_ORIGINS", "").split()
    for bucket in os.environ["S3_BUCKETS"].split():
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket)
            print(f"s3-init: created {bucket}")
        if origins:
            try:
                s3.put_bucket_cors(
                    Bucket=bucket,
                    CORSConfiguration={
                        "CORSRules": [
                            {
                                "AllowedOrigins": origins,
                                "AllowedMethods": ["GET", "PUT", "HEAD"],
                                "AllowedHeaders": ["*"],
                                "ExposeHeaders": ["ETag"],
                                "MaxAgeSeconds": 3600,
                            }
                        ]
                    },
                )
            except ClientError as exc:  # older servers: CORS is then open by default
                print(f"s3-init: CORS not set on {bucket}: {exc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
