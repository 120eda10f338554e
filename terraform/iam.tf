# Least privilege, one statement per entry of lambda/loader/aws_actions.py (same sid, same actions);
# tests/test_terraform.py holds the two in step: the loader's execution role is LOADER_EXECUTION_ACTIONS,
# its data-access role LOADER_DATA_ACTIONS. No statement here grants IAM: the per-organisation roles
# Snowflake assumes are made by `floe provision` under the operator's own credentials, inside the
# permissions boundary below.

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    sid     = "LambdaService"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

# ---------------------------------------------------------------- loader: execution role

# What the function itself holds: its logs, the DSN and core API token secrets (read outside a tick) and
# sts:AssumeRole on the data-access role. Nothing touches the bucket or a connection's secret with it.
resource "aws_iam_role" "loader" {
  name               = "${local.loader_name}-exec"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "loader" {
  statement {
    sid       = "AssumeDataRole"
    actions   = ["sts:AssumeRole"]
    resources = [aws_iam_role.loader_data.arn]
  }

  statement {
    sid       = "ReadConnectionsDsn"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [local.connections_dsn_secret_arn]
  }

  dynamic "statement" {
    for_each = var.core_api_token_secret_arn == null ? [] : [var.core_api_token_secret_arn]
    content {
      sid       = "ReadCoreApiToken"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [statement.value]
    }
  }

  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.loader.arn}:*"]
  }
}

resource "aws_iam_role_policy" "loader" {
  name   = "loader"
  role   = aws_iam_role.loader.id
  policy = data.aws_iam_policy_document.loader.json
}

# Only inside a VPC: the Lambda service (not Floe's code) creates the network interfaces with these.
resource "aws_iam_role_policy_attachment" "loader_vpc" {
  count      = local.in_vpc ? 1 : 0
  role       = aws_iam_role.loader.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

# ---------------------------------------------------------------- loader: data-access role

# Every tick assumes this role (RoleSessionName floe-<org_id>) with an inline session policy that narrows
# it to one organisation's live and dead-letter prefixes and one connection's secret; the session's
# rights are the intersection of that policy and this one. Only the loader's execution role may assume it.
data "aws_iam_policy_document" "loader_data_trust" {
  statement {
    sid     = "LoaderExecutionRole"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "AWS"
      identifiers = [aws_iam_role.loader.arn]
    }
  }
}

resource "aws_iam_role" "loader_data" {
  name               = "${local.loader_name}-data"
  description        = "Floe: what one loader tick may touch; assumed per tick with a per-organisation session policy."
  assume_role_policy = data.aws_iam_policy_document.loader_data_trust.json
  # A session lasts at most one tick (timeout_seconds <= 900); the role allows the minimum, one hour.
  max_session_duration = 3600
  tags                 = var.tags
}

data "aws_iam_policy_document" "loader_data" {
  statement {
    sid       = "ListLivePrefixes"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.live_root}*"]
    }
  }

  statement {
    sid       = "MoveLiveObjects"
    actions   = ["s3:GetObject", "s3:DeleteObject"]
    resources = ["${local.bucket_arn}/${var.live_root}*"]
  }

  # Restaging copies a live object onto itself (CopyObject's destination is in the live prefix).
  statement {
    sid       = "RestageLiveObjects"
    actions   = ["s3:PutObject"]
    resources = ["${local.bucket_arn}/${var.live_root}*"]
  }

  statement {
    sid       = "WriteDeadLetters"
    actions   = ["s3:PutObject"]
    resources = ["${local.bucket_arn}/${var.dead_letter_root}*"]
  }

  statement {
    sid       = "ReadConnectionSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [local.connection_secrets_arn]
  }
}

resource "aws_iam_role_policy" "loader_data" {
  name   = "loader-data"
  role   = aws_iam_role.loader_data.id
  policy = data.aws_iam_policy_document.loader_data.json
}

# ---------------------------------------------------------------- dispatcher (optional)

