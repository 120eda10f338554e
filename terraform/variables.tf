# Inputs of the Floe module. Names mirror the FLOE_* variables of docs/architecture.md where one exists.

variable "name_prefix" {
  description = "Prefix of every named resource (functions, roles, log groups, alarms, metrics namespace suffix)."
  type        = string
  default     = "floe"

  validation {
    condition     = can(regex("^[A-Za-z0-9-]{1,32}$", var.name_prefix))
    error_message = "name_prefix must be 1-32 letters, digits or hyphens."
  }
}

variable "package_path" {
  description = "Path of the Lambda zip built by `floe package` for var.architecture and var.python_runtime."
  type        = string
}

variable "python_runtime" {
  description = "Lambda runtime; must match the --python-version the package was built for (both run on Amazon Linux 2023)."
  type        = string
  default     = "python3.12"

  validation {
    condition     = contains(["python3.12", "python3.13"], var.python_runtime)
    error_message = "python_runtime must be python3.12 or python3.13."
  }
}

variable "architecture" {
  description = "Lambda instruction set; must match the --architecture the package was built for (same default as `floe package`)."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "bucket_name" {
  description = "FLOE_BUCKET: the bucket holding every organisation's live and dead-letter prefixes."
  type        = string
}

variable "manage_bucket" {
  description = "Create the bucket and own its settings (versioning, lifecycle, encryption, public access block, TLS-only policy). False: the bucket exists and is managed elsewhere; only the IAM scoping refers to it."
  type        = bool
  default     = true
}

variable "live_root" {
  description = "Top folder of the live prefixes; FLOE_LIVE_PREFIX becomes \"<live_root>{org_id}/\"."
  type        = string
  default     = "live/"

  validation {
    condition     = can(regex("^([a-z0-9=_-]+/)+$", var.live_root))
    error_message = "live_root must be folders ending in '/', e.g. live/."
  }
}

variable "dead_letter_root" {
  description = "Top folder of the dead-letter prefixes; FLOE_DEAD_LETTER_PREFIX becomes \"<dead_letter_root>{org_id}/\". Must lie outside live_root so no stage URL ever covers it."
  type        = string
  default     = "dead-letter/"

  validation {
    condition     = can(regex("^([a-z0-9=_-]+/)+$", var.dead_letter_root))
    error_message = "dead_letter_root must be folders ending in '/', e.g. dead-letter/."
  }
}

variable "secret_prefix" {
  description = "FLOE_SECRET_PREFIX: Secrets Manager name prefix of the connections' Snowflake credentials; the loader may read only these."
  type        = string
  default     = "floe/connections/"

  validation {
    condition     = can(regex("^[A-Za-z0-9/_+=.@-]+/$", var.secret_prefix))
    error_message = "secret_prefix must be a secret-name path ending in '/'."
  }
}

variable "iam_role_path" {
  description = "FLOE_IAM_ROLE_PATH: IAM path of the per-organisation roles Snowflake assumes (used by the operator policy only)."
  type        = string
  default     = "/floe/snowflake/"

  validation {
    condition     = can(regex("^/([A-Za-z0-9_+=,.@-]+/)*$", var.iam_role_path))
    error_message = "iam_role_path must look like /floe/snowflake/."
  }
}

variable "connections_dsn_secret_arn" {
  description = "FLOE_CONNECTIONS_DSN_SECRET: full ARN of a Secrets Manager secret whose value is the connection database's postgresql://… DSN. null: the module creates an empty secret named \"<name_prefix>/connections-dsn\" (output connections_dsn_secret_arn) and you put the DSN into it yourself; Terraform never holds the DSN."
  type        = string
  default     = null

  validation {
    condition     = can(regex("^arn:[a-z-]+:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", coalesce(var.connections_dsn_secret_arn, "arn:aws:secretsmanager:none:000000000000:secret:none")))
    error_message = "connections_dsn_secret_arn must be a Secrets Manager secret ARN (or null)."
  }
}

variable "core_api_url" {
  description = "FLOE_CORE_API_URL: where run metrics are POSTed; null sends none."
  type        = string
  default     = null
}

variable "core_api_token_secret_arn" {
  description = "FLOE_CORE_API_TOKEN_SECRET: full ARN of the secret holding the core API's bearer token; null if the API needs none. The loader may read this one secret besides the connections'."
  type        = string
  default     = null

  validation {
    condition     = can(regex("^arn:[a-z-]+:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", coalesce(var.core_api_token_secret_arn, "arn:aws:secretsmanager:none:000000000000:secret:none")))
    error_message = "core_api_token_secret_arn must be a Secrets Manager secret ARN."
  }
}

variable "extra_environment" {
  description = "More environment variables for the loader (e.g. FLOE_RETRY_ATTEMPTS); the module's own FLOE_* values win on a clash."
  type        = map(string)
  default     = {}
}

variable "timeout_seconds" {
  description = "Loader timeout. The lease (FLOE_LEASE_SECONDS) is set to this plus 60 s so a run never outlives its lease."
  type        = number
  default     = 900

  validation {
    condition     = var.timeout_seconds >= 60 && var.timeout_seconds <= 900
    error_message = "timeout_seconds must lie between 60 and 900."
  }
}

variable "memory_mb" {
  description = "Loader memory (MB); also scales its CPU share."
  type        = number
  default     = 512

  validation {
    condition     = var.memory_mb >= 128 && var.memory_mb <= 10240
    error_message = "memory_mb must lie between 128 and 10240."
  }
}

variable "reserved_concurrency" {
  description = "Concurrency reserved for the loader (caps Snowflake logins and connection-DB sessions per tick); the dispatcher then reserves 1 more. null (default): nothing is reserved for either function, which new and low-quota accounts require (AWS keeps 100 executions unreserved)."
  type        = number
  default     = null

  validation {
    # coalesce, not `== null ||`: Terraform before 1.12 evaluates both sides of ||.
    condition     = coalesce(var.reserved_concurrency, 1) >= 1
    error_message = "reserved_concurrency must be null or at least 1 (0 would stop the loader; pause connections instead)."
  }
}

variable "async_max_event_age_seconds" {
  description = "How long a queued asynchronous invocation may wait before it is dropped; the next tick does its work anyway."
  type        = number
  default     = 300

  validation {
    condition     = var.async_max_event_age_seconds >= 60 && var.async_max_event_age_seconds <= 21600
    error_message = "async_max_event_age_seconds must lie between 60 and 21600."
  }
}

variable "invoker_role_arns" {
  description = "IAM role ARNs of the task processor allowed to invoke the loader (resource-based policy; a role in another account also needs lambda:InvokeFunction in its own policy)."
  type        = list(string)
  default     = []
}

variable "enable_schedule" {
  description = "For deployments without a task processor: an EventBridge rule runs the dispatcher (loader.dispatch.handler), which invokes the loader once per active connection."
  type        = bool
  default     = false
}

variable "schedule_expression" {
  description = "EventBridge schedule of the dispatcher (when enable_schedule)."
  type        = string
  default     = "rate(1 minute)"
}

variable "log_retention_days" {
  description = "Retention of the functions' log groups."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, …, 3653)."
  }
}

