{#- AUTO_INGEST = FALSE: the loader submits files itself (ALTER PIPE ... REFRESH, docs/snowflake-facts.md §1).
    The transform keeps lineage: source file and row, and the load time from METADATA$START_SCAN_TIME
    rather than CURRENT_TIMESTAMP (§5). traits and metadata arrive as JSON strings, so PARSE_JSON them.
    PATTERN: Snowpipe loads only files in the writer's layout, the same files the loader tracks (anything
    else REFRESH would load behind its back, unlisted, undeleted and uncounted).
    ON_ERROR = SKIP_FILE (Snowpipe's default, §5, stated for the reviewer): a file loads whole or not at
    all, so a failed file can be dead-lettered and replayed without duplicating its good rows. -#}
CREATE OR REPLACE PIPE {{ target.qualified_pipe | ident }}
  AUTO_INGEST = FALSE
  COMMENT = {{ comment | literal }}
AS
COPY INTO {{ target.qualified_table | ident }} (
  ENVIRONMENT_KEY,
  COLLECTED_AT,
  SDK_LANGUAGE,
  SDK_VERSION,
  EVENT,
  FEATURE_NAME,
  IDENTIFIER,
  VALUE,
  TRAITS,
  METADATA,
  TIMESTAMP,
  EVENT_TIME,
  COLLECTED_TIME,
  SOURCE_FILE_NAME,
  SOURCE_FILE_ROW_NUMBER,
  LOADED_AT
)
FROM (
  SELECT
    $1:environment_key::VARCHAR,
    $1:collected_at::NUMBER(19, 0),
    $1:sdk_language::VARCHAR,
    $1:sdk_version::VARCHAR,
    $1:event::VARCHAR,
    $1:feature_name::VARCHAR,
    $1:identifier::VARCHAR,
    $1:value,
    PARSE_JSON($1:traits::VARCHAR),
    PARSE_JSON($1:metadata::VARCHAR),
    $1:timestamp::NUMBER(19, 0),
    TO_TIMESTAMP_NTZ($1:timestamp::NUMBER(19, 0), 3),
    TO_TIMESTAMP_NTZ($1:collected_at::NUMBER(19, 0), 3),
    METADATA$FILENAME,
    METADATA$FILE_ROW_NUMBER,
    METADATA$START_SCAN_TIME
  FROM {{ target.qualified_stage | stage_ref }}
)
FILE_FORMAT = (FORMAT_NAME = {{ target.qualified_file_format | ident | literal }})
PATTERN = {{ target.file_pattern | literal }}
ON_ERROR = SKIP_FILE
