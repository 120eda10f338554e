"""The Snowpipe REST API: insertFiles, insertReport and loadHistoryScan.

https://docs.snowflake.com/en/user-guide/data-load-snowpipe-rest-apis. Files named by insertFiles join
the pipe's own queue (the one REFRESH fills), so they load, dedupe and show in COPY_HISTORY and
SYSTEM$PIPE_STATUS exactly as REFRESH-sent files do. See docs/snowflake-standin.md.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import jwt
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from . import auth, pipes
from .errors import LoginError
from .iam import split_s3_url
from .model import Account, LoadRecord, Pipe, QualifiedName, RestEvent, RestSubmission, StagedFile, display
from .security import role_allows_pipe
from .state import StandInState
from .storage import stage_base

logger = logging.getLogger(__name__)

MAX_FILES = 5000  # insertFiles: "at most 5000 files" per request
MAX_PATH_BYTES = 1024  # insertFiles: each path "<= 1024 bytes" serialised as UTF-8
EVENTS_KEPT = 10_000  # insertReport keeps "the 10,000 most recent events"
EVENT_TTL = 600.0  # … "for at most 10 minutes"
SCAN_LIMIT = 10_000  # loadHistoryScan returns up to 10,000 items

_STATUS = {"Loaded": "LOADED", "Load failed": "LOAD_FAILED", "Partially loaded": "PARTIALLY_LOADED"}
_NAME_PART = re.compile(r'"((?:[^"]|"")*)"|([^."]+)')

Handler = Callable[[Account, Pipe, float], dict[str, Any]]


class RestError(Exception):
    """An error answer in Snowflake's JSON error shape (which snowflake-ingest's IngestResponseError reads)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> JSONResponse:
        body = {"data": None, "code": self.code, "message": self.message, "success": False, "headers": None}
        return JSONResponse(body, status_code=self.status)


def _unauthorized() -> RestError:
    return RestError(401, f"{auth.JWT_INVALID}", "JWT token is invalid.")


def _not_found() -> RestError:
    # The docs: 404 also when the role lacks the privilege, so a caller cannot tell the two apart.
    return RestError(404, "390404", "Specified object does not exist or not authorized. Pipe not found")


def _bad_request(message: str) -> RestError:
    return RestError(400, "390400", message)