variable "alarm_actions" {
  description = "ARNs (e.g. SNS topics) notified when an alarm fires and when it recovers."
  type        = list(string)
  default     = []
}

variable "error_alarm_threshold" {
  description = "Failed runs (RunFailed, report status \"error\") summed over failed_runs_alarm_periods 5-minute periods that raise <prefix>-failed-runs; crashes and timeouts alarm from the first."
  type        = number
  default     = 1

  validation {
    condition     = var.error_alarm_threshold >= 1
    error_message = "error_alarm_threshold must be at least 1."
  }
}

variable "failed_runs_alarm_periods" {
  description = "How many 5-minute periods the failed-runs alarm sums RunFailed over (e.g. 3 with error_alarm_threshold 3: three failed runs within 15 minutes)."
  type        = number
  default     = 1

  validation {
    condition     = var.failed_runs_alarm_periods >= 1 && var.failed_runs_alarm_periods <= 288
    error_message = "failed_runs_alarm_periods must lie between 1 and 288 (one day)."
  }
}

variable "lag_alarm_threshold_seconds" {
  description = "Age (seconds) of a connection's oldest live file (LagSeconds) above which <prefix>-lag fires for that connection."
  type        = number
  default     = 1800

  validation {
    condition     = var.lag_alarm_threshold_seconds >= 60
    error_message = "lag_alarm_threshold_seconds must be at least 60."
  }
}

variable "lag_alarm_periods" {
  description = "Consecutive 5-minute periods the lag must stay above lag_alarm_threshold_seconds before <prefix>-lag fires."
  type        = number
  default     = 2

  validation {
    condition     = var.lag_alarm_periods >= 1 && var.lag_alarm_periods <= 288
    error_message = "lag_alarm_periods must lie between 1 and 288."
  }
}

variable "noncurrent_version_expiration_days" {
  description = "Days a deleted (loaded or replayed) object's old version is kept before S3 expires it: the window to undo a wrong delete."
  type        = number
  default     = 7

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1
    error_message = "noncurrent_version_expiration_days must be at least 1."
  }
}

variable "dead_letter_expiration_days" {
  description = "Days a dead letter is kept before S3 expires it (then its noncurrent version for noncurrent_version_expiration_days more); null keeps dead letters until someone replays or deletes them."
  type        = number
  default     = 90

  validation {
    # coalesce, not `== null ||`: Terraform before 1.12 evaluates both sides of || and fails on null >= 7.
    condition     = coalesce(var.dead_letter_expiration_days, 7) >= 7
    error_message = "dead_letter_expiration_days must be null or at least 7 (a person has to have time to replay)."
  }
}

variable "create_operator_policy" {
  description = "Create the managed policy for the people who run `floe provision` / `floe dead-letters` / `floe replay` (output operator_policy_arn); attach it to their role yourself."
  type        = bool
  default     = false
}

variable "vpc_subnet_ids" {
  description = "Subnets for the functions when the connection database is only reachable inside a VPC (they then need a NAT route to Snowflake, S3/Secrets Manager endpoints and the core API). Empty: no VPC."
  type        = list(string)
  default     = []
}

variable "vpc_security_group_ids" {
  description = "Security groups for the functions (with vpc_subnet_ids)."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags on every resource that takes them."
  type        = map(string)
  default     = {}
}
