"""Storage integrations, file formats, stages and LIST (docs/snowflake-facts.md §4, §5)."""

from __future__ import annotations

import re
import secrets
from email.utils import formatdate
from typing import Any

from . import results
from .context import Context, Runtime
from .errors import SnowflakeError, already_exists, does_not_exist, insufficient_privileges
from .iam import StageStorage, split_s3_url
from .model import Account, FileFormat, Integration, NamedFileFormat, QualifiedName, Stage, StagedFile, display
from .results import Column, Result
from .security import effective_roles, has_privilege, record_ownership, require_create_integration
from .sqltext import OptionValue, Parser, like_to_regex, split_name, unquote_string


def _strings(value: OptionValue | None) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _bool_text(value: bool) -> str:
    return "true" if value else "false"


# ---- storage integrations -------------------------------------------------------------------


def create_integration(ctx: Context, p: Parser, or_replace: bool, if_not_exists: bool) -> Result:
    require_create_integration(ctx)
    name = p.name()[-1]
    account = ctx.account
    if name in account.integrations and not or_replace:
        if if_not_exists:
            return results.status(f"{name} already exists, statement succeeded.")
        raise already_exists("Integration", name)
    options = p.options()
    if str(options.get("TYPE", "")).upper() != "EXTERNAL_STAGE" or "STORAGE_AWS_ROLE_ARN" not in options:
        raise SnowflakeError(1008, "SQL compilation error:\ninvalid storage integration properties", "22023")
    if not _strings(options.get("STORAGE_ALLOWED_LOCATIONS")):
        raise SnowflakeError(1008, "SQL compilation error:\nSTORAGE_ALLOWED_LOCATIONS is required", "22023")
    # docs/snowflake-facts.md §4: an omitted external ID is generated; OR REPLACE makes a new one (and a new hidden id,
    # which "breaks the association" with existing stages).
    external_id = str(options.get("STORAGE_AWS_EXTERNAL_ID") or _generated_external_id(account))
    account.integrations[name] = Integration(
        name=name,
        role_arn=str(options["STORAGE_AWS_ROLE_ARN"]),
        external_id=external_id,
        enabled=bool(options.get("ENABLED", False)),
        allowed_locations=_strings(options.get("STORAGE_ALLOWED_LOCATIONS")),
        blocked_locations=_strings(options.get("STORAGE_BLOCKED_LOCATIONS")),
        comment=str(options.get("COMMENT", "")),
        owner=ctx.session.role,
        created_on=ctx.now(),
    )
    record_ownership(ctx, "INTEGRATION", name)
    return results.status(f"Integration {name} successfully created.")


def _generated_external_id(account: Account) -> str:
    return f"{account.name}_SFCRole=2_{secrets.token_urlsafe(21)}"


def describe_integration(ctx: Context, p: Parser) -> Result:
    integration = _integration(ctx.account, p.name()[-1])
    rows = [
        ["ENABLED", "Boolean", _bool_text(integration.enabled), "false"],
        ["STORAGE_PROVIDER", "String", "S3", ""],
        ["STORAGE_ALLOWED_LOCATIONS", "List", ",".join(integration.allowed_locations), "[]"],
        ["STORAGE_BLOCKED_LOCATIONS", "List", ",".join(integration.blocked_locations), "[]"],
        ["STORAGE_AWS_IAM_USER_ARN", "String", ctx.account.iam_user_arn, ""],
        ["STORAGE_AWS_ROLE_ARN", "String", integration.role_arn, ""],
        ["STORAGE_AWS_EXTERNAL_ID", "String", integration.external_id, ""],
        ["USE_PRIVATELINK_ENDPOINT", "Boolean", "false", "false"],
        ["COMMENT", "String", integration.comment, ""],
    ]
    return Result(results.columns("property", "property_type", "property_value", "property_default"), rows)


def show_integrations(ctx: Context, p: Parser) -> Result:
    pattern = like_to_regex(str(p.value())) if p.accept("LIKE") else None
    rows = [
        [i.name, "EXTERNAL_STAGE", "STORAGE", i.enabled, i.comment, i.created_on]
        for i in ctx.account.integrations.values()
        if pattern is None or pattern.match(i.name)
    ]
    cols = [*results.columns("name", "type", "category"), Column("enabled", "boolean")]
    return Result([*cols, Column("comment"), Column("created_on", "timestamp_ltz")], rows)


