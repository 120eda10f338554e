# Alarms: runs failing, the loader crashing or being throttled, and files being dead-lettered.
# The handler never raises for a bad tick (it returns and logs a report with "status": "error"), so
# AWS/Lambda Errors counts only crashes and timeouts; failed runs are counted from the run report line
# (`{"msg": "run report", "report": {..., "status": ...}, "dead_lettered_batches": <n>}`).
# A dead-lettered batch is not a failed run but always needs a person.

resource "aws_cloudwatch_log_metric_filter" "dead_lettered_batches" {
  name           = "${var.name_prefix}-dead-lettered-batches"
  log_group_name = aws_cloudwatch_log_group.loader.name
  pattern        = "{ $.dead_lettered_batches > 0 }"

  metric_transformation {
    name      = "DeadLetteredBatches"
    namespace = local.metrics_namespace
    value     = "$.dead_lettered_batches"
    unit      = "Count"
  }
}

resource "aws_cloudwatch_metric_alarm" "dead_lettered" {
  alarm_name          = "${var.name_prefix}-dead-lettered"
  alarm_description   = "Floe moved files to the dead-letter prefix. Runbook: docs/operations.md, 'Dead letters'."
  namespace           = local.metrics_namespace
  metric_name         = aws_cloudwatch_log_metric_filter.dead_lettered_batches.metric_transformation[0].name
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  # No report line with dead letters means none happened.
  treat_missing_data = "notBreaching"
  alarm_actions      = var.alarm_actions
  ok_actions         = var.alarm_actions
  tags               = var.tags
}

resource "aws_cloudwatch_log_metric_filter" "failed_runs" {
  name           = "${var.name_prefix}-failed-runs"
  log_group_name = aws_cloudwatch_log_group.loader.name
  pattern        = "{ $.report.status = \"error\" }"

  metric_transformation {
    name      = "FailedRuns"
    namespace = local.metrics_namespace
    value     = "1"
    unit      = "Count"
  }
}

resource "aws_cloudwatch_metric_alarm" "failed_runs" {
  alarm_name          = "${var.name_prefix}-failed-runs"
  alarm_description   = "Floe runs ended with status error (bad event, unreadable secret, Snowflake refused, …). Runbook: docs/operations.md, 'Alarms'."
  namespace           = local.metrics_namespace
  metric_name         = aws_cloudwatch_log_metric_filter.failed_runs.metric_transformation[0].name
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = var.error_alarm_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "loader_errors" {
  alarm_name          = "${var.name_prefix}-loader-errors"
  alarm_description   = "Floe loader invocations crashed or timed out. Runbook: docs/operations.md, 'Alarms'."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.loader.function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "loader_throttles" {
  alarm_name          = "${var.name_prefix}-loader-throttles"
  alarm_description   = "Floe loader invocations were throttled: more connections per tick than reserved_concurrency. Runbook: docs/operations.md, 'Alarms'."
  namespace           = "AWS/Lambda"
  metric_name         = "Throttles"
  dimensions          = { FunctionName = aws_lambda_function.loader.function_name }
  statistic           = "Sum"
  period              = 300
  # Sustained, not a single burst at the top of a tick.
  evaluation_periods  = 3
  datapoints_to_alarm = 3
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "dispatcher_errors" {
  count               = var.enable_schedule ? 1 : 0
  alarm_name          = "${var.name_prefix}-dispatcher-errors"
  alarm_description   = "The Floe dispatcher failed: no connection was loaded this tick. Runbook: docs/operations.md, 'Alarms'."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.dispatcher[0].function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = var.tags
}
