{#- External stage on the organisation's live prefix only. The trailing slash in the URL keeps it to
    that folder (docs/snowflake-facts.md §5); the integration allows nothing else (§4). -#}
CREATE OR REPLACE STAGE {{ target.qualified_stage | ident }}
  URL = {{ target.stage_url | literal }}
  STORAGE_INTEGRATION = {{ target.integration | ident }}
  COMMENT = {{ comment | literal }}
