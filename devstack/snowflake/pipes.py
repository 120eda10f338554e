"""Pipes, ALTER PIPE … REFRESH, the asynchronous Snowpipe queue and bulk COPY INTO.

docs/snowflake-facts.md §1 (REFRESH), §2 (load status), §5 (pipe DDL and COPY options).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from . import engine, results
from .context import Context, Runtime
from .errors import SnowflakeError, StageAccessError, already_exists, does_not_exist
from .iam import StageStorage, split_s3_url
from .model import Account, CopySpec, LoadRecord, Pipe, QualifiedName, QueuedFile, Stage, StagedFile, display
from .readings import Reading
from .results import Column, Result
from .security import pipe_allows, record_ownership
from .sqltext import Parser, find_matching_paren, split_name, split_top_level, tokenize
from .storage import (
    NAME_PART,
    _in_scope,
    _show_filters,
    get_stage,
    list_files,
    parse_file_format,
    parse_stage_reference,
    resolve_file_format,
    stage_base,
    stage_storage,
)

DAY = 86400.0
REFRESH_WINDOW = 7 * DAY  # docs/snowflake-facts.md §1: REFRESH loads files staged within the last 7 days
PIPE_METADATA_TTL = 14 * DAY  # docs/snowflake-facts.md §1: pipe load metadata kept 14 days
TABLE_METADATA_TTL = 64 * DAY  # docs/snowflake-facts.md §1: bulk COPY load metadata kept 64 days
HISTORY_TTL = 14 * DAY  # docs/snowflake-facts.md §2: COPY_HISTORY covers the last 14 days

# docs/snowflake-facts.md §5: COPY options a pipe does not support.
_UNSUPPORTED_IN_PIPE = ("FILES", "SIZE_LIMIT", "PURGE", "FORCE", "RETURN_FAILED_ONLY", "VALIDATION_MODE")

STALLED_PERMISSION = "STALLED_STAGE_PERMISSION_ERROR"
# https://docs.snowflake.com/en/sql-reference/functions/system_pipe_status: every executionState.
EXECUTION_STATES = (
    "RUNNING",
    "PAUSED",
    "STALLED_COMPILATION_ERROR",
    "STALLED_INITIALIZATION_ERROR",
    "STALLED_EXECUTION_ERROR",
    "STALLED_INTERNAL_ERROR",
    STALLED_PERMISSION,
    "STOPPED_STAGE_ALTERED",
    "STOPPED_STAGE_DROPPED",
    "STOPPED_FILE_FORMAT_DROPPED",
    "STOPPED_MISSING_TABLE",
    "STOPPED_CLONED",
)

_HISTORY_STATUS = {
    engine.STATUS_LOADED: "Loaded",
    engine.STATUS_FAILED: "Load failed",
    engine.STATUS_PARTIAL: "Partially loaded",
}


# ---- parsing COPY INTO ------------------------------------------------------------------------


def parse_copy(ctx: Context, sql: str) -> tuple[CopySpec, dict[str, Any]]:
    """``COPY INTO t [(cols)] FROM @stage[/path] | (SELECT … FROM @stage[/path] [alias]) <options>``."""
    p = Parser(sql)
    p.expect("COPY", "INTO")
    table = ctx.qualify(p.name(), "COPY INTO")
    columns: list[str] | None = None
    if (token := p.peek()) is not None and token.text == "(":
        close = find_matching_paren(sql, token.start)
        columns = [split_name(c)[-1] for c in split_top_level(sql[token.start + 1 : close])]
        _skip_to(p, close)
    p.expect("FROM")
    exprs: list[str] | None = None
    token = p.next()
    if token.text == "(":
        close = find_matching_paren(sql, token.start)
        exprs, stage_text = _parse_transform(sql[token.start + 1 : close])
        _skip_to(p, close)
    else:
        stage_text = _stage_reference(sql[token.start :])
        _skip_to(p, token.start + len(stage_text) - 1)
    if not stage_text.lstrip("'").startswith("@"):
        raise SnowflakeError(1003, "SQL compilation error:\nthe stand-in loads only from a named stage (@stage)")
    stage, path = parse_stage_reference(ctx, stage_text)
    options = p.options()
    spec = CopySpec(
        table=table,
        columns=columns,
        select_exprs=exprs,
        stage=stage,
        path=path,
        file_format=parse_file_format(ctx, options["FILE_FORMAT"]) if "FILE_FORMAT" in options else None,
        on_error=str(options["ON_ERROR"]) if "ON_ERROR" in options else None,
        pattern=str(options["PATTERN"]) if "PATTERN" in options else None,
        files=_string_list(options.get("FILES")),
        force=options.get("FORCE") is True,
    )
    return spec, dict(options)


def _string_list(value: Any) -> list[str] | None:
    return [str(v) for v in value] if isinstance(value, list) else None


def _skip_to(p: Parser, close: int) -> None:
    while (token := p.peek()) is not None and token.start <= close:
        p.pos += 1


_STAGE_REFERENCE = re.compile(rf"'(?:[^'\\]|\\.|'')*'|@{NAME_PART}(?:\.{NAME_PART})*(?:/[^\s()]*)?")


def _stage_reference(text: str) -> str:
    """``@db."My Stage"/path`` or ``'@db."My Stage"/path'`` at the start of `text` (docs/snowflake-facts.md §9)."""
    match = _STAGE_REFERENCE.match(text)
    return match.group(0) if match else text.split(maxsplit=1)[0] if text.strip() else ""


def _parse_transform(inner: str) -> tuple[list[str], str]:
    """``SELECT e1, e2 FROM @stage/path [alias]`` -> (expressions, stage reference)."""
    tokens = tokenize(inner)
    if not tokens or tokens[0].upper != "SELECT":
        raise SnowflakeError(1003, "SQL compilation error:\nexpected SELECT in COPY transform")
    depth = 0
    for token in tokens:
        depth += token.text == "("
        depth -= token.text == ")"
        if depth == 0 and token.upper == "FROM":
            exprs = split_top_level(inner[tokens[0].end : token.start])
            reference = _stage_reference(inner[token.end :].lstrip())
            if not reference:
                break
            return exprs, reference
    raise SnowflakeError(1003, "SQL compilation error:\nCOPY transform needs FROM @stage")


# ---- pipe DDL ---------------------------------------------------------------------------------


def create_pipe(ctx: Context, p: Parser, or_replace: bool, if_not_exists: bool) -> Result:
    name = ctx.qualify(p.name(), "CREATE PIPE")
    account = ctx.account
    if name in account.pipes and not or_replace:
        if if_not_exists:
            return results.status(f"{name[2]} already exists, statement succeeded.")
        raise already_exists("Pipe", name[2])
    options = p.options()
    p.expect("AS")
    definition = p.rest()
    spec, copy_options = parse_copy(ctx, definition)
    _check_pipe_copy(spec, copy_options, options)
    stage = get_stage(ctx, spec.stage)
    engine.TableLoader._describe(account.fakesnow.duck_conn.cursor(), spec.table)  # the table must exist
    # docs/snowflake-facts.md §2/§5: recreating a pipe drops its load history (metadata and COPY_HISTORY rows).
    if (old := account.pipes.get(name)) is not None:
        account.history = [r for r in account.history if r.pipe_id != old.id]
    account.pipes[name] = Pipe(
        name=name,
        definition=definition,
        copy=spec,
        comment=str(options.get("COMMENT", "")),
        owner=ctx.session.role,
        created_on=ctx.now(),
        stage_id=stage.id,
    )
    record_ownership(ctx, "PIPE", display(name))
    return results.status(f"Pipe {name[2]} successfully created.")


def _check_pipe_copy(spec: CopySpec, copy_options: dict[str, Any], pipe_options: dict[str, Any]) -> None:
    if pipe_options.get("AUTO_INGEST") is True:
        raise SnowflakeError(1008, "SQL compilation error:\nthe stand-in models AUTO_INGEST = FALSE pipes only")
    for option in _UNSUPPORTED_IN_PIPE:
        if option in copy_options:
            raise SnowflakeError(1008, f"SQL compilation error:\nCOPY option {option} is not supported in a pipe")
    if spec.on_error and spec.on_error.upper() == "ABORT_STATEMENT":
        raise SnowflakeError(1008, "SQL compilation error:\nON_ERROR = ABORT_STATEMENT is not supported in a pipe")
    if spec.on_error:
        engine.OnError.parse(spec.on_error)


def get_pipe(ctx: Context, name: QualifiedName) -> Pipe:
    pipe = ctx.account.pipes.get(name)
    if pipe is None:
        raise does_not_exist("Pipe", display(name))
    return pipe


def _pipe_row(pipe: Pipe) -> list[Any]:
    return [
        pipe.created_on,
        pipe.name[2],
        pipe.name[0],
        pipe.name[1],
        pipe.definition,
        pipe.owner,
        None,
        pipe.comment,
        None,
        pipe.copy.pattern,
        None,
        "ROLE",
        None,
        None,
    ]


_PIPE_COLUMNS = [
    Column("created_on", "timestamp_ltz"),
    *results.columns("name", "database_name", "schema_name", "definition", "owner", "notification_channel"),
    *results.columns("comment", "integration", "pattern", "error_integration", "owner_role_type"),
    *results.columns("invalid_reason", "budget"),
]


def show_pipes(ctx: Context, p: Parser) -> Result:
    pattern, scope = _show_filters(ctx, p)
    rows = [_pipe_row(pipe) for pipe in ctx.account.pipes.values() if _in_scope(pipe.name, pattern, scope)]
    return Result(_PIPE_COLUMNS, rows)


def describe_pipe(ctx: Context, p: Parser) -> Result:
    return Result(_PIPE_COLUMNS, [_pipe_row(get_pipe(ctx, ctx.qualify(p.name(), "DESCRIBE PIPE")))])


def drop_pipe(ctx: Context, p: Parser) -> Result:
    if_exists = p.accept("IF", "EXISTS")
    name = ctx.qualify(p.name(), "DROP PIPE")
    pipe = ctx.account.pipes.pop(name, None)
    if pipe is None:
        if not if_exists:
            raise does_not_exist("Pipe", display(name))
    else:
        ctx.account.history = [r for r in ctx.account.history if r.pipe_id != pipe.id]
    return results.status(f"{name[2]} successfully dropped.")


def alter_pipe(ctx: Context, p: Parser) -> tuple[str, Result]:
    """``ALTER PIPE [IF EXISTS] n REFRESH …`` or ``SET PIPE_EXECUTION_PAUSED = … | COMMENT = …``."""
    if_exists = p.accept("IF", "EXISTS")
    name = ctx.qualify(p.name(), "ALTER PIPE")
    if name not in ctx.account.pipes and if_exists:
        return "alter_pipe", results.status("Statement executed successfully.")
    pipe = get_pipe(ctx, name)
    refreshing = p.accept("REFRESH")
    options = p.options() if refreshing else _set_options(p)
    # docs/snowflake-facts.md §1: a non-owner may REFRESH, pause and resume with OPERATE; other properties
    # need OWNERSHIP.
    needed = "OPERATE" if refreshing or set(options) <= {"PIPE_EXECUTION_PAUSED"} else "OWNERSHIP"
    if not pipe_allows(ctx, pipe.owner, display(pipe.name), needed):
        raise does_not_exist("Pipe", display(pipe.name))
    if refreshing:
        return "refresh_pipe", refresh(ctx, pipe, options.get("PREFIX"), options.get("MODIFIED_AFTER"))
    if "PIPE_EXECUTION_PAUSED" in options:
        # docs/snowflake-facts.md §5: files submitted while paused "won't be processed until the pipe is resumed".
        pipe.paused = options["PIPE_EXECUTION_PAUSED"] is True
    if "COMMENT" in options:
        pipe.comment = str(options["COMMENT"])
    return "alter_pipe", results.status("Statement executed successfully.")


def _set_options(p: Parser) -> dict[str, Any]:
    p.expect("SET")
    return p.options()


# ---- REFRESH and the queue --------------------------------------------------------------------


def execution_state(account: Account, pipe: Pipe) -> str:
    """facts §2 executionState: a forced state, PAUSED, STOPPED_* when what the pipe names is gone, a
    stall, else RUNNING."""
    if pipe.forced_state is not None:
        return pipe.forced_state
    if pipe.paused:
        return "PAUSED"
    stage = account.stages.get(pipe.copy.stage)
    if stage is None:
        return "STOPPED_STAGE_DROPPED"
    if stage.id != pipe.stage_id:
        return "STOPPED_STAGE_ALTERED"
    fmt = pipe.copy.file_format
    if fmt and fmt.format_name and fmt.format_name not in account.file_formats:
        return "STOPPED_FILE_FORMAT_DROPPED"
    try:
        engine.TableLoader._describe(account.fakesnow.duck_conn.cursor(), pipe.copy.table)
    except SnowflakeError:
        return "STOPPED_MISSING_TABLE"
    return pipe.stall or "RUNNING"


def _forget_expired(account: Account, pipe: Pipe, now: float) -> None:
    pipe.load_metadata = {k: t for k, t in pipe.load_metadata.items() if now - t < PIPE_METADATA_TTL}
    pipe.loaded_at = {k: t for k, t in pipe.loaded_at.items() if k in pipe.load_metadata}
    for table, files in account.table_load_metadata.items():
        account.table_load_metadata[table] = {k: v for k, v in files.items() if now - v[1] < TABLE_METADATA_TTL}


def _modified_after(value: Any, now: float) -> float:
    """facts §1: MODIFIED_AFTER "default and maximum allowed value is 7 days"; older values are clamped."""
    window_start = now - REFRESH_WINDOW
    if value is None:
        return window_start
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise SnowflakeError(1008, f"SQL compilation error:\ninvalid MODIFIED_AFTER '{value}'", "22023") from None
    return max(moment, window_start)


def refresh(ctx: Context, pipe: Pipe, prefix: Any, modified_after: Any) -> Result:
    """Queue every recent file under the pipe's stage path (+PREFIX) that neither load history knows.

    docs/snowflake-facts.md §1: PREFIX is appended to the pipe's stage reference; only files staged within 7 days;
    "checks the load history for both the pipe and the target table"; the pipe dedupes on path+name.
    Output columns File/Status=SENT are UNCERTAIN in the facts (see docs/snowflake-standin.md).
    """
    account, now = ctx.account, ctx.now()
    state = execution_state(account, pipe)
    if state.startswith("STOPPED"):
        raise SnowflakeError(91079, f"Pipe '{display(pipe.name)}' cannot be refreshed: {state}.", "XX000")
    stage = get_stage(ctx, pipe.copy.stage)
    files = list_files(ctx.runtime, account, stage, pipe.copy.path + str(prefix or ""))
    _forget_expired(account, pipe, now)
    since = _modified_after(modified_after, now)
    bulk_loaded = account.table_load_metadata.get(pipe.copy.table, {})
    known = _known_to_pipe(account.reading, pipe)
    rows: list[list[Any]] = []
    for file in sorted(files, key=lambda f: f.key):
        if file.last_modified < since or file.relative_path in known or file.key in bulk_loaded:
            continue
        if not pattern_selects(pipe.copy.pattern, file):
            continue
        _enqueue(pipe, file, now)
        rows.append([account.reading.shown(file.relative_path), "SENT"])
    return Result(results.columns("File", "Status"), rows if account.reading.refresh_rows else [])


def pattern_selects(pattern: str | None, file: StagedFile) -> bool:
    """create-pipe / copy-into-table: Snowflake "trims any path segments in the stage definition from the
    storage location and applies the regular expression to any remaining path segments and filenames"."""
    return pattern is None or re.fullmatch(pattern, file.relative_path) is not None


