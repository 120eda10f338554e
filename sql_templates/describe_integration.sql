{#- STORAGE_AWS_IAM_USER_ARN and STORAGE_AWS_EXTERNAL_ID for the role's trust policy (docs/snowflake-facts.md §4). -#}
DESC INTEGRATION {{ target.integration | ident }}