def drop_integration(ctx: Context, p: Parser) -> Result:
    if_exists = p.accept("IF", "EXISTS")
    name = p.name()[-1]
    if ctx.account.integrations.pop(name, None) is None and not if_exists:
        raise does_not_exist("Integration", name)
    return results.status(f"{name} successfully dropped.")


def _integration(account: Account, name: str) -> Integration:
    if name not in account.integrations:
        raise does_not_exist("Integration", name)
    return account.integrations[name]


def location_allowed(integration: Integration, url: str) -> bool:
    """facts §4: the URL must lie in STORAGE_ALLOWED_LOCATIONS (case-sensitive, '*' = all), not blocked."""
    allowed = any(loc == "*" or url.startswith(loc) for loc in integration.allowed_locations)
    blocked = any(url.startswith(loc) for loc in integration.blocked_locations)
    return allowed and not blocked


def _location_not_allowed(url: str, integration: str) -> SnowflakeError:
    return SnowflakeError(
        3074,
        f"SQL execution error:\nLocation '{url}' is not allowed by integration '{integration}'. "
        "Please use DESC INTEGRATION to check out allowed and blocked locations.",
        "42501",
    )


# ---- file formats -----------------------------------------------------------------------------


def _format_options(options: dict[str, OptionValue]) -> dict[str, Any]:
    out = {k: (v.upper() if isinstance(v, str) and k in ("TYPE", "COMPRESSION") else v) for k, v in options.items()}
    out.setdefault("TYPE", "CSV")
    return out


def create_file_format(ctx: Context, p: Parser, or_replace: bool, if_not_exists: bool) -> Result:
    name = ctx.qualify(p.name(), "CREATE FILE FORMAT")
    account = ctx.account
    if name in account.file_formats and not or_replace:
        if if_not_exists:
            return results.status(f"{name[2]} already exists, statement succeeded.")
        raise already_exists("File format", name[2])
    options = _format_options(p.options())
    comment = str(options.pop("COMMENT", ""))
    account.file_formats[name] = NamedFileFormat(name, options, comment, ctx.session.role, ctx.now())
    return results.status(f"File format {name[2]} successfully created.")


def show_file_formats(ctx: Context, p: Parser) -> Result:
    pattern, scope = _show_filters(ctx, p)
    rows = [
        [f.created_on, f.name[2], f.name[0], f.name[1], f.options["TYPE"], f.owner, f.comment, _options_text(f.options)]
        for f in ctx.account.file_formats.values()
        if _in_scope(f.name, pattern, scope)
    ]
    cols = results.columns("created_on:timestamp_ltz", "name", "database_name", "schema_name", "type", "owner")
    return Result([*cols, Column("comment"), Column("format_options")], rows)


def drop_file_format(ctx: Context, p: Parser) -> Result:
    if_exists = p.accept("IF", "EXISTS")
    name = ctx.qualify(p.name(), "DROP FILE FORMAT")
    if ctx.account.file_formats.pop(name, None) is None and not if_exists:
        raise does_not_exist("File format", display(name))
    return results.status(f"{name[2]} successfully dropped.")


def _options_text(options: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in options.items())


def parse_file_format(ctx: Context, value: OptionValue) -> FileFormat:
    """``FILE_FORMAT = (FORMAT_NAME = 'x' | TYPE = JSON …)``, a FORMAT_NAME resolved against the session."""
    if not isinstance(value, dict):
        return FileFormat({}, ctx.qualify(split_name(str(value))))
    if "FORMAT_NAME" in value:
        return FileFormat({}, ctx.qualify(split_name(str(value["FORMAT_NAME"]))))
    return FileFormat(_format_options(value))


def resolve_file_format(account: Account, spec: FileFormat | None) -> dict[str, Any]:
    if spec is None:
        return {"TYPE": "CSV"}
    if spec.format_name is None:
        return spec.options
    named = account.file_formats.get(spec.format_name)
    if named is None:
        raise does_not_exist("File format", display(spec.format_name))
    return named.options


# ---- stages -----------------------------------------------------------------------------------


