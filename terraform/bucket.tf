# The bucket every organisation's prefixes live in (manage_bucket = true). Settings the design relies on:
# - versioning + noncurrent-version expiry: a loaded file the loader deletes stays recoverable for
#   noncurrent_version_expiration_days, then really goes;
# - dead letters expire after dead_letter_expiration_days (or never);
# - SSE-S3, public access blocked, ACLs disabled, TLS-only policy.

resource "aws_s3_bucket" "events" {
  #checkov:skip=CKV_AWS_18:Access logs would need a second bucket this module does not own; CloudTrail data events are the recommended audit trail (docs/operations.md).
  #checkov:skip=CKV_AWS_144:A transit buffer: events are durable once loaded into each organisation's Snowflake table; cross-region replication would double cost for files that live minutes.
  #checkov:skip=CKV_AWS_145:SSE-S3 on purpose: one shared KMS key adds no tenant isolation (every per-organisation role would need kms:Decrypt on it) and would add KMS grants to roles made by `floe provision` (docs/operations.md, Security).
  #checkov:skip=CKV2_AWS_62:No event notifications: the loader is driven by ticks and lists prefixes; Snowpipe runs with AUTO_INGEST = FALSE.
  count  = var.manage_bucket ? 1 : 0
  bucket = var.bucket_name
  tags   = var.tags
}

resource "aws_s3_bucket_ownership_controls" "events" {
  count  = var.manage_bucket ? 1 : 0
  bucket = aws_s3_bucket.events[0].id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "events" {
  count                   = var.manage_bucket ? 1 : 0
  bucket                  = aws_s3_bucket.events[0].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "events" {
  count  = var.manage_bucket ? 1 : 0
  bucket = aws_s3_bucket.events[0].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_versioning" "events" {
  count  = var.manage_bucket ? 1 : 0
  bucket = aws_s3_bucket.events[0].id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "events" {
  count  = var.manage_bucket ? 1 : 0
  bucket = aws_s3_bucket.events[0].id

  rule {
    id     = "expire-deleted-versions"
    status = "Enabled"
    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }
    # Once its last old version has expired, a delete marker is garbage.
    expiration {
      expired_object_delete_marker = true
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  dynamic "rule" {
    for_each = var.dead_letter_expiration_days == null ? [] : [var.dead_letter_expiration_days]
    content {
      id     = "expire-dead-letters"
      status = "Enabled"
      filter {
        prefix = var.dead_letter_root
      }
      expiration {
        days = rule.value
      }
      abort_incomplete_multipart_upload {
        days_after_initiation = 7
      }
    }
  }

  # Lifecycle rules on noncurrent versions need versioning in place first.
  depends_on = [aws_s3_bucket_versioning.events]
}

data "aws_iam_policy_document" "events_bucket" {
  count = var.manage_bucket ? 1 : 0

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [local.bucket_arn, "${local.bucket_arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid       = "DenyOutdatedTls"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [local.bucket_arn, "${local.bucket_arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "NumericLessThan"
      variable = "s3:TlsVersion"
      values   = ["1.2"]
    }
  }
}

resource "aws_s3_bucket_policy" "events" {
  count  = var.manage_bucket ? 1 : 0
  bucket = aws_s3_bucket.events[0].id
  policy = data.aws_iam_policy_document.events_bucket[0].json
  # S3 refuses a bucket policy while the public access block is being created.
  depends_on = [aws_s3_bucket_public_access_block.events]
}