class SnowpipeRest:
    def __init__(self, state: StandInState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        return [
            Route("/v1/data/pipes/{pipe}/insertFiles", self.insert_files, methods=["POST"]),
            Route("/v1/data/pipes/{pipe}/insertReport", self.insert_report, methods=["GET"]),
            Route("/v1/data/pipes/{pipe}/loadHistoryScan", self.load_history_scan, methods=["GET"]),
        ]

    async def insert_files(self, request: Request) -> JSONResponse:
        body = await request.body()
        content_type = request.headers.get("Content-Type", "application/json")
        request_id = request.query_params.get("requestId")

        def handle(account: Account, pipe: Pipe, now: float) -> dict[str, Any]:
            return insert(account, pipe, now, _parse_files(content_type, body), request_id)

        return await self._serve(request, "insertFiles", "OPERATE", handle)

    async def insert_report(self, request: Request) -> JSONResponse:
        params = request.query_params

        def handle(account: Account, pipe: Pipe, now: float) -> dict[str, Any]:
            begin_mark = _optional_int(params.get("beginMark"), "beginMark")
            return report(account, pipe, now, begin_mark, _optional_int(params.get("recentSeconds"), "recentSeconds"))

        return await self._serve(request, "insertReport", "MONITOR", handle)

    async def load_history_scan(self, request: Request) -> JSONResponse:
        start_text = request.query_params.get("startTimeInclusive")
        end_text = request.query_params.get("endTimeExclusive")

        def handle(account: Account, pipe: Pipe, now: float) -> dict[str, Any]:
            start = _timestamp(start_text, "startTimeInclusive")
            end = now if end_text is None else _timestamp(end_text, "endTimeExclusive")
            return scan(account, pipe, now, start, end)

        return await self._serve(request, "loadHistoryScan", "MONITOR", handle)

    async def _serve(self, request: Request, kind: str, privilege: str, handle: Handler) -> JSONResponse:
        try:
            token = _bearer(request)
            account = self._account_of(token)
            _count_and_take_fault(account, kind)
            answer = await run_in_threadpool(self._run, account, token, request.path_params["pipe"], privilege, handle)
        except RestError as error:
            return error.response()
        except Exception as error:
            # A stand-in bug must not be a 5xx, which snowflake-ingest retries for a minute.
            logger.exception("stand-in Snowpipe REST call failed")
            return _bad_request(f"Internal error in the Snowflake stand-in: {error}").response()
        return JSONResponse(answer)

    def _account_of(self, token: str) -> Account:
        """The account named in the JWT: the host carries it on Snowflake, but here every account
        shares 127.0.0.1. verify_jwt then checks iss/sub against that account."""
        account = self.state.account(_subject(token)[0])
        if account is None:
            raise _unauthorized()
        return account

    def _run(self, account: Account, token: str, pipe_text: str, privilege: str, handle: Handler) -> dict[str, Any]:
        with account.lock:
            role = _authenticate(account, token)
            return handle(account, _pipe(account, role, pipe_text, privilege), self.state.runtime.clock.now())


# ---- authentication, faults, the pipe -----------------------------------------------------------


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.upper() != "BEARER" or not token.strip():
        raise _unauthorized()
    return token.strip()


def _subject(token: str) -> tuple[str, str]:
    """(ACCOUNT, USER) from the token's ``sub``; unverified here, verify_jwt checks it."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise _unauthorized() from None
    account, _, user = str(claims.get("sub", "")).partition(".")
    return account, user


def _authenticate(account: Account, token: str) -> str:
    """The caller's role: the user's default role (the REST API has no session to pick another)."""
    user = account.users.get(_subject(token)[1].upper())
    if user is None or user.disabled:
        raise _unauthorized()
    try:
        auth.verify_jwt(account.name, user, token)
    except LoginError:
        raise _unauthorized() from None
    return user.default_role or "PUBLIC"


def _count_and_take_fault(account: Account, kind: str) -> None:
    with account.lock:
        rest = account.snowpipe_rest
        rest.calls[kind] = rest.calls.get(kind, 0) + 1
        if rest.fail_requests > 0:
            rest.fail_requests -= 1
            raise RestError(rest.fail_status, str(rest.fail_status), "Injected fault of the Snowflake stand-in.")


def _pipe_name(text: str) -> QualifiedName | None:
    """``db.schema.pipe``, case-sensitive as the docs say (quoted parts may hold dots)."""
    parts = [m.group(1).replace('""', '"') if m.group(1) is not None else m.group(2) for m in _NAME_PART.finditer(text)]
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


def _pipe(account: Account, role: str, text: str, privilege: str) -> Pipe:
    name = _pipe_name(text)
    pipe = account.pipes.get(name) if name else None
    if pipe is None or not role_allows_pipe(account, role, pipe.owner, display(pipe.name), privilege):
        raise _not_found()
    return pipe


# ---- request parameters --------------------------------------------------------------------------


def _parse_files(content_type: str, body: bytes) -> list[tuple[str, int]]:
    """(path, size) pairs from ``{"files": [{"path", "size"}]}`` or a text/plain list of paths."""
    if content_type.startswith("text/plain"):
        files = [(line.strip(), 0) for line in body.decode("utf-8", "replace").splitlines() if line.strip()]
    else:
        files = _json_files(body)
    if len(files) > MAX_FILES:
        raise _bad_request(f"The request contains {len(files)} files; at most {MAX_FILES} are allowed.")
    for path, _ in files:
        if len(path.encode()) > MAX_PATH_BYTES:
            raise _bad_request(f"File path exceeds the maximum length of {MAX_PATH_BYTES} bytes: {path[:64]}…")
    return files


def _json_files(body: bytes) -> list[tuple[str, int]]:
    try:
        document = json.loads(body or b"null")
    except ValueError:
        raise _bad_request("The request body is not valid JSON.") from None
    files = document.get("files") if isinstance(document, dict) else None
    if not isinstance(files, list) or not all(isinstance(f, dict) and isinstance(f.get("path"), str) for f in files):
        raise _bad_request('The request body must be {"files": [{"path": "...", "size": n}, ...]}.')
    return [(str(f["path"]), int(f.get("size") or 0)) for f in files]


def _optional_int(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise _bad_request(f"Invalid {name}: {text}") from None


def _timestamp(text: str | None, name: str) -> float:
    if not text:
        raise _bad_request(f"{name} is required.")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _bad_request(f"Invalid {name}: {text}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---- the three endpoints -------------------------------------------------------------------------


def insert(
    account: Account, pipe: Pipe, now: float, files: list[tuple[str, int]], request_id: str | None
) -> dict[str, Any]:
    """Queue the files on the pipe's queue; names the pipe's PATTERN rejects are returned, not queued."""
    stage = account.stages.get(pipe.copy.stage)
    base = stage_base(stage) if stage else ""
    prefix = split_s3_url(base)[1] if base else ""
    # The stand-in does not read S3 here: Snowflake only records the names; a missing file fails its load.
    named = [StagedFile(prefix + path, path, size, "", now) for path, size in files]
    staged = [file for file in named if pipes.pattern_selects(pipe.copy.pattern, file)]
    unmatched = [file.relative_path for file in named if not pipes.pattern_selects(pipe.copy.pattern, file)]
    rest = account.snowpipe_rest
    for file in pipes.enqueue_files(account, pipe, staged, now):
        submission = RestSubmission(pipe.id, file.relative_path, base, file.size, now)
        rest.submissions.append(submission)
        _add_event(account, submission, now)
    answer: dict[str, Any] = {"requestId": request_id, "status": "SUCCESS"}
    if unmatched:
        answer["unmatchedPatternFiles"] = unmatched
    return answer


def report(
    account: Account, pipe: Pipe, now: float, begin_mark: int | None, recent_seconds: int | None
) -> dict[str, Any]:
    """insertReport: the files submitted by insertFiles whose events are newer than beginMark."""
    records = _finished_records(account, now)
    _record_completions(account, records)
    _forget_old_events(account, now)
    rest = account.snowpipe_rest
    since = now - min(recent_seconds, EVENT_TTL) if recent_seconds is not None else -math.inf
    latest: dict[int, RestSubmission] = {}
    for event in rest.events.get(pipe.id, []):
        if event.seq > (begin_mark or 0) and event.at >= since:
            latest.pop(id(event.submission), None)
            latest[id(event.submission)] = event.submission
    files = [_item(s.path, s.stage_location, s.size, s.received_at, records.get(_key(s))) for s in latest.values()]
    return {
        "pipe": display(pipe.name),
        "completeResult": begin_mark is None or begin_mark >= rest.dropped_through.get(pipe.id, 0),
        "nextBeginMark": str(rest.last_seq),
        "files": files,
        "statistics": {"activeFilesCount": sum(1 for s in rest.submissions if s.pipe_id == pipe.id and not s.done)},
    }


def scan(account: Account, pipe: Pipe, now: float, start: float, end: float) -> dict[str, Any]:
    """loadHistoryScan: the pipe's finished loads with a load time in [start, end), rate limited."""
    rest = account.snowpipe_rest
    last = rest.last_scan_at.get(pipe.id)
    if last is not None and now - last < account.settings.load_history_scan_interval_seconds:
        raise RestError(429, "429", "Too many requests: loadHistoryScan is rate limited.")
    rest.last_scan_at[pipe.id] = now
    loads = sorted(
        (
            r
            for r in account.history
            if r.pipe_id == pipe.id and r.visible_at <= now and start <= r.last_load_time < end
            if now - r.last_load_time <= pipes.HISTORY_TTL
        ),
        key=lambda r: r.last_load_time,
    )
    kept = loads[:SCAN_LIMIT]
    return {
        "pipe": display(pipe.name),
        "completeResult": len(kept) == len(loads),
        "rangeStartTime": _iso(kept[0].last_load_time if kept else start),
        "rangeEndTime": _iso(kept[-1].last_load_time if kept else end),
        "files": [_item(r.file_name, r.stage_location, r.file_size, r.received_at, r) for r in kept],
    }


# ---- insertReport's events -----------------------------------------------------------------------


def _key(submission: RestSubmission) -> tuple[str, str, float]:
    return submission.pipe_id, submission.path, submission.received_at


def _finished_records(account: Account, now: float) -> dict[tuple[str, str, float], LoadRecord]:
    """Loads of pipes that COPY_HISTORY already shows, by (pipe id, path, received at)."""
    return {
        (r.pipe_id, r.relative_path, r.received_at): r for r in account.history if r.pipe_id and r.visible_at <= now
    }


def _add_event(account: Account, submission: RestSubmission, at: float) -> None:
    rest = account.snowpipe_rest
    rest.last_seq += 1
    rest.events.setdefault(submission.pipe_id, []).append(RestEvent(rest.last_seq, at, submission))


def _record_completions(account: Account, records: dict[tuple[str, str, float], LoadRecord]) -> None:
    """A load committed since the last look is an event (the loads themselves run in pipes.py)."""
    finished = [(records[_key(s)], s) for s in account.snowpipe_rest.submissions if not s.done and _key(s) in records]
    for record, submission in sorted(finished, key=lambda pair: pair[0].visible_at):
        submission.done = True
        _add_event(account, submission, record.visible_at)


def _forget_old_events(account: Account, now: float) -> None:
    """Keep each pipe's 10,000 newest events of the last 10 minutes; forget submissions of gone pipes."""
    rest = account.snowpipe_rest
    live_pipes = {pipe.id for pipe in account.pipes.values()}
    for pipe_id, events in list(rest.events.items()):
        kept = [e for e in events if now - e.at <= EVENT_TTL][-EVENTS_KEPT:]
        kept_seqs = {e.seq for e in kept}
        dropped = [e.seq for e in events if e.seq not in kept_seqs]
        if dropped:
            rest.dropped_through[pipe_id] = max(rest.dropped_through.get(pipe_id, 0), *dropped)
        rest.events[pipe_id] = kept
    referenced = {id(e.submission) for events in rest.events.values() for e in events}
    rest.submissions = [s for s in rest.submissions if s.pipe_id in live_pipes and (not s.done or id(s) in referenced)]


def _item(path: str, stage_location: str, size: int, received_at: float, record: LoadRecord | None) -> dict[str, Any]:
    """One entry of ``files``: in progress until its load shows in COPY_HISTORY."""
    item: dict[str, Any] = {
        "path": path,
        "stageLocation": stage_location,
        "fileSize": size,
        "timeReceived": _iso(received_at),
    }
    if record is None:
        return {**item, "complete": False, "status": "LOAD_IN_PROGRESS"}
    errors = {
        "firstError": record.first_error_message,
        "firstErrorLineNum": record.first_error_line_number,
        "firstErrorCharacterPos": record.first_error_character_pos,
        "firstErrorColumnName": record.first_error_column_name,
    }
    return {
        **item,
        "lastInsertTime": _iso(record.last_load_time),
        "rowsInserted": record.row_count or 0,
        "rowsParsed": record.row_parsed or 0,
        "errorsSeen": record.error_count,
        "errorLimit": record.error_limit,
        **{key: value for key, value in errors.items() if value is not None},
        "complete": True,
        "status": _STATUS[record.status],
    }