def create_stage(ctx: Context, p: Parser, or_replace: bool, if_not_exists: bool) -> Result:
    name = ctx.qualify(p.name(), "CREATE STAGE")
    account = ctx.account
    if name in account.stages and not or_replace:
        if if_not_exists:
            return results.status(f"{name[2]} already exists, statement succeeded.")
        raise already_exists("Stage", name[2])
    options = p.options()
    url = str(options.get("URL", ""))
    if not url.startswith("s3://"):
        raise SnowflakeError(1008, "SQL compilation error:\nthe stand-in supports only external S3 stages", "22023")
    integration = _stage_integration(ctx, options, url)
    file_format = parse_file_format(ctx, options["FILE_FORMAT"]) if "FILE_FORMAT" in options else None
    account.stages[name] = Stage(
        name=name,
        url=url,
        integration=integration.name if integration else None,
        integration_id=integration.id if integration else None,
        file_format=file_format,
        comment=str(options.get("COMMENT", "")),
        owner=ctx.session.role,
        created_on=ctx.now(),
    )
    record_ownership(ctx, "STAGE", display(name))
    return results.status(f"Stage area {name[2]} successfully created.")


def _stage_integration(ctx: Context, options: dict[str, OptionValue], url: str) -> Integration | None:
    """facts §4: creating a stage needs USAGE on the integration, and its URL must be allowed."""
    if "STORAGE_INTEGRATION" not in options:
        return None
    # A quoted identifier keeps its case, an unquoted one is upper-cased (docs/snowflake-facts.md §9).
    integration = _integration(ctx.account, split_name(str(options["STORAGE_INTEGRATION"]))[-1])
    role = ctx.session.role
    owns = integration.owner in effective_roles(ctx.account, role)
    if not owns and not has_privilege(ctx.account, role, "USAGE", "INTEGRATION", integration.name):
        raise insufficient_privileges("integration", integration.name)
    if not location_allowed(integration, url):
        raise _location_not_allowed(url, integration.name)
    return integration


def alter_stage(ctx: Context, p: Parser) -> Result:
    """``ALTER STAGE s SET STORAGE_INTEGRATION = i`` re-links a stage after OR REPLACE (docs/snowflake-facts.md §4)."""
    if_exists = p.accept("IF", "EXISTS")
    name = ctx.qualify(p.name(), "ALTER STAGE")
    stage = ctx.account.stages.get(name)
    if stage is None:
        if if_exists:
            return results.status("Statement executed successfully.")
        raise does_not_exist("Stage", display(name))
    p.expect("SET")
    options = p.options()
    url = str(options.get("URL", stage.url))
    if "STORAGE_INTEGRATION" in options:
        integration = _stage_integration(ctx, options, url)
        stage.integration = integration.name if integration else None
        stage.integration_id = integration.id if integration else None
    stage.url = url
    if "FILE_FORMAT" in options:
        stage.file_format = parse_file_format(ctx, options["FILE_FORMAT"])
    if "COMMENT" in options:
        stage.comment = str(options["COMMENT"])
    return results.status("Statement executed successfully.")


def get_stage(ctx: Context, name: QualifiedName) -> Stage:
    stage = ctx.account.stages.get(name)
    if stage is None:
        raise does_not_exist("Stage", display(name))
    return stage


def _show_filters(ctx: Context, p: Parser) -> tuple[Any, tuple[str, ...]]:
    """``[LIKE '<pattern>'] [IN ACCOUNT | DATABASE d | SCHEMA [d.]s]``; default scope: current database."""
    pattern = like_to_regex(str(p.value())) if p.accept("LIKE") else None
    scope: tuple[str, ...] = (ctx.session.database,) if ctx.session.database else ()
    if p.accept("IN"):
        if p.accept("ACCOUNT"):
            scope = ()
        elif p.accept("DATABASE"):
            scope = (p.name()[-1],)
        else:
            p.accept("SCHEMA")
            parts = p.name()
            scope = tuple(parts) if len(parts) == 2 else (ctx.session.database or "", parts[-1])
    return pattern, scope


def _in_scope(name: QualifiedName, pattern: Any, scope: tuple[str, ...]) -> bool:
    return name[: len(scope)] == scope and (pattern is None or pattern.match(name[2]) is not None)


def _stage_identity(stage: Stage) -> list[Any]:
    return [stage.created_on, stage.name[2], stage.name[0], stage.name[1], stage.url]


def _stage_kind(stage: Stage) -> list[Any]:
    return ["EXTERNAL", "AWS", None, stage.integration, None, "ROLE", False]


