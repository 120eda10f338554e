{#- Reads an object's COMMENT (its template version). LIKE is a pattern, so callers match the exact
    name in the result; SHOW needs no running warehouse (docs/snowflake-facts.md §6). -#}
{% if object == "integration" -%}
SHOW INTEGRATIONS LIKE {{ name | literal }}
{%- else -%}
SHOW
{%- if object == "file_format" %} FILE FORMATS
{%- elif object == "table" %} TABLES
{%- elif object == "stage" %} STAGES
{%- elif object == "pipe" %} PIPES
{%- endif %} LIKE {{ name | literal }} IN SCHEMA {{ target.qualified_schema | ident }}
{%- endif %}