def _known_to_pipe(reading: Reading, pipe: Pipe) -> set[str]:
    """Files REFRESH does not send: the pipe's load metadata; under `requeue`, only its finished loads."""
    if reading.requeue:
        return {path for path in pipe.load_metadata if path in pipe.loaded_at}
    return set(pipe.load_metadata)


def _enqueue(pipe: Pipe, file: StagedFile, now: float) -> None:
    pipe.load_metadata[file.relative_path] = now
    pipe.queue.append(QueuedFile(file, now))


def enqueue_files(account: Account, pipe: Pipe, files: list[StagedFile], now: float) -> list[StagedFile]:
    """Queue files a caller names (Snowpipe REST insertFiles) behind the same load metadata REFRESH obeys
    (docs/snowflake-facts.md §1): a file the pipe already knows is skipped. Returns the files queued."""
    _forget_expired(account, pipe, now)
    known = _known_to_pipe(account.reading, pipe)
    queued = [file for file in files if file.relative_path not in known]
    for file in queued:
        _enqueue(pipe, file, now)
    return queued


class Batch:
    """What the files of one drain share: each stage's S3 access (one IAM check per stage) and each
    table's loader (one fakesnow connection per table). Close it to release the loaders."""

    def __init__(self) -> None:
        self.storages: dict[str, StageStorage] = {}
        self.loaders: dict[QualifiedName, engine.TableLoader] = {}

    def storage(self, runtime: Runtime, account: Account, stage: Stage) -> StageStorage:
        if stage.id not in self.storages:
            self.storages[stage.id] = stage_storage(runtime, account, stage)
        return self.storages[stage.id]

    def loader(self, account: Account, table: QualifiedName) -> engine.TableLoader:
        if table not in self.loaders:
            self.loaders[table] = engine.TableLoader(account.fakesnow, table)
        return self.loaders[table]

    def __enter__(self) -> Batch:
        return self

    def __exit__(self, *_: object) -> None:
        for loader in self.loaders.values():
            loader.close()


