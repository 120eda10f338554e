"""What a person must do about a pipe that is not RUNNING. Pure: no I/O.

SYSTEM$PIPE_STATUS `executionState` (docs/snowflake-facts.md §2, §10): PAUSED, STOPPED_* (an object the
pipe names was dropped or changed), STALLED_* (the pipe cannot run: a compile, permission or internal
error), FAILING_OVER, READ_ONLY. None of them is a fault of the files: they stay live and load once the
pipe runs again, so a stopped pipe is the connection's error, never a dead letter. `error` is the
pipe's last compile error, not a file's.
"""

from __future__ import annotations

_REPROVISION = "run `floe provision --connection-id {connection_id}` to re-create it"
_STOPPED = {
    "STOPPED_STAGE_DROPPED": "its stage was dropped: " + _REPROVISION,
    "STOPPED_STAGE_ALTERED": "its stage was altered or re-created: " + _REPROVISION,
    "STOPPED_FILE_FORMAT_DROPPED": "its file format was dropped: " + _REPROVISION,
    "STOPPED_MISSING_TABLE": "its table is gone: restore the table (UNDROP TABLE) or " + _REPROVISION,
    "STOPPED_CLONED": "it is a clone, which Snowflake never runs: " + _REPROVISION,
}
_STALLED = {
    "STALLED_STAGE_PERMISSION_ERROR": (
        "Snowflake cannot read the bucket: check the storage integration's IAM role and its trust policy "
        "(`floe connection show` names them); the pipe resumes by itself once access works"
    ),
    "STALLED_COMPILATION_ERROR": "its COPY statement no longer compiles (a dropped or changed object): " + _REPROVISION,
    "STALLED_INITIALIZATION_ERROR": "check the loader role's grants on the stage, table and file format, "
    "then " + _REPROVISION,
    "STALLED_EXECUTION_ERROR": "Snowflake failed running it: check the error below; contact Snowflake "
    "support if it persists",
    "STALLED_INTERNAL_ERROR": "Snowflake failed internally; it usually recovers by itself, contact Snowflake "
    "support if it persists",
}


def pipe_state_message(
    state: str, error: str | None, *, pipe: str, qualified_pipe: str, connection_id: str, waiting: int
) -> str:
    """One line: the state, that the files wait (live, not dead-lettered), and what to do."""
    head = f"pipe {pipe} is {state}: {waiting} files wait in the live prefix"
    compile_error = f" (pipe error: {error})" if error else ""
    return f"{head}. {_advice(state, qualified_pipe).format(connection_id=connection_id)}{compile_error}"


def _advice(state: str, qualified_pipe: str) -> str:
    if state == "PAUSED":
        return f"Resume it with ALTER PIPE {qualified_pipe} SET PIPE_EXECUTION_PAUSED = FALSE"
    if advice := _STOPPED.get(state) or _STALLED.get(state):
        return advice[:1].upper() + advice[1:]
    if state.startswith("STOPPED_"):
        return "An object the pipe names was dropped or changed: " + _REPROVISION
    if state.startswith("STALLED_"):
        return "The pipe cannot run: check the error below and the loader role's grants"
    return "Snowflake does not run it now (e.g. failing over or read-only); the next tick tries again"
