"""The connection's pipe through the Snowpipe REST API (docs/snowflake-facts.md §3): `insertFiles` to
submit, `insertReport` to follow, `loadHistoryScan` to catch up. Signed with the connection's own key
pair; none of it uses a warehouse.

The official client (snowflake-ingest) signs the JWT and builds the URLs. Its HTTP layer retries 408 and
5xx for a minute, sends no timeout and does not retry 429, so it is replaced (`_OneShot`): one request,
bounded, and retrying is ours, with backoff, within the tick's deadline.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import requests
from snowflake.ingest import SimpleIngestManager, StagedFile
from snowflake.ingest.error import IngestResponseError
from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential

from kernel.errors import FloeError
from loader.plan import LiveFile, LoadRecord, LoadStatus

if TYPE_CHECKING:
    from kernel.config import Settings
    from kernel.connections import Connection
    from kernel.render import Target
    from kernel.secrets import SnowflakeCredentials
    from loader.tick import Deadline

T = TypeVar("T")

# docs/snowflake-facts.md §3 (data-load-snowpipe-rest-apis): limits of one insertFiles request.
INSERT_MAX_FILES = 5000
INSERT_MAX_PATH_BYTES = 1024
# insertReport keeps a pipe's events about 10 minutes (§3): older submissions need loadHistoryScan.
REPORT_WINDOW = timedelta(minutes=10)
REQUEST_TIMEOUT_SECONDS = 30.0
MAX_ATTEMPTS = 8  # 429/5xx/network; the deadline usually stops sooner
_RETRIED_STATUS = {408, 429}  # and every 5xx
_PLAIN_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_STATUS = {
    "LOADED": LoadStatus.LOADED,
    "LOAD_FAILED": LoadStatus.FAILED,
    "PARTIALLY_LOADED": LoadStatus.PARTIAL,
    "LOAD_IN_PROGRESS": LoadStatus.IN_PROGRESS,
    "LOAD_SKIPPED": LoadStatus.SKIPPED,
}


class SnowpipeRestError(FloeError):
    """A Snowpipe REST request failed after its retries; the message names the connection."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class Submission:
    """What insertFiles accepted (S3 keys) and what it refused, with why; refused files stay live."""

    sent: frozenset[str]
    rejected: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Report:
    records: dict[str, LoadRecord]
    complete: bool  # False: events after the last mark were forgotten (more than 10,000, or too old)