def load_queued(
    runtime: Runtime,
    account: Account,
    pipe: Pipe,
    queued: QueuedFile,
    batch: Batch | None = None,
) -> LoadRecord | None:
    """Load one file of a pipe's queue (docs/snowflake-facts.md §5: Snowpipe's ON_ERROR default is SKIP_FILE).

    None when nothing was loaded: a duplicate the load metadata skips (`requeue`), or a stage the pipe
    cannot reach, which stalls the pipe with the file still queued. batch: what the files of one drain
    share."""
    now = runtime.clock.now()
    path = queued.file.relative_path
    if account.reading.requeue and path in pipe.loaded_at:
        return None
    on_error = engine.OnError.parse(pipe.copy.on_error or "SKIP_FILE")
    try:
        outcome = _load_one(runtime, account, pipe.copy, queued.file, on_error=on_error, now=now, batch=batch)
    except StageAccessError as error:
        pipe.stall, pipe.last_error, pipe.last_error_at = STALLED_PERMISSION, error.message, now
        pipe.queue.insert(0, queued)
        return None
    if pipe.stall == STALLED_PERMISSION:
        pipe.stall = pipe.last_error = pipe.last_error_at = None
    record = _record(account, pipe.copy, queued.file, outcome, received_at=queued.received_at, now=now, pipe=pipe)
    account.history.append(record)
    pipe.loaded_at[path] = now
    if outcome.status == engine.STATUS_FAILED and account.reading.resend_failed:
        # alter-pipe: REFRESH "queues only those files that were not loaded already".
        pipe.load_metadata.pop(path, None)
        pipe.loaded_at.pop(path, None)
    elif outcome.status != engine.STATUS_FAILED:
        pipe.last_ingested_at, pipe.last_ingested_path = now, path
    return record