resource "aws_iam_role" "dispatcher" {
  count              = var.enable_schedule ? 1 : 0
  name               = "${local.dispatcher_name}-exec"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "dispatcher" {
  count = var.enable_schedule ? 1 : 0

  statement {
    sid       = "InvokeLoader"
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.loader.arn]
  }

  statement {
    sid       = "ReadConnectionsDsn"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [local.connections_dsn_secret_arn]
  }

  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.dispatcher[0].arn}:*"]
  }
}

resource "aws_iam_role_policy" "dispatcher" {
  count  = var.enable_schedule ? 1 : 0
  name   = "dispatcher"
  role   = aws_iam_role.dispatcher[0].id
  policy = data.aws_iam_policy_document.dispatcher[0].json
}

resource "aws_iam_role_policy_attachment" "dispatcher_vpc" {
  count      = var.enable_schedule && local.in_vpc ? 1 : 0
  role       = aws_iam_role.dispatcher[0].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

# ---------------------------------------------------------------- operator (optional, never on a Lambda)

data "aws_iam_policy_document" "operator" {
  count = var.create_operator_policy ? 1 : 0

  statement {
    sid = "ManageSnowflakeRoles"
    actions = [
      "iam:CreateRole",
      "iam:GetRole",
      "iam:DeleteRole",
      "iam:PutRolePolicy",
      "iam:DeleteRolePolicy",
      "iam:ListRolePolicies",
      "iam:UpdateAssumeRolePolicy",
    ]
    resources = [local.snowflake_roles_arn]
  }

  # A role under iam_role_path can only be created, or get an inline policy, inside the boundary: even
  # this policy's holder cannot mint a Snowflake role that reads more than the live prefixes. The key is
  # absent when CreateRole names no boundary, and a negated operator then matches, so that is denied too.
  statement {
    sid       = "RequireSnowflakeRoleBoundary"
    effect    = "Deny"
    actions   = ["iam:CreateRole", "iam:PutRolePolicy"]
    resources = [local.snowflake_roles_arn]
    condition {
      test     = "StringNotEquals"
      variable = "iam:PermissionsBoundary"
      values   = [aws_iam_policy.snowflake_role_boundary.arn]
    }
  }

  statement {
    sid = "ManageConnectionSecrets"
    actions = [
      "secretsmanager:DescribeSecret",
      "secretsmanager:GetSecretValue",
      "secretsmanager:CreateSecret",
      "secretsmanager:PutSecretValue",
    ]
    resources = [local.connection_secrets_arn]
  }

  statement {
    sid       = "ListDeadLetterPrefixes"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.dead_letter_root}*"]
    }
  }

  statement {
    sid       = "ManageDeadLetters"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${local.bucket_arn}/${var.dead_letter_root}*"]
  }

  statement {
    sid       = "ReplayIntoLive"
    actions   = ["s3:PutObject"]
    resources = ["${local.bucket_arn}/${var.live_root}*"]
  }
}

resource "aws_iam_policy" "operator" {
  count       = var.create_operator_policy ? 1 : 0
  name        = "${var.name_prefix}-operator"
  path        = "/"
  description = "What `floe provision`, `floe dead-letters` and `floe replay` need; attach to the operators' role."
  policy      = data.aws_iam_policy_document.operator[0].json
  tags        = var.tags
}

# ---------------------------------------------------------------- permissions boundary of the Snowflake roles

# The most a per-organisation role made by `floe provision` can ever do, whatever its inline policy says:
# read objects under the live prefixes, list the bucket and find its region (the per-organisation read
# policy of provisioner/iam.py, without its prefix narrowing). The operator policy above refuses
# CreateRole / PutRolePolicy under iam_role_path without it; an operator role you manage yourself must
# carry the same Deny (terraform/README.md).
data "aws_iam_policy_document" "snowflake_role_boundary" {
  statement {
    sid       = "ReadLiveObjects"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = ["${local.bucket_arn}/${var.live_root}*"]
  }

  statement {
    sid       = "ListBucket"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [local.bucket_arn]
  }
}

resource "aws_iam_policy" "snowflake_role_boundary" {
  name        = "${var.name_prefix}-snowflake-role-boundary"
  path        = "/"
  description = "Floe: permissions boundary of every role under iam_role_path (read-only on the live prefixes)."
  policy      = data.aws_iam_policy_document.snowflake_role_boundary.json
  tags        = var.tags
}
