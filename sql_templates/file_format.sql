{#- The event files are gzip NDJSON, one EventRecord per line (docs/snowflake-facts.md §12). -#}
CREATE OR REPLACE FILE FORMAT {{ target.qualified_file_format | ident }}
  TYPE = JSON
  COMPRESSION = AUTO
  STRIP_OUTER_ARRAY = FALSE
  COMMENT = {{ comment | literal }}
