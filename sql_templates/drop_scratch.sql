{#- `floe doctor --live`: drop what its scratch connection's setup script created, as the admin. -#}
{% if object == "database" -%}
DROP DATABASE IF EXISTS {{ target.database | ident }}
{%- elif object == "user" -%}
DROP USER IF EXISTS {{ target.user | ident }}
{%- elif object == "role" -%}
DROP ROLE IF EXISTS {{ target.role | ident }}
{%- elif object == "integration" -%}
DROP INTEGRATION IF EXISTS {{ target.integration | ident }}
{%- endif %}
