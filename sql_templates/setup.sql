{#- The customer admin's script: everything Floe cannot do for itself. Each statement is explained in a
    SQL comment for the admin who reviews it; the facts behind each grant (docs/snowflake-facts.md) are cited
    in template comments like this one, which do not reach the script. -#}
-- Floe setup for one warehouse connection. Review it, then run it as ACCOUNTADMIN: creating a
-- storage integration needs CREATE INTEGRATION, which only ACCOUNTADMIN has by default.
-- Every statement is idempotent, so running the script again is safe.
{# §4: CREATE INTEGRATION is ACCOUNTADMIN's by default. #}
USE ROLE ACCOUNTADMIN;

-- The role Floe's service user works as. Floe creates the file format, table, stage and pipe with
-- this role, so the role owns them, and ownership already includes SELECT and INSERT on the table
-- and MONITOR and OPERATE on the pipe (OPERATE to submit files, by REFRESH or Snowpipe's REST
-- insertFiles; MONITOR to read their load status). If you create the table yourself, also grant
-- SELECT and INSERT on it to this role.
{# §1 (REFRESH: OPERATE, SELECT/INSERT), §2 (PIPE_STATUS: OWNERSHIP or MONITOR), §3 (REST: insertFiles OPERATE, insertReport/loadHistoryScan MONITOR), §5 (CREATE PIPE needs SELECT/INSERT on the table) #}
CREATE ROLE IF NOT EXISTS {{ target.role | ident }};

-- Under SYSADMIN, as Snowflake recommends for custom roles, so your administrators can pause, inspect
-- and drop the objects this role will own.
{# https://docs.snowflake.com/en/user-guide/security-access-control-considerations (custom roles under SYSADMIN) #}
GRANT ROLE {{ target.role | ident }} TO ROLE SYSADMIN;

-- Where the events land.
CREATE DATABASE IF NOT EXISTS {{ target.database | ident }};
CREATE SCHEMA IF NOT EXISTS {{ target.qualified_schema | ident }};

-- USAGE on the database and schema: to create and use objects in them, to refresh the pipe and
-- to read the table's load history (COPY_HISTORY).
{# §1 (REFRESH needs USAGE on database and schema), §2 (COPY_HISTORY: USAGE plus any table privilege) #}
GRANT USAGE ON DATABASE {{ target.database | ident }} TO ROLE {{ target.role | ident }};
GRANT USAGE ON SCHEMA {{ target.qualified_schema | ident }} TO ROLE {{ target.role | ident }};

-- CREATE FILE FORMAT, TABLE, STAGE and PIPE on this schema only: Floe creates its own objects and
-- re-creates the pipe when Floe's pipe definition changes. Nothing account-wide.
{# §4 (CREATE STAGE), §5 (CREATE PIPE; file format and table DDL) #}
GRANT CREATE FILE FORMAT ON SCHEMA {{ target.qualified_schema | ident }} TO ROLE {{ target.role | ident }};
GRANT CREATE TABLE ON SCHEMA {{ target.qualified_schema | ident }} TO ROLE {{ target.role | ident }};
GRANT CREATE STAGE ON SCHEMA {{ target.qualified_schema | ident }} TO ROLE {{ target.role | ident }};
GRANT CREATE PIPE ON SCHEMA {{ target.qualified_schema | ident }} TO ROLE {{ target.role | ident }};

-- USAGE on the warehouse: Floe's load-history query is its only statement that needs one, at most
-- once per busy delivery run. Snowpipe itself loads on Snowflake's serverless compute.
{# §2 (table functions likely need a running warehouse), §3/§6 (Snowpipe is serverless) #}
GRANT USAGE ON WAREHOUSE {{ target.warehouse | ident }} TO ROLE {{ target.role | ident }};

-- The storage integration: lets Snowflake assume Floe's IAM role for your organisation, which can
-- read your organisation's folder of Floe's bucket and nothing else. Floe then adds Snowflake's
-- IAM user and external ID (DESC INTEGRATION) to that role's trust policy.
{# §4 #}
{{ integration_ddl }};

-- USAGE on the integration: needed to create a stage that uses it.
{# §4 (creating a stage needs USAGE on the integration) #}
GRANT USAGE ON INTEGRATION {{ target.integration | ident }} TO ROLE {{ target.role | ident }};

-- The service user: key-pair login only (a SERVICE user cannot log in with a password). The key
-- below is Floe's public key; the private key never leaves Floe's secret store.
{# §7 #}
CREATE USER IF NOT EXISTS {{ target.user | ident }}
  TYPE = SERVICE
  RSA_PUBLIC_KEY = {{ public_key | literal }}
  DEFAULT_ROLE = {{ target.role | ident }}
  DEFAULT_WAREHOUSE = {{ target.warehouse | ident }};
-- If the user already existed, install this key and this role as its default: Snowpipe's REST API
-- (Floe's REST load mode) runs as the user's default role, so that role must be the pipe's owner.
{# §3 (data-load-snowpipe-rest-overview: "The user should be created with this role as its default role") #}
ALTER USER {{ target.user | ident }} SET RSA_PUBLIC_KEY = {{ public_key | literal }};
ALTER USER {{ target.user | ident }} SET DEFAULT_ROLE = {{ target.role | ident }};
GRANT ROLE {{ target.role | ident }} TO USER {{ target.user | ident }};
