# The connection database's DSN (with its password) lives in Secrets Manager, never in Terraform's
# configuration, state or the functions' environments: both functions get its ARN
# (FLOE_CONNECTIONS_DSN_SECRET) and read it at start. Bring your own secret (connections_dsn_secret_arn)
# or let the module create this empty one and put the value in yourself:
#   aws secretsmanager put-secret-value --secret-id <output connections_dsn_secret_arn> \
#     --secret-string 'postgresql://…'
# Terraform manages no aws_secretsmanager_secret_version, so it never sees or overwrites the value.

resource "aws_secretsmanager_secret" "connections_dsn" {
  #checkov:skip=CKV_AWS_149:Encrypted with the AWS-managed key: a CMK would need key-policy grants for both functions' roles and adds no isolation for one shared DSN.
  #checkov:skip=CKV2_AWS_57:The DSN's password is the connection database's, rotated by whoever owns that database (docs/operations.md, Security); a rotation Lambda here could not change it.
  count       = var.connections_dsn_secret_arn == null ? 1 : 0
  name        = "${var.name_prefix}/connections-dsn"
  description = "Floe: postgresql:// DSN of the connection database (value set by the operator, not by Terraform)."
  tags        = var.tags

  lifecycle {
    precondition {
      condition     = !startswith("${var.name_prefix}/connections-dsn", var.secret_prefix)
      error_message = "The DSN secret's name must lie outside secret_prefix, where the loader's data role reads connections' secrets."
    }
  }
}
