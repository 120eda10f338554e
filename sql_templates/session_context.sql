{#- What the service user's session resolved to: proves the customer ran the setup script (the
    warehouse is checked with SHOW WAREHOUSES, which needs no running warehouse). -#}
SELECT
  CURRENT_USER() AS USER_NAME,
  CURRENT_ROLE() AS ROLE_NAME,
  CURRENT_DATABASE() AS DATABASE_NAME,
  CURRENT_SCHEMA() AS SCHEMA_NAME