class _OneShot:
    """Stands in for the client's `restful` attribute: one request with a timeout, no retries."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout

    def post(self, url: str, json: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        return self._call("POST", url, headers, json)

    def get(self, url: str, headers: dict[str, str]) -> dict[str, Any]:
        return self._call("GET", url, headers, None)

    def _call(self, method: str, url: str, headers: dict[str, str], body: dict[str, Any] | None) -> dict[str, Any]:
        response = requests.request(method, url, headers=headers, json=body, timeout=self._timeout)
        if not response.ok:
            raise IngestResponseError(response)
        answer: dict[str, Any] = response.json()
        return answer


class RestPipe:
    """One tick's view of the pipe through the REST API. insertReport's `beginMark` advances per
    instance, so a tick's later polls return only what changed."""

    report_window = REPORT_WINDOW

    def __init__(
        self,
        connection: Connection,
        credentials: SnowflakeCredentials,
        settings: Settings,
        target: Target,
        deadline: Deadline,
    ) -> None:
        pem = credentials.private_key_pem()
        if pem is None:
            raise SnowpipeRestError(
                f"connection {connection.connection_id}: REST mode needs a key pair, and its secret holds a "
                "password; run `floe provision --rotate-key` or use --mode refresh",
                transient=False,
            )
        self._connection_id = connection.connection_id
        self._stage_key_prefix = target.stage_url.split("/", 3)[3]
        self._deadline = deadline
        self._margin = settings.time_margin_seconds
        self._client = SimpleIngestManager(
            account=connection.account,
            user=connection.user,
            pipe=rest_pipe_name(target.qualified_pipe),
            private_key=pem,
            **_endpoint(settings),
        )
        self._client.restful = _OneShot(REQUEST_TIMEOUT_SECONDS)
        self._scanned = False

    def submit(self, files: Sequence[LiveFile]) -> Submission:
        """insertFiles in requests of at most 5,000 paths; a path over 1,024 bytes is refused here."""
        paths = {self.path_of(f.key): f for f in files}
        rejected = {
            f.key: f"path longer than {INSERT_MAX_PATH_BYTES} bytes"
            for path, f in paths.items()
            if len(path.encode()) > INSERT_MAX_PATH_BYTES
        }
        sendable = [(path, f) for path, f in paths.items() if f.key not in rejected]
        sent: set[str] = set()
        for chunk in _chunks(sendable, INSERT_MAX_FILES):
            staged = [StagedFile(path, f.size) for path, f in chunk]
            answer = self._call("insertFiles", partial(self._client.ingest_files, staged))
            unmatched = set(answer.get("unmatchedPatternFiles") or [])
            rejected.update({f.key: "the pipe's PATTERN does not match it" for path, f in chunk if path in unmatched})
            sent.update(f.key for path, f in chunk if path not in unmatched)
        return Submission(frozenset(sent), rejected)

    def report(self) -> Report:
        """insertReport: every file with an event since this instance's previous call (the last 10
        minutes on the first call)."""
        answer = self._call("insertReport", self._client.get_history)
        records = self._records(answer.get("files") or [])
        return Report(records, bool(answer.get("completeResult", True)))

    def scan(self, start: datetime) -> dict[str, LoadRecord] | None:
        """loadHistoryScan from `start` to now: finished loads only. Snowflake rate limits it, so a tick
        scans at most once (None after that) and a 429 is not retried: None, and the next tick catches up."""
        if self._scanned:
            return None
        self._scanned = True
        since = start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        try:
            answer = self._client.get_history_range(since)
        except IngestResponseError as error:
            if error.http_error_code == 429:
                return None
            raise self._error("loadHistoryScan", error) from None
        except requests.RequestException:
            return None
        return self._records(answer.get("files") or [])

    def path_of(self, key: str) -> str:
        """The path insertFiles takes: relative to the stage URL, as REFRESH's `File` is."""
        return key.removeprefix(self._stage_key_prefix)

    def _records(self, items: list[dict[str, Any]]) -> dict[str, LoadRecord]:
        records = (record_of(item, self._stage_key_prefix) for item in items)
        return {r.key: r for r in records if r is not None}

    def _call(self, kind: str, call: Callable[[], T]) -> T:
        def stop(state: RetryCallState) -> bool:
            out_of_time = self._deadline.remaining() - (state.upcoming_sleep or 0.0) < self._margin
            return out_of_time or state.attempt_number >= MAX_ATTEMPTS

        retrying = Retrying(
            stop=stop,
            wait=wait_exponential(multiplier=0.5, max=8),
            retry=retry_if_exception(_retriable),
            reraise=True,
        )
        try:
            return retrying(call)
        except IngestResponseError as error:
            raise self._error(kind, error) from None
        except requests.RequestException as error:
            raise SnowpipeRestError(
                f"connection {self._connection_id}: Snowpipe REST {kind} unreachable ({type(error).__name__}); "
                "files stay live for the next tick",
                transient=True,
            ) from None

    def _error(self, kind: str, error: IngestResponseError) -> SnowpipeRestError:
        status = error.http_error_code
        code = getattr(error, "code", "-")
        if status == 401:
            hint = (
                "the key pair was refused: check that the user's RSA_PUBLIC_KEY matches the connection's "
                "secret (`floe provision --rotate-key`)"
            )
        elif status == 404:
            hint = "pipe not found, or the user's default role lacks OPERATE/MONITOR on it (re-run the setup script)"
        else:
            hint = "files stay live for the next tick"
        return SnowpipeRestError(
            f"connection {self._connection_id}: Snowpipe REST {kind} answered HTTP {status} (code {code}): {hint}",
            transient=status in _RETRIED_STATUS or status >= 500,
        )


def _retriable(error: BaseException) -> bool:
    if isinstance(error, IngestResponseError):
        return error.http_error_code in _RETRIED_STATUS or error.http_error_code >= 500
    return isinstance(error, requests.RequestException)


def record_of(item: dict[str, Any], stage_key_prefix: str) -> LoadRecord | None:
    """One report entry as a load record keyed by its S3 key; None for a status Floe does not know."""
    status = _STATUS.get(str(item.get("status")))
    if status is None:
        return None
    location = str(item.get("stageLocation") or "")
    base = location.split("/", 3)[3] if location.startswith("s3://") and location.count("/") >= 3 else stage_key_prefix
    return LoadRecord(
        key=f"{base}{item['path']}",
        status=status,
        row_count=int(item.get("rowsInserted") or 0),
        row_parsed=None if item.get("rowsParsed") is None else int(item["rowsParsed"]),
        error_count=int(item.get("errorsSeen") or 0),
        first_error=item.get("firstError"),
        last_load_time=_time(item.get("lastInsertTime")),
    )


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def rest_pipe_name(parts: Sequence[str]) -> str:
    """`DB.SCHEMA.PIPE` as the API takes it: case-sensitive as written, a part that is not a plain
    identifier double-quoted (§3, §9)."""
    return ".".join(p if _PLAIN_PART.fullmatch(p) else '"' + p.replace('"', '""') + '"' for p in parts)


def _endpoint(settings: Settings) -> dict[str, Any]:
    """The same host, port and scheme the SQL session uses (kernel.snowflake_session); unset: Snowflake's
    own host for the account, the client's default."""
    if not settings.snowflake_host:
        return {}
    default_port = 443 if settings.snowflake_protocol == "https" else 80
    return {
        "scheme": settings.snowflake_protocol,
        "host": settings.snowflake_host,
        "port": settings.snowflake_port or default_port,
    }


def _chunks(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
