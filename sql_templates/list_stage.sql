{#- Proves the stage can read the organisation's prefix through the integration and the IAM role. -#}
LIST {{ target.qualified_stage | stage_ref }}