def _load_one(
    runtime: Runtime,
    account: Account,
    copy: CopySpec,
    file: StagedFile,
    *,
    on_error: engine.OnError,
    now: float,
    batch: Batch | None,
) -> engine.Outcome:
    if batch is None:
        with Batch() as own:
            return _load_one(runtime, account, copy, file, on_error=on_error, now=now, batch=own)
    try:
        loader = batch.loader(account, copy.table)
    except SnowflakeError as error:
        return engine.whole_file_failure(error.message, on_error)
    prepared = _prepare(
        runtime, account, copy, file, on_error=on_error, now=now, stall_on_access=True, batch=batch, loader=loader
    )
    if isinstance(prepared, engine.Outcome):
        return prepared
    return engine.commit(prepared)


def _prepare(
    runtime: Runtime,
    account: Account,
    copy: CopySpec,
    file: StagedFile,
    *,
    on_error: engine.OnError,
    now: float,
    stall_on_access: bool = False,
    batch: Batch | None = None,
    loader: engine.TableLoader | None = None,
) -> engine.Prepared | engine.Outcome:
    """Read and evaluate a file; an Outcome when it fails as a whole (fault, storage, format).

    With stall_on_access a stage access error is raised instead: Snowpipe stalls on it."""
    if (fault := account.fail_files.get(file.key)) is not None:
        return engine.whole_file_failure(fault, on_error)
    try:
        stage = account.stages.get(copy.stage)
        if stage is None:
            raise does_not_exist("Stage", display(copy.stage))
        options = resolve_file_format(account, copy.file_format or stage.file_format)
        bucket, _ = split_s3_url(stage.url)
        data = (batch or Batch()).storage(runtime, account, stage).read(bucket, file.key)
        source = engine.SourceFile(file.relative_path, data, file.last_modified)
        return engine.prepare(
            account.fakesnow,
            copy.table,
            columns=copy.columns,
            exprs=copy.select_exprs,
            file=source,
            options=options,
            on_error=on_error,
            scan_time=now,
            shared=loader,
        )
    except SnowflakeError as error:
        # system_pipe_status: a pipe that cannot reach its stage stalls instead of failing file after file.
        if stall_on_access and isinstance(error, StageAccessError):
            raise
        return engine.whole_file_failure(error.message, on_error)


