# Alarms and the dashboard. The loader writes its run report as one CloudWatch Embedded Metric Format
# (EMF) log line: namespace "Floe" (local.metrics_namespace), metrics EventsDelivered, FilesLoaded,
# FilesDeadLettered, FilesInFlight, LagSeconds (age of the oldest live file), RunDurationMs,
# SnowflakeStatements, WarehouseStatements and RunFailed (1 when the run's status is error, else 0), each
# under the dimension sets [connection_id, status], [connection_id] and [] (the roll-up). CloudWatch
# extracts the metrics from the log line itself, so no metric filter is needed.
# The handler never raises for a bad tick (it returns and logs a report with "status": "error"), so
# AWS/Lambda Errors counts only crashes and timeouts; failed runs come from RunFailed.

locals {
  # One series per connection: the [connection_id] dimension set.
  lag_query = "SELECT MAX(LagSeconds) FROM SCHEMA(\"${local.metrics_namespace}\", connection_id) GROUP BY connection_id ORDER BY MAX() DESC"
}

# A Metrics Insights query alarm returning one time series per connection: each connection whose oldest
# live file is older than the threshold is a contributor, and the alarm names it.
resource "aws_cloudwatch_metric_alarm" "lag" {
  alarm_name          = "${var.name_prefix}-lag"
  alarm_description   = "A connection's oldest live file is older than ${var.lag_alarm_threshold_seconds} s (LagSeconds): its files are not loading. Runbook: docs/operations.md, 'Alarms'."
  evaluation_periods  = var.lag_alarm_periods
  datapoints_to_alarm = var.lag_alarm_periods
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.lag_alarm_threshold_seconds
  # A connection that reports nothing (idle, paused, removed) is not lagging.
  treat_missing_data = "notBreaching"
  alarm_actions      = var.alarm_actions
  ok_actions         = var.alarm_actions
  tags               = var.tags

  metric_query {
    id          = "lag"
    label       = "LagSeconds per connection"
    expression  = local.lag_query
    period      = 300
    return_data = true
  }
}

resource "aws_cloudwatch_metric_alarm" "dead_lettered" {
  alarm_name          = "${var.name_prefix}-dead-lettered"
  alarm_description   = "Floe moved files to the dead-letter prefix (FilesDeadLettered). Runbook: docs/operations.md, 'Dead letters'."
  namespace           = local.metrics_namespace
  metric_name         = "FilesDeadLettered"
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  # No report line with dead letters means none happened.
  treat_missing_data = "notBreaching"
  alarm_actions      = var.alarm_actions
  ok_actions         = var.alarm_actions
  tags               = var.tags
}

