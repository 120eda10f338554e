{#- Which of these files already have rows in the table, by their lineage (SOURCE_FILE_NAME holds
    METADATA$FILENAME, the path relative to the stage). The loader's ground truth when Snowpipe's own
    memory is gone or late: a re-created pipe forgets its load history (docs/snowflake-facts.md §5), and
    COPY_HISTORY may lag (§2). Only those rare paths run it; LOADED_AT bounds the scan, except for files
    older than COPY_HISTORY's 14 days, whose load may be older too (the names list bounds it then). -#}
SELECT SOURCE_FILE_NAME, COUNT(*) AS ROW_COUNT
FROM {{ target.qualified_table | ident }}
WHERE SOURCE_FILE_NAME IN ({% for name in names %}{{ name | literal }}{% if not loop.last %}, {% endif %}{% endfor %})
{% if since is not none %}
  AND LOADED_AT >= TO_TIMESTAMP_LTZ({{ since | literal }})
{% endif %}
GROUP BY SOURCE_FILE_NAME