def _record(
    account: Account,
    copy: CopySpec,
    file: StagedFile,
    outcome: engine.Outcome,
    *,
    received_at: float,
    now: float,
    pipe: Pipe | None,
    status: str | None = None,
) -> LoadRecord:
    file_name, stage_location = history_location(account.reading, account.stages.get(copy.stage), file)
    first = outcome.first_error
    return LoadRecord(
        file_name=file_name,
        stage_location=stage_location,
        table=copy.table,
        status=status or _HISTORY_STATUS[outcome.status],
        received_at=received_at,
        last_load_time=now,
        visible_at=now + account.settings.history_lag_seconds,
        row_count=outcome.rows_loaded,
        row_parsed=outcome.rows_parsed,
        file_size=file.size,
        first_error_message=first.message if first else None,
        first_error_line_number=first.line if first else None,
        first_error_character_pos=first.character if first else None,
        first_error_column_name=first.column if first else None,
        error_count=len(outcome.errors),
        relative_path=file.relative_path,
        error_limit=outcome.error_limit,
        pipe=pipe.name if pipe else None,
        pipe_id=pipe.id if pipe else None,
    )


def load_due(runtime: Runtime, account: Account, everything: bool) -> dict[str, int]:
    """Load queued files of unpaused pipes: all of them, or those queued load_delay_seconds ago."""
    counts = {"loaded": 0, "failed": 0, "partially_loaded": 0}
    delay = account.settings.load_delay_seconds
    if not everything and delay is None:
        return counts
    with account.lock, Batch() as batch:
        for pipe in list(account.pipes.values()):
            # A stalled pipe keeps trying the stage (it recovers when access returns); others wait.
            if execution_state(account, pipe) not in ("RUNNING", STALLED_PERMISSION):
                continue
            now = runtime.clock.now()
            due = [q for q in pipe.queue if everything or now - q.received_at >= (delay or 0)]
            for queued in due:
                pipe.queue.remove(queued)
                record = load_queued(runtime, account, pipe, queued, batch)
                if pipe.stall is not None:
                    break
                if record is not None:
                    key = {"Loaded": "loaded", "Load failed": "failed"}.get(record.status, "partially_loaded")
                    counts[key] += 1
    return counts