# RunFailed summed over failed_runs_alarm_periods five-minute periods (one period of that length,
# evaluated every minute).
resource "aws_cloudwatch_metric_alarm" "failed_runs" {
  alarm_name          = "${var.name_prefix}-failed-runs"
  alarm_description   = "Floe runs ended with status error (bad event, unreadable secret, Snowflake refused, …). Runbook: docs/operations.md, 'Alarms'."
  namespace           = local.metrics_namespace
  metric_name         = "RunFailed"
  statistic           = "Sum"
  period              = 300 * var.failed_runs_alarm_periods
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
  alarm_name        = "${var.name_prefix}-loader-throttles"
  alarm_description = "Floe loader invocations were throttled: more connections per tick than reserved_concurrency (or, unreserved, than the account's concurrency). Runbook: docs/operations.md, 'Alarms'."
  namespace         = "AWS/Lambda"
  metric_name       = "Throttles"
  dimensions        = { FunctionName = aws_lambda_function.loader.function_name }
  statistic         = "Sum"
  period            = 300
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

# ---------------------------------------------------------------- dashboard

locals {
  # Roll-up series (the [] dimension set): ["Floe", "<metric>", {stat}].
  dashboard_rollup = {
    for name, stat in {
      EventsDelivered     = "Sum"
      FilesLoaded         = "Sum"
      FilesDeadLettered   = "Sum"
      RunFailed           = "Sum"
      FilesInFlight       = "Maximum"
      LagSeconds          = "Maximum"
      SnowflakeStatements = "Sum"
      WarehouseStatements = "Sum"
    } : name => [local.metrics_namespace, name, { stat = stat }]
  }

  dashboard_widgets = [
    {
      type = "metric", x = 0, y = 0, width = 12, height = 6
      properties = {
        title   = "Delivered (all connections)"
        region  = local.region
        view    = "timeSeries"
        period  = 300
        metrics = [local.dashboard_rollup.EventsDelivered, local.dashboard_rollup.FilesLoaded]
      }
    },
    {
      type = "metric", x = 12, y = 0, width = 12, height = 6
      properties = {
        title   = "Dead-lettered files and failed runs (all connections)"
        region  = local.region
        view    = "timeSeries"
        period  = 300
        metrics = [local.dashboard_rollup.FilesDeadLettered, local.dashboard_rollup.RunFailed]
      }
    },
    {
      type = "metric", x = 0, y = 6, width = 12, height = 6
      properties = {
        title   = "Lag per connection: age of the oldest live file (s), worst 20"
        region  = local.region
        view    = "timeSeries"
        period  = 300
        metrics = [[{ id = "lag", expression = "${local.lag_query} LIMIT 20", label = "LagSeconds" }]]
        annotations = {
          horizontal = [{ label = "lag alarm", value = var.lag_alarm_threshold_seconds }]
        }
      }
    },
    {
      type = "metric", x = 12, y = 6, width = 12, height = 6
      properties = {
        title   = "Failed runs per connection, worst 20"
        region  = local.region
        view    = "timeSeries"
        period  = 300
        metrics = [[{ id = "failed", expression = "SELECT SUM(RunFailed) FROM SCHEMA(\"${local.metrics_namespace}\", connection_id) GROUP BY connection_id ORDER BY SUM() DESC LIMIT 20", label = "RunFailed" }]]
      }
    },
    {
      type = "metric", x = 0, y = 12, width = 8, height = 6
      properties = {
        title   = "Files in flight and lag (max over connections)"
        region  = local.region
        view    = "timeSeries"
        period  = 300
        metrics = [local.dashboard_rollup.FilesInFlight, local.dashboard_rollup.LagSeconds]
      }
    },
    {
      type = "metric", x = 8, y = 12, width = 8, height = 6
      properties = {
        title  = "Run duration (ms)"
        region = local.region
        view   = "timeSeries"
        period = 300
        metrics = [
          [local.metrics_namespace, "RunDurationMs", { stat = "p50" }],
          [local.metrics_namespace, "RunDurationMs", { stat = "p99" }],
          [local.metrics_namespace, "RunDurationMs", { stat = "Maximum" }],
        ]
      }
    },
    {
      type = "metric", x = 16, y = 12, width = 8, height = 6
      properties = {
        title   = "Statements in customers' Snowflake accounts"
        region  = local.region
        view    = "timeSeries"
        period  = 300
        metrics = [local.dashboard_rollup.SnowflakeStatements, local.dashboard_rollup.WarehouseStatements]
      }
    },
    {
      type = "metric", x = 0, y = 18, width = 12, height = 6
      properties = {
        title  = "Loader Lambda"
        region = local.region
        view   = "timeSeries"
        period = 300
        metrics = [
          ["AWS/Lambda", "Invocations", "FunctionName", aws_lambda_function.loader.function_name, { stat = "Sum" }],
          ["AWS/Lambda", "Errors", "FunctionName", aws_lambda_function.loader.function_name, { stat = "Sum" }],
          ["AWS/Lambda", "Throttles", "FunctionName", aws_lambda_function.loader.function_name, { stat = "Sum" }],
          ["AWS/Lambda", "ConcurrentExecutions", "FunctionName", aws_lambda_function.loader.function_name, { stat = "Maximum" }],
        ]
      }
    },
    {
      type = "alarm", x = 12, y = 18, width = 12, height = 6
      properties = {
        title  = "Floe alarms"
        alarms = local.alarm_arns
      }
    },
  ]

  alarm_arns = concat(
    [
      aws_cloudwatch_metric_alarm.lag.arn,
      aws_cloudwatch_metric_alarm.dead_lettered.arn,
      aws_cloudwatch_metric_alarm.failed_runs.arn,
      aws_cloudwatch_metric_alarm.loader_errors.arn,
      aws_cloudwatch_metric_alarm.loader_throttles.arn,
    ],
    aws_cloudwatch_metric_alarm.dispatcher_errors[*].arn,
  )
}

resource "aws_cloudwatch_dashboard" "floe" {
  dashboard_name = var.name_prefix
  dashboard_body = jsonencode({ widgets = local.dashboard_widgets })
}