def show_stages(ctx: Context, p: Parser) -> Result:
    pattern, scope = _show_filters(ctx, p)
    rows = [
        [*_stage_identity(s), False, False, s.owner, s.comment, None, *_stage_kind(s)]
        for s in ctx.account.stages.values()
        if _in_scope(s.name, pattern, scope)
    ]
    cols = [
        *results.columns("created_on:timestamp_ltz", "name", "database_name", "schema_name", "url"),
        Column("has_credentials", "boolean"),
        Column("has_encryption_key", "boolean"),
        *results.columns("owner", "comment", "region", "type", "cloud", "notification_channel"),
        *results.columns("storage_integration", "endpoint", "owner_role_type"),
        Column("directory_enabled", "boolean"),
    ]
    return Result(cols, rows)


def describe_stage(ctx: Context, p: Parser) -> Result:
    stage = get_stage(ctx, ctx.qualify(p.name(), "DESCRIBE STAGE"))
    file_format = stage.file_format
    rows: list[list[Any]] = [
        ["STAGE_LOCATION", "URL", "String", f'["{stage.url}"]', ""],
        ["STAGE_INTEGRATION", "STORAGE_INTEGRATION", "String", stage.integration or "", ""],
        ["STAGE_CREDENTIALS", "AWS_ROLE", "String", "", ""],
    ]
    if file_format and file_format.format_name:
        rows.append(["STAGE_FILE_FORMAT", "FORMAT_NAME", "String", display(file_format.format_name), ""])
    else:
        options = file_format.options if file_format else {"TYPE": "CSV"}
        rows += [["STAGE_FILE_FORMAT", k, "String", str(v), ""] for k, v in options.items()]
    cols = results.columns("parent_property", "property", "property_type", "property_value", "property_default")
    return Result(cols, rows)


def drop_stage(ctx: Context, p: Parser) -> Result:
    if_exists = p.accept("IF", "EXISTS")
    name = ctx.qualify(p.name(), "DROP STAGE")
    if ctx.account.stages.pop(name, None) is None and not if_exists:
        raise does_not_exist("Stage", display(name))
    return results.status(f"{name[2]} successfully dropped.")


def stage_storage(runtime: Runtime, account: Account, stage: Stage) -> StageStorage:
    """The S3 access of a stage, refused if its integration is gone, replaced, disabled or disallows it."""
    integration = account.integrations.get(stage.integration or "")
    if integration is None or integration.id != stage.integration_id:
        # docs/snowflake-facts.md §4: CREATE OR REPLACE INTEGRATION "breaks the association" with stages.
        raise SnowflakeError(
            3077,
            f"SQL execution error:\nIntegration '{stage.integration}' associated with the stage "
            f"'{display(stage.name)}' cannot be found.",
            "42000",
        )
    if not integration.enabled:
        raise SnowflakeError(3073, f"SQL execution error:\nIntegration '{integration.name}' is disabled.", "42000")
    if not location_allowed(integration, stage.url):
        raise _location_not_allowed(stage.url, integration.name)
    return StageStorage(runtime.aws_endpoint_url, account.iam_user_arn, integration)


def parse_stage_reference(ctx: Context, text: str) -> tuple[QualifiedName, str]:
    """``@db.sch.stage/some/path/`` or ``'@"My DB"."S"."st"/path/'`` -> (stage name, 'some/path/')."""
    quoted = text.startswith("'")
    body = (unquote_string(text) if quoted else text).removeprefix("@")
    name_part, _, path = body.partition("/")
    return ctx.qualify(split_name(name_part), "use stage"), path


def stage_base(stage: Stage) -> str:
    return stage.url if stage.url.endswith("/") else stage.url + "/"


def list_files(runtime: Runtime, account: Account, stage: Stage, path: str) -> list[StagedFile]:
    base = stage_base(stage)
    files = stage_storage(runtime, account, stage).list(base + path, base)
    bucket, _ = split_s3_url(base)
    for file in files:
        file.last_modified = runtime.staged_at(bucket, file.key, file.etag, file.last_modified)
    return files


def list_stage(ctx: Context, p: Parser) -> Result:
    """``LIST @stage[/path]``: recursive under the path, unlike fakesnow (docs/snowflake-facts.md §11)."""
    name, path = parse_stage_reference(ctx, p.next().text)
    stage = get_stage(ctx, name)
    options = p.options()
    pattern = options.get("PATTERN")
    files = list_files(ctx.runtime, ctx.account, stage, path)
    base = stage_base(stage)
    if pattern:
        regex = re.compile(str(pattern))
        files = [f for f in files if regex.fullmatch(base + f.relative_path)]
    rows = [[base + f.relative_path, f.size, f.etag, formatdate(f.last_modified, usegmt=True)] for f in files]
    return Result(results.columns("name", "size:fixed", "md5", "last_modified"), rows)
