{#- Per-file load outcomes for the table (docs/snowflake-facts.md §2): the INFORMATION_SCHEMA table function
    of the connection's database, 14 days at most. The table name is a string holding the quoted,
    qualified name, like SYSTEM$PIPE_STATUS's argument. -#}
SELECT
  FILE_NAME,
  STAGE_LOCATION,
  STATUS,
  ROW_COUNT,
  ROW_PARSED,
  ERROR_COUNT,
  FIRST_ERROR_MESSAGE,
  FIRST_ERROR_LINE_NUMBER,
  LAST_LOAD_TIME,
  PIPE_RECEIVED_TIME
FROM TABLE({{ target.database | ident }}.INFORMATION_SCHEMA.COPY_HISTORY(
  TABLE_NAME => {{ target.qualified_table | ident | literal }},
  START_TIME => TO_TIMESTAMP_LTZ({{ start_time | literal }})
))
