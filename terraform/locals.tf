locals {
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.region
  account_id = data.aws_caller_identity.current.account_id

  loader_name     = "${var.name_prefix}-loader"
  dispatcher_name = "${var.name_prefix}-dispatcher"
  # Created here (not by the runtime) so retention applies and the role needs no logs:CreateLogGroup.
  loader_log_group     = "/aws/lambda/${local.loader_name}"
  dispatcher_log_group = "/aws/lambda/${local.dispatcher_name}"
  # The loader's Embedded Metric Format namespace (fixed by the loader's code, not per deployment).
  metrics_namespace = "Floe"

  bucket_arn = "arn:${local.partition}:s3:::${var.bucket_name}"
  # Secret ARNs end in "-" plus six random characters, hence the trailing wildcard.
  connection_secrets_arn = "arn:${local.partition}:secretsmanager:${local.region}:${local.account_id}:secret:${var.secret_prefix}*"
  # The DSN secret: the operator's, or the empty one this module creates (value put in by the operator).
  connections_dsn_secret_arn = coalesce(var.connections_dsn_secret_arn, one(aws_secretsmanager_secret.connections_dsn[*].arn))
  # A path-scoped role ARN is arn:…:role/<path without its leading slash><name>.
  snowflake_roles_arn = "arn:${local.partition}:iam::${local.account_id}:role${var.iam_role_path}*"

  # The lease must outlive the longest run (docs/architecture.md: lease ≥ Lambda timeout).
  lease_seconds = var.timeout_seconds + 60

  loader_environment = merge(
    var.extra_environment,
    {
      FLOE_BUCKET                 = var.bucket_name
      FLOE_LIVE_PREFIX            = "${var.live_root}{org_id}/"
      FLOE_DEAD_LETTER_PREFIX     = "${var.dead_letter_root}{org_id}/"
      FLOE_SECRET_PREFIX          = var.secret_prefix
      FLOE_IAM_ROLE_PATH          = var.iam_role_path
      FLOE_CONNECTIONS_DSN_SECRET = local.connections_dsn_secret_arn
      FLOE_LOADER_DATA_ROLE_ARN   = aws_iam_role.loader_data.arn
      FLOE_AWS_ACCOUNT_ID         = local.account_id
      FLOE_LEASE_SECONDS          = tostring(local.lease_seconds)
    },
    var.core_api_url == null ? {} : { FLOE_CORE_API_URL = var.core_api_url },
    var.core_api_token_secret_arn == null ? {} : { FLOE_CORE_API_TOKEN_SECRET = var.core_api_token_secret_arn },
  )

  in_vpc = length(var.vpc_subnet_ids) > 0
}
