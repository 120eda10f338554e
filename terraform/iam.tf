# Least privilege, one statement per entry of lambda/loader/aws_actions.py (same sid, same actions);
# tests/test_terraform.py holds the two in step. No statement here grants IAM: the per-organisation roles
# Snowflake assumes are made by `floe provision` under the operator's own credentials.

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

# ---------------------------------------------------------------- loader

resource "aws_iam_role" "loader" {
  name               = "${local.loader_name}-exec"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "loader" {
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
