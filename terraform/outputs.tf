output "loader_function_name" {
  description = "Name of the loader Lambda (what the task processor invokes with {\"connection_id\": \"…\"})."
  value       = aws_lambda_function.loader.function_name
}

output "loader_function_arn" {
  description = "ARN of the loader Lambda."
  value       = aws_lambda_function.loader.arn
}

output "loader_role_arn" {
  description = "Execution role of the loader: logs, the DSN and core API token secrets, sts:AssumeRole on the data role (lambda/loader/aws_actions.py)."
  value       = aws_iam_role.loader.arn
}

output "loader_data_role_arn" {
  description = "FLOE_LOADER_DATA_ROLE_ARN: the role each tick assumes with a per-organisation session policy (the bucket and connection-secret permissions)."
  value       = aws_iam_role.loader_data.arn
}

output "connections_dsn_secret_arn" {
  description = "FLOE_CONNECTIONS_DSN_SECRET: the secret whose value must be the connection database's DSN (put it in with `aws secretsmanager put-secret-value` when the module created it)."
  value       = local.connections_dsn_secret_arn
}

output "snowflake_role_boundary_arn" {
  description = "Permissions boundary every role under iam_role_path must carry: set FLOE_IAM_ROLE_BOUNDARY_ARN to it where `floe provision` runs, which passes it on CreateRole; the operator policy refuses CreateRole/PutRolePolicy without it."
  value       = aws_iam_policy.snowflake_role_boundary.arn
}

output "dashboard_name" {
  description = "Name of the CloudWatch dashboard of Floe's metrics and alarms."
  value       = aws_cloudwatch_dashboard.floe.dashboard_name
}

output "loader_log_group_name" {
  description = "Log group of the loader's JSON log lines."
  value       = aws_cloudwatch_log_group.loader.name
}

output "loader_environment_prefixes" {
  description = "The prefix templates the loader runs with (FLOE_LIVE_PREFIX, FLOE_DEAD_LETTER_PREFIX), for `floe` commands run by operators."
  value = {
    FLOE_LIVE_PREFIX        = local.loader_environment["FLOE_LIVE_PREFIX"]
    FLOE_DEAD_LETTER_PREFIX = local.loader_environment["FLOE_DEAD_LETTER_PREFIX"]
  }
}

output "dispatcher_function_name" {
  description = "Name of the dispatcher Lambda, or null without enable_schedule."
  value       = var.enable_schedule ? aws_lambda_function.dispatcher[0].function_name : null
}

output "operator_policy_arn" {
  description = "Managed policy for operators running `floe provision` / `floe replay`, or null without create_operator_policy."
  value       = var.create_operator_policy ? aws_iam_policy.operator[0].arn : null
}

output "operator_policy_json" {
  description = "The operator policy document (also when you attach it by other means), or null without create_operator_policy."
  value       = var.create_operator_policy ? data.aws_iam_policy_document.operator[0].json : null
}

output "alarm_names" {
  description = "Names of the CloudWatch alarms this module created."
  value = concat(
    [
      aws_cloudwatch_metric_alarm.lag.alarm_name,
      aws_cloudwatch_metric_alarm.dead_lettered.alarm_name,
      aws_cloudwatch_metric_alarm.failed_runs.alarm_name,
      aws_cloudwatch_metric_alarm.loader_errors.alarm_name,
      aws_cloudwatch_metric_alarm.loader_throttles.alarm_name,
    ],
    aws_cloudwatch_metric_alarm.dispatcher_errors[*].alarm_name,
  )
}

output "bucket_arn" {
  description = "ARN of the events bucket (created here or not)."
  value       = local.bucket_arn
}
