# The loader (one tick of one connection per invocation) and the optional dispatcher + schedule.

resource "aws_cloudwatch_log_group" "loader" {
  #checkov:skip=CKV_AWS_158:Lambda log lines carry no secrets (docs/architecture.md, Conventions); the AWS-owned key encrypts them at rest, and a CMK would need a key policy for the logs service that this module does not own.
  #checkov:skip=CKV_AWS_338:Operational logs; the run history that matters is POSTed to the core API. Raise log_retention_days where policy demands a year.
  name              = local.loader_log_group
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_lambda_function" "loader" {
  #checkov:skip=CKV_AWS_50:No X-Ray: each run reports itself as one JSON log line and a metrics POST; tracing would add xray:* to the least-privilege role.
  #checkov:skip=CKV_AWS_116:No DLQ on purpose: a tick is stateless and idempotent, the next tick redoes a failed one, and retries are off (event invoke config below).
  #checkov:skip=CKV_AWS_117:VPC is optional (vpc_subnet_ids); the loader needs Snowflake, S3, Secrets Manager and the core API, and a VPC only helps when the connection DB is private.
  #checkov:skip=CKV_AWS_173:No secret in the environment (the DSN is read from the FLOE_CONNECTIONS_DSN_SECRET secret); the ARNs, names and prefixes there are not sensitive, and Lambda's AWS-managed key encrypts them at rest.
  #checkov:skip=CKV_AWS_272:Code signing is not used: the zip is built reproducibly by `floe package` and deployed by this module from the same pipeline.
  function_name = local.loader_name
  description   = "Floe: one Snowpipe load tick for one connection"
  role          = aws_iam_role.loader.arn
  runtime       = var.python_runtime
  architectures = [var.architecture]
  handler       = "loader.handler.handler"

  filename         = var.package_path
  source_code_hash = filebase64sha256(var.package_path)

  timeout     = var.timeout_seconds
  memory_size = var.memory_mb
  # -1 is the provider's "no reservation" (the account's unreserved pool).
  reserved_concurrent_executions = var.reserved_concurrency == null ? -1 : var.reserved_concurrency

  environment {
    variables = local.loader_environment
  }

  dynamic "vpc_config" {
    for_each = local.in_vpc ? [1] : []
    content {
      subnet_ids         = var.vpc_subnet_ids
      security_group_ids = var.vpc_security_group_ids
    }
  }

  tags = var.tags

  depends_on = [aws_cloudwatch_log_group.loader, aws_iam_role_policy.loader, aws_iam_role_policy.loader_data]

  lifecycle {
    precondition {
      condition     = !startswith(var.live_root, var.dead_letter_root) && !startswith(var.dead_letter_root, var.live_root)
      error_message = "live_root and dead_letter_root must not contain each other: a dead letter under a stage URL would be loaded again."
    }
  }
}

# Asynchronous invocations (the dispatcher's, or a task processor's with InvocationType=Event): no
# retries and a short queue life, because the next tick does the same work with fresh state.
resource "aws_lambda_function_event_invoke_config" "loader" {
  function_name                = aws_lambda_function.loader.function_name
  maximum_retry_attempts       = 0
  maximum_event_age_in_seconds = var.async_max_event_age_seconds
}

resource "aws_lambda_permission" "invokers" {
  for_each      = toset(var.invoker_role_arns)
  statement_id  = "Invoke-${substr(sha1(each.value), 0, 12)}"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.loader.function_name
  principal     = each.value
}

# ---------------------------------------------------------------- dispatcher (enable_schedule)

resource "aws_cloudwatch_log_group" "dispatcher" {
  #checkov:skip=CKV_AWS_158:Same as the loader's log group: no secrets in log lines, AWS-owned key.
  #checkov:skip=CKV_AWS_338:Same as the loader's log group: operational logs only.
  count             = var.enable_schedule ? 1 : 0
  name              = local.dispatcher_log_group
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_lambda_function" "dispatcher" {
  #checkov:skip=CKV_AWS_50:No X-Ray, as for the loader.
  #checkov:skip=CKV_AWS_116:No DLQ: the next scheduled run dispatches every active connection again.
  #checkov:skip=CKV_AWS_117:VPC is optional (vpc_subnet_ids), as for the loader.
  #checkov:skip=CKV_AWS_173:As for the loader: no secret in the environment, only the DSN secret's ARN and the loader's name.
  #checkov:skip=CKV_AWS_272:Same artifact as the loader; code signing is not used.
  count         = var.enable_schedule ? 1 : 0
  function_name = local.dispatcher_name
  description   = "Floe: invoke the loader once per active connection"
  role          = aws_iam_role.dispatcher[0].arn
  runtime       = var.python_runtime
  architectures = [var.architecture]
  handler       = "loader.dispatch.handler"

  filename         = var.package_path
  source_code_hash = filebase64sha256(var.package_path)

  timeout     = 60
  memory_size = 256
  # One dispatch at a time when concurrency is reserved at all: two overlapping schedules would only
  # double the invocations (the loader's lease makes the second a no-op, but it still costs a run each).
  # Without reserved_concurrency nothing is reserved (new and low-quota accounts refuse any reservation).
  reserved_concurrent_executions = var.reserved_concurrency == null ? -1 : 1

  environment {
    variables = {
      FLOE_CONNECTIONS_DSN_SECRET = local.connections_dsn_secret_arn
      FLOE_LOADER_FUNCTION        = aws_lambda_function.loader.function_name
    }
  }

  dynamic "vpc_config" {
    for_each = local.in_vpc ? [1] : []
    content {
      subnet_ids         = var.vpc_subnet_ids
      security_group_ids = var.vpc_security_group_ids
    }
  }

  tags = var.tags

  depends_on = [aws_cloudwatch_log_group.dispatcher, aws_iam_role_policy.dispatcher]
}

resource "aws_lambda_function_event_invoke_config" "dispatcher" {
  count                        = var.enable_schedule ? 1 : 0
  function_name                = aws_lambda_function.dispatcher[0].function_name
  maximum_retry_attempts       = 0
  maximum_event_age_in_seconds = 60
}

resource "aws_cloudwatch_event_rule" "dispatch" {
  count               = var.enable_schedule ? 1 : 0
  name                = "${var.name_prefix}-dispatch"
  description         = "Floe: run the dispatcher on a schedule"
  schedule_expression = var.schedule_expression
  tags                = var.tags
}

resource "aws_cloudwatch_event_target" "dispatch" {
  count = var.enable_schedule ? 1 : 0
  rule  = aws_cloudwatch_event_rule.dispatch[0].name
  arn   = aws_lambda_function.dispatcher[0].arn
}

resource "aws_lambda_permission" "dispatch_schedule" {
  count         = var.enable_schedule ? 1 : 0
  statement_id  = "EventBridgeSchedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.dispatcher[0].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.dispatch[0].arn
}
