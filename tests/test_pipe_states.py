"""The pure map from a pipe's executionState to the line a person reads (loader.pipe_states)."""

from __future__ import annotations

import pytest

from loader.pipe_states import pipe_state_message

PIPE = '"ANALYTICS"."FLAGSMITH"."FLOE_EVENTS_PIPE"'


def message(state: str, error: str | None = None) -> str:
    return pipe_state_message(
        state, error, pipe="FLOE_EVENTS_PIPE", qualified_pipe=PIPE, connection_id="conn-1", waiting=3
    )


@pytest.mark.parametrize(
    ("state", "advice"),
    [
        ("PAUSED", f"ALTER PIPE {PIPE} SET PIPE_EXECUTION_PAUSED = FALSE"),
        ("STOPPED_STAGE_DROPPED", "floe provision --connection-id conn-1"),
        ("STOPPED_STAGE_ALTERED", "floe provision --connection-id conn-1"),
        ("STOPPED_FILE_FORMAT_DROPPED", "floe provision --connection-id conn-1"),
        ("STOPPED_MISSING_TABLE", "UNDROP TABLE"),
        ("STOPPED_CLONED", "floe provision --connection-id conn-1"),
        ("STOPPED_SOMETHING_NEW", "floe provision --connection-id conn-1"),
        ("STALLED_STAGE_PERMISSION_ERROR", "IAM role"),
        ("STALLED_COMPILATION_ERROR", "floe provision --connection-id conn-1"),
        ("STALLED_INITIALIZATION_ERROR", "grants"),
        ("STALLED_EXECUTION_ERROR", "Snowflake support"),
        ("STALLED_INTERNAL_ERROR", "Snowflake support"),
        ("STALLED_SOMETHING_NEW", "grants"),
        ("FAILING_OVER", "next tick"),
        ("READ_ONLY", "next tick"),
    ],
)
def test_every_state_says_what_to_do_and_that_the_files_stay_live(state: str, advice: str) -> None:
    line = message(state)
    assert line.startswith(f"pipe FLOE_EVENTS_PIPE is {state}: 3 files wait in the live prefix. ")
    assert advice in line
    assert "\n" not in line
    assert "dead" not in line  # a stopped pipe is not the files' fault


def test_the_pipe_error_is_quoted_as_the_pipe_s_not_a_file_s() -> None:
    line = message("STALLED_COMPILATION_ERROR", "SQL compilation error: Table 'EVENTS' does not exist")
    assert line.endswith("(pipe error: SQL compilation error: Table 'EVENTS' does not exist)")
    assert "(pipe error" not in message("PAUSED")
