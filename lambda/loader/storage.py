"""The organisation's objects in S3: list the live prefix, delete loaded files, dead-letter failed ones.

Every key this module deletes or copies is checked to lie under the organisation's live prefix, and
object bodies are never read (CopyObject copies server-side).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from kernel import logs
from kernel.config import S3_MAX_KEY_BYTES
from kernel.errors import FloeError
from kernel.layout import Layout
from loader.plan import FilePlan, LiveFile

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logs.get("storage")
DELETE_BATCH = 1000  # DeleteObjects takes at most 1,000 keys per request


class IsolationError(FloeError):
    """A key outside the organisation's live prefix reached a destructive call: refuse, touch nothing."""


@dataclass(frozen=True)
class Listing:
    files: list[LiveFile]
    ignored: list[str]
    pages: int


@dataclass(frozen=True)
class DeadLetterEntry:
    original_key: str
    dead_letter_key: str
    status: str
    reason: str
    rows_parsed: int | None
    rows_loaded: int
    error_count: int
    first_error: str | None


class OrgStorage:
    def __init__(self, s3: S3Client, bucket: str, live_prefix: str, dead_letter_prefix: str) -> None:
        self._s3 = s3
        self.bucket = bucket
        self.live_prefix = live_prefix
        self.dead_letter_prefix = dead_letter_prefix

    def list_live(self, layout: Layout) -> Listing:
        """Every event file under the live prefix (paginated); other keys are reported, never touched."""
        files: list[LiveFile] = []
        ignored: list[str] = []
        pages = 0
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.live_prefix):
            pages += 1
            for item in page.get("Contents", []):
                key = item["Key"]
                if layout.matches(key[len(self.live_prefix) :]):
                    files.append(LiveFile(key, item["Size"], item["LastModified"]))
                else:
                    ignored.append(key)
        return Listing(files, ignored, pages)

    def delete(self, keys: Sequence[str]) -> list[str]:
        """Delete in batches; returns the keys S3 refused to delete (they stay for the next tick). A key
        XML 1.0 cannot carry (a control character: the layout allows it) would make S3 reject the whole
        DeleteObjects body, so it is deleted alone (DeleteObject names it in the URL)."""
        owned = [self._owned(k) for k in keys]
        failed = [k for k in owned if not _xml_safe(k) and not self._delete_one(k)]
        batchable = [k for k in owned if _xml_safe(k)]
        for start in range(0, len(batchable), DELETE_BATCH):
            batch = batchable[start : start + DELETE_BATCH]
            response = self._s3.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
            )
            failed.extend(error["Key"] for error in response.get("Errors", []))
        return failed

    def _delete_one(self, key: str) -> bool:
        try:
            self._s3.delete_object(Bucket=self.bucket, Key=key)
        except ClientError:
            log.warning("delete refused", extra={"key": key}, exc_info=True)
            return False
        return True

    def dead_letter_key(self, key: str) -> str:
        """Deterministic: a tick that crashed between copy and delete copies onto the same key again, so
        the object is dead-lettered exactly once. The dead-letter prefix may be longer than the live one:
        a key that would pass S3's limit is named by its hash (the manifest keeps the original)."""
        relative = self._owned(key)[len(self.live_prefix) :]
        target = f"{self.dead_letter_prefix}objects/{relative}"
        if len(target.encode()) <= S3_MAX_KEY_BYTES:
            return target
        return f"{self.dead_letter_prefix}objects/long-keys/{hashlib.sha256(relative.encode()).hexdigest()}.json.gz"

    def copy_to_dead_letter(self, plans: Iterable[FilePlan]) -> list[DeadLetterEntry]:
        """Copies each file; one that S3 refuses is left out (it stays live for the next tick)."""
        entries = []
        for plan in plans:
            target = self.dead_letter_key(plan.file.key)
            try:
                self._s3.copy_object(
                    Bucket=self.bucket, Key=target, CopySource={"Bucket": self.bucket, "Key": plan.file.key}
                )
            except ClientError:
                log.warning("dead-letter copy refused", extra={"key": plan.file.key}, exc_info=True)
                continue
            entries.append(_entry(plan, target))
        return entries

    def move_for_retry(self, key: str, target: str) -> bool:
        """Copy to the next attempt's name, then delete the original; False if S3 refused either. A tick
        that stopped in between copies onto the same name again (the attempt is in the name)."""
        owned, target = self._owned(key), self._owned(target)
        try:
            self._s3.copy_object(Bucket=self.bucket, Key=target, CopySource={"Bucket": self.bucket, "Key": owned})
        except ClientError:
            log.warning("retry copy refused", extra={"key": owned}, exc_info=True)
            return False
        return not self.delete([owned])

    def write_manifest(self, name: str, manifest: dict[str, Any]) -> str:
        key = f"{self.dead_letter_prefix}manifests/{name}.json"
        self._s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=json.dumps(manifest, indent=2, default=str).encode(),
            ContentType="application/json",
        )
        return key

    def restage(self, key: str) -> None:
        """Copy an object onto itself so its LastModified is now: REFRESH's 7-day window sees it again."""
        owned = self._owned(key)
        self._s3.copy_object(
            Bucket=self.bucket,
            Key=owned,
            CopySource={"Bucket": self.bucket, "Key": owned},
            MetadataDirective="REPLACE",
            Metadata={"floe-restaged": "true"},
        )

    def _owned(self, key: str) -> str:
        if not key.startswith(self.live_prefix) or "/../" in f"/{key}/" or key == self.live_prefix:
            raise IsolationError(f"refusing to touch {key[:200]!r}: not under {self.live_prefix!r}")
        return key


# XML 1.0's Char production: tab, newline and carriage return are the only characters below U+0020.
_XML_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_safe(key: str) -> bool:
    return _XML_UNSAFE.search(key) is None


def _entry(plan: FilePlan, target: str) -> DeadLetterEntry:
    record = plan.record
    return DeadLetterEntry(
        original_key=plan.file.key,
        dead_letter_key=target,
        status=record.status.value if record else "Not loaded",
        reason=plan.reason,
        rows_parsed=record.row_parsed if record else None,
        rows_loaded=record.row_count if record else 0,
        error_count=record.error_count if record else 0,
        first_error=record.first_error if record else None,
    )
