{#- Queue the stage's files with the pipe (docs/snowflake-facts.md §1). PREFIX is appended to the stage URL;
    MODIFIED_AFTER is ISO 8601 and at most 7 days back; files the pipe already loaded are skipped. -#}
ALTER PIPE {{ target.qualified_pipe | ident }} REFRESH
{%- if prefix is not none %} PREFIX = {{ prefix | literal }}{% endif %}
{%- if modified_after is not none %} MODIFIED_AFTER = {{ modified_after | literal }}{% endif %}
