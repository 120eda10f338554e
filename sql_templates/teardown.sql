{#- One DROP per call; the table only when the operator asks (it holds the customer's data). -#}
{% if object == "pipe" -%}
DROP PIPE IF EXISTS {{ target.qualified_pipe | ident }}
{%- elif object == "stage" -%}
DROP STAGE IF EXISTS {{ target.qualified_stage | ident }}
{%- elif object == "table" -%}
DROP TABLE IF EXISTS {{ target.qualified_table | ident }}
{%- endif %}
