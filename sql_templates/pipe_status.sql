{#- JSON with executionState, pendingFileCount... (docs/snowflake-facts.md §2). Case-sensitive names are
    written quoted inside the string. -#}
SELECT SYSTEM$PIPE_STATUS({{ target.qualified_pipe | ident | literal }}) AS PIPE_STATUS