def history_location(reading: Reading, stage: Stage | None, file: StagedFile) -> tuple[str, str]:
    """COPY_HISTORY's FILE_NAME and STAGE_LOCATION for a file, as the reading names them."""
    if stage is None:
        return reading.shown(file.relative_path), ""
    if reading.bucket_paths:
        bucket, _ = split_s3_url(stage.url)
        return reading.shown(file.key), f"s3://{bucket}/"
    return reading.shown(file.relative_path), stage_base(stage)


# ---- bulk COPY INTO ---------------------------------------------------------------------------


_COPY_COLUMNS = [
    *results.columns("file", "status", "rows_parsed:fixed", "rows_loaded:fixed", "error_limit:fixed"),
    *results.columns("errors_seen:fixed", "first_error", "first_error_line:fixed", "first_error_character:fixed"),
    Column("first_error_column_name"),
]


def copy_into(ctx: Context, sql: str) -> Result:
    """Bulk COPY on the warehouse: synchronous, ON_ERROR default ABORT_STATEMENT, 64-day eTag metadata."""
    spec, _ = parse_copy(ctx, sql)
    account, now = ctx.account, ctx.now()
    stage = get_stage(ctx, spec.stage)
    on_error = engine.OnError.parse(spec.on_error or "ABORT_STATEMENT")
    loaded = account.table_load_metadata.setdefault(spec.table, {})
    files = [f for f in list_files(ctx.runtime, account, stage, spec.path) if _selected(spec, f)]
    files = [f for f in files if spec.force or loaded.get(f.key, ("", 0.0))[0] != f.etag]
    if not files:
        return Result([Column("status")], [["Copy executed with 0 files processed."]])
    batch = Batch()  # its S3 access only: every file is prepared before any commits, each with its loader
    prepared = [(f, _prepare(ctx.runtime, account, spec, f, on_error=on_error, now=now, batch=batch)) for f in files]
    if on_error.mode == "ABORT_STATEMENT":
        _abort_on_first_error(prepared)
    rows: list[list[Any]] = []
    for file, item in prepared:
        outcome = item if isinstance(item, engine.Outcome) else engine.commit(item)
        # copy_history lists `Load skipped`: a bulk COPY skipping a file under ON_ERROR = SKIP_FILE*.
        skipped = on_error.mode == "SKIP_FILE" and outcome.status == engine.STATUS_FAILED
        status = "Load skipped" if skipped else None
        account.history.append(
            _record(account, spec, file, outcome, received_at=now, now=now, pipe=None, status=status)
        )
        if outcome.status != engine.STATUS_FAILED:
            loaded[file.key] = (file.etag, now)
        first = outcome.first_error
        location = stage_base(stage) + file.relative_path
        counts = [outcome.rows_parsed, outcome.rows_loaded, outcome.error_limit, len(outcome.errors)]
        error = [first.message, first.line, first.character, first.column] if first else [None] * 4
        rows.append([location, outcome.status, *counts, *error])
    return Result(_COPY_COLUMNS, rows)


