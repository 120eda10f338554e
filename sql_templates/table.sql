{#- One row per event as the ingestion server writes it (Flagsmith ingestion-server EventRecord,
    docs/snowflake-facts.md §12), plus lineage. IF NOT EXISTS: the table holds the customer's data and is never
    replaced by provisioning. -#}
CREATE TABLE IF NOT EXISTS {{ target.qualified_table | ident }} (
  ENVIRONMENT_KEY VARCHAR NOT NULL,
  COLLECTED_AT NUMBER(19, 0) NOT NULL,
  SDK_LANGUAGE VARCHAR,
  SDK_VERSION VARCHAR,
  EVENT VARCHAR NOT NULL,
  FEATURE_NAME VARCHAR,
  IDENTIFIER VARCHAR,
  VALUE VARIANT,
  TRAITS VARIANT,
  METADATA VARIANT,
  TIMESTAMP NUMBER(19, 0) NOT NULL,
  EVENT_TIME TIMESTAMP_NTZ(3) NOT NULL,
  COLLECTED_TIME TIMESTAMP_NTZ(3) NOT NULL,
  SOURCE_FILE_NAME VARCHAR NOT NULL,
  SOURCE_FILE_ROW_NUMBER NUMBER(19, 0) NOT NULL,
  LOADED_AT TIMESTAMP_LTZ NOT NULL
)
COMMENT = {{ comment | literal }}
