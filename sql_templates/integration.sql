{#- Account-level storage integration for one organisation (docs/snowflake-facts.md §4).
    IF NOT EXISTS, never OR REPLACE: a replaced integration gets a new external ID and loses its
    stages (§4). STORAGE_ALLOWED_LOCATIONS is the organisation's live prefix and nothing else. -#}
CREATE STORAGE INTEGRATION IF NOT EXISTS {{ target.integration | ident }}
  TYPE = EXTERNAL_STAGE
  STORAGE_PROVIDER = 'S3'
  ENABLED = TRUE
  STORAGE_AWS_ROLE_ARN = {{ target.iam_role_arn | literal }}
  STORAGE_ALLOWED_LOCATIONS = ({{ target.stage_url | literal }})
  COMMENT = {{ comment | literal }}