def _selected(spec: CopySpec, file: StagedFile) -> bool:
    if spec.files is not None and file.relative_path.removeprefix(spec.path) not in spec.files:
        return False
    return pattern_selects(spec.pattern, file)


def _abort_on_first_error(prepared: list[tuple[StagedFile, engine.Prepared | engine.Outcome]]) -> None:
    """ABORT_STATEMENT: any error fails the whole statement and nothing is loaded."""
    for _, item in prepared:
        outcome = item if isinstance(item, engine.Outcome) else item.outcome
        if outcome.errors:
            for _, other in prepared:
                if isinstance(other, engine.Prepared):
                    engine.discard(other)
            first = outcome.errors[0]
            raise SnowflakeError(
                100069 if first.message.startswith("Error parsing JSON") else 100038, first.message, "22000"
            )


def truncate_table(account: Account, table: QualifiedName) -> None:
    """facts §2: COPY_HISTORY's "Results start after the latest TRUNCATE"; and TRUNCATE "deletes the load
    metadata for the table", so bulk COPY may load the same files again
    (https://docs.snowflake.com/en/sql-reference/sql/truncate-table). A pipe's own metadata is kept."""
    account.history = [record for record in account.history if record.table != table]
    account.table_load_metadata.pop(table, None)


def history_rows(
    account: Account, table: QualifiedName, pipe_name: QualifiedName | None, now: float
) -> list[LoadRecord]:
    """COPY_HISTORY's rows: finished loads past the history lag, plus files still queued.

    docs/snowflake-facts.md §2: statuses include ``Load in progress``; the function covers the last 14 days; dropping or
    recreating a pipe removes its rows (done in create_pipe / drop_pipe).
    """
    visible = [
        r for r in account.history if r.table == table and r.visible_at <= now and now - r.last_load_time <= HISTORY_TTL
    ]
    in_progress = [
        LoadRecord(
            *history_location(account.reading, account.stages.get(pipe.copy.stage), q.file),
            table=table,
            status="Load in progress",
            received_at=q.received_at,
            last_load_time=q.received_at,
            visible_at=q.received_at,
            row_count=0,
            row_parsed=None,
            file_size=q.file.size,
            error_count=0,
            error_limit=engine.OnError.parse(pipe.copy.on_error or "SKIP_FILE").error_limit(0),
            pipe=pipe.name,
            pipe_id=pipe.id,
            relative_path=q.file.relative_path,
        )
        for pipe in account.pipes.values()
        if pipe.copy.table == table and account.reading.queued_in_history
        for q in pipe.queue
    ]
    rows = visible + in_progress
    if pipe_name is not None:
        rows = [r for r in rows if r.pipe == pipe_name]
    return rows
