{#- For the admin who creates the integration: creating a stage on it needs USAGE (docs/snowflake-facts.md §4). -#}
GRANT USAGE ON INTEGRATION {{ target.integration | ident }} TO ROLE {{ target.role | ident }}
