"""SQL rendering: one Jinja template per statement kind (`sql_templates/*.sql`), values only through filters.

A value reaches SQL only through `ident` (validated, double-quoted, `"` doubled; a tuple is a qualified
name, each part quoted), `literal` (single-quoted, `'` doubled, `\\` escaped) or `stage_ref` (a stage
as `'@"db"."schema"."stage"'`: `ident`, then `literal`). All three return `SqlText`;
the environment's `finalize` refuses anything else, so a template that prints a raw value fails to render
instead of producing injectable SQL. Undefined names are errors too (`StrictUndefined`).

Object versions: each provisioned object's COMMENT is `floe template v<hash>`, the hash of its own
statement rendered with an empty comment (so the hash does not depend on itself). The connection's
template version is a hash over those object hashes: it changes exactly when some object's DDL does.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any, Final

import jinja2

from kernel.connections import DEFAULT_FILE_FORMAT
from kernel.errors import FloeError
from kernel.identifiers import AWS_ACCOUNT_PATTERN, BUCKET_PATTERN, ORG_ID_PATTERN, identifier_problem
from kernel.layout import layout_regex

if TYPE_CHECKING:
    from kernel.config import Settings
    from kernel.connections import Connection

STAGE_NAME: Final = "FLOE_EVENTS_STAGE"
PIPE_NAME: Final = "FLOE_EVENTS_PIPE"
IAM_ROLE_NAME_PREFIX: Final = "floe-snowflake-"
COMMENT_PREFIX: Final = "floe template v"
VERSION_LENGTH: Final = 12

# In the order provision runs them: the integration first (the stage needs it), the pipe last (it
# needs the table, the stage and the file format).
PROVISION_KINDS: Final[tuple[str, ...]] = ("integration", "file_format", "table", "stage", "pipe")
MAX_FILE_NAMES: Final = 1000  # per loaded_files statement: keeps the statement small
TEARDOWN_OBJECTS: Final[tuple[str, ...]] = ("pipe", "stage", "table")
SCRATCH_OBJECTS: Final[tuple[str, ...]] = ("database", "user", "role", "integration")
SHOWABLE_OBJECTS: Final[tuple[str, ...]] = ("integration", "file_format", "table", "stage", "pipe")

QualifiedName = tuple[str, ...]

_PREFIX = re.compile(r"(?:[A-Za-z0-9=_.-]+/)+")
_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::[0-9]{12}:role/(?:[A-Za-z0-9_+=,.@-]+/)*[A-Za-z0-9_+=,.@-]{1,64}")
_PUBLIC_KEY = re.compile(r"[A-Za-z0-9+/]{200,4096}={0,2}")
_COMMENT_VERSION = re.compile(re.escape(COMMENT_PREFIX) + "([0-9a-f]{" + str(VERSION_LENGTH) + "})")


class RenderError(FloeError):
    """A value cannot be rendered safely, a parameter is wrong, or a template printed a raw value."""


class SqlText:
    """SQL produced by a filter (or by rendering); the only type a template may print."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"SqlText({self.text!r})"


# -- filters ------------------------------------------------------------------------------------------


def _defined(value: object) -> object:
    """StrictUndefined raises its own UndefinedError (naming the variable) when turned into text."""
    if isinstance(value, jinja2.Undefined):
        str(value)
    return value


def check_identifier(value: object, what: str = "identifier") -> str:
    """Return `value` if it is safe as one quoted Snowflake identifier part, else raise RenderError."""
    if (problem := identifier_problem(value)) is not None:
        raise RenderError(f"{what} {problem}")
    assert isinstance(value, str)
    return value


def ident(value: object) -> SqlText:
    """`"name"` with `"` doubled; a tuple renders as a qualified name, each part quoted (docs/snowflake-facts.md §9)."""
    parts = value if isinstance(value, tuple) else (_defined(value),)
    if not parts:
        raise RenderError("empty qualified name")
    quoted = ('"' + check_identifier(part).replace('"', '""') + '"' for part in parts)
    return SqlText(".".join(quoted))


def literal(value: object) -> SqlText:
    """A single-quoted string: `\\` escaped first, then `'` doubled (backslash is an escape,
    docs/snowflake-facts.md §9).

    Also takes SqlText, so a quoted identifier can be passed as a string (SYSTEM$PIPE_STATUS('"D"."S"."P"')).
    """
    text = value.text if isinstance(value, SqlText) else _defined(value)
    if not isinstance(text, str):
        raise RenderError(f"a literal must be a string, not {type(text).__name__}")
    if not text.isprintable():
        raise RenderError("a literal contains a control or invisible character")
    return SqlText("'" + text.replace("\\", "\\\\").replace("'", "''") + "'")


def stage_ref(value: object) -> SqlText:
    """A stage reference as Snowflake documents it for names with spaces or special characters: the
    whole `@"db"."schema"."stage"` single-quoted (docs/snowflake-facts.md §9). Quoted always, so one
    rule holds for every name; `literal` does the escaping."""
    return literal(SqlText("@" + ident(value).text))


def _only_filtered(value: object) -> str:
    if isinstance(value, SqlText):
        return value.text
    raise RenderError(f"template printed a {type(value).__name__} without the ident or literal filter")


@cache
def _environment() -> jinja2.Environment:
    return build_environment(jinja2.PackageLoader("sql_templates", "."))


def build_environment(loader: jinja2.BaseLoader) -> jinja2.Environment:
    """The rendering environment over `loader` (tests use it to render edited templates)."""
    environment = jinja2.Environment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        finalize=_only_filtered,
        autoescape=False,  # noqa: S701 - SQL, not HTML; escaping is the filters' job
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    environment.filters["ident"] = ident
    environment.filters["literal"] = literal
    environment.filters["stage_ref"] = stage_ref
    return environment


# -- naming -------------------------------------------------------------------------------------------


def integration_name(org_id: str) -> str:
    return "FLOE_" + _check_org_id(org_id).upper().replace("-", "_") + "_S3"


def iam_role_name(org_id: str) -> str:
    return IAM_ROLE_NAME_PREFIX + _check_org_id(org_id)


def iam_role_arn(aws_account_id: str, iam_role_path: str, org_id: str) -> str:
    if not AWS_ACCOUNT_PATTERN.fullmatch(aws_account_id):
        raise RenderError("an AWS account id is 12 digits")
    return f"arn:aws:iam::{aws_account_id}:role{iam_role_path}{iam_role_name(org_id)}"


def _check_org_id(org_id: object) -> str:
    if not isinstance(org_id, str) or not ORG_ID_PATTERN.fullmatch(org_id):
        raise RenderError(f"org_id must match {ORG_ID_PATTERN.pattern}")
    return org_id


# -- the target ---------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Target:
    """Everything a template needs for one connection; validated on construction."""

    org_id: str
    account: str
    user: str
    role: str
    warehouse: str
    database: str
    schema: str
    table: str
    file_format: str
    bucket: str
    live_prefix: str  # the org's prefix in the bucket, e.g. "live/acme/"
    iam_role_arn: str
    file_pattern: str  # the pipe's PATTERN: the writer's layout (kernel.layout.layout_regex)

    def __post_init__(self) -> None:
        _check_org_id(self.org_id)
        for name in ("account", "user", "role", "warehouse", "database", "schema", "table", "file_format"):
            check_identifier(getattr(self, name), name)
        if not isinstance(self.bucket, str) or not BUCKET_PATTERN.fullmatch(self.bucket):
            raise RenderError("bucket is not an S3 bucket name")
        if not isinstance(self.live_prefix, str) or not _PREFIX.fullmatch(self.live_prefix):
            raise RenderError("live_prefix must be folders ending in '/' (e.g. live/acme/)")
        if self.org_id not in self.live_prefix:
            raise RenderError("live_prefix must contain the org_id")
        if not isinstance(self.iam_role_arn, str) or not _ROLE_ARN.fullmatch(self.iam_role_arn):
            raise RenderError("iam_role_arn is not an IAM role ARN")
        if not isinstance(self.file_pattern, str) or not self.file_pattern:
            raise RenderError("file_pattern must be a regular expression")

    @classmethod
    def from_connection(cls, connection: Connection, settings: Settings, aws_account_id: str) -> Target:
        return cls(
            org_id=connection.org_id,
            account=connection.account,
            user=connection.user,
            role=connection.role,
            warehouse=connection.warehouse,
            database=connection.database,
            schema=connection.schema,
            table=connection.table,
            file_format=connection.file_format,
            bucket=settings.bucket,
            live_prefix=settings.live_prefix_for(connection.org_id),
            iam_role_arn=iam_role_arn(aws_account_id, settings.iam_role_path, connection.org_id),
            file_pattern=layout_regex(settings.layout),
        )

    @classmethod
    def from_description(cls, description: Mapping[str, object]) -> Target:
        """A connection described in YAML/JSON (for `floe render`): the connection's fields, plus
        `bucket`, `live_prefix` and either `iam_role_arn` or `aws_account_id` (+ `iam_role_path`);
        bucket, prefix, path and file format default as in `kernel.config.Settings`."""
        from kernel.config import Settings

        known = {f.name for f in fields(cls)} | {"aws_account_id", "iam_role_path"}
        if not isinstance(description, Mapping):
            raise RenderError("a connection description is a mapping of field names to values")
        if unknown := sorted(str(key) for key in description if key not in known):
            raise RenderError(f"unknown fields in connection description: {', '.join(unknown)}")
        values = {str(key): value for key, value in description.items()}
        defaults = Settings()
        org_id = _check_org_id(values.get("org_id"))
        values.setdefault("file_format", DEFAULT_FILE_FORMAT)
        values.setdefault("bucket", defaults.bucket)
        values.setdefault("live_prefix", defaults.live_prefix_for(org_id))
        values.setdefault("file_pattern", layout_regex(defaults.layout))
        path = values.pop("iam_role_path", defaults.iam_role_path)
        account_id = values.pop("aws_account_id", None)
        if "iam_role_arn" not in values:
            if not isinstance(account_id, str) or not isinstance(path, str):
                raise RenderError("give iam_role_arn, or aws_account_id (a 12-digit string)")
            values["iam_role_arn"] = iam_role_arn(account_id, path, org_id)
        missing = sorted(f.name for f in fields(cls) if f.name not in values)
        if missing:
            raise RenderError(f"connection description lacks: {', '.join(missing)}")
        return cls(**values)  # type: ignore[arg-type]  # types are checked in __post_init__

    @property
    def integration(self) -> str:
        return integration_name(self.org_id)

    @property
    def stage(self) -> str:
        return STAGE_NAME

    @property
    def pipe(self) -> str:
        return PIPE_NAME

    @property
    def qualified_schema(self) -> QualifiedName:
        return (self.database, self.schema)

    @property
    def qualified_table(self) -> QualifiedName:
        return (self.database, self.schema, self.table)

    @property
    def qualified_stage(self) -> QualifiedName:
        return (self.database, self.schema, self.stage)

    @property
    def qualified_pipe(self) -> QualifiedName:
        return (self.database, self.schema, self.pipe)

    @property
    def qualified_file_format(self) -> QualifiedName:
        return (self.database, self.schema, self.file_format)

    @property
    def stage_url(self) -> str:
        """`s3://bucket/live/org/`: the trailing slash keeps the stage to that folder (docs/snowflake-facts.md §5)."""
        return f"s3://{self.bucket}/{self.live_prefix}"


# -- parameters per kind ------------------------------------------------------------------------------


def _iso_timestamp(name: str, value: object) -> str:
    """ISO 8601 in UTC, floored to the second: an earlier bound only widens REFRESH/COPY_HISTORY."""
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise RenderError(f"{name} must be a timezone-aware datetime")
    return value.astimezone(UTC).isoformat(timespec="seconds")


def _refresh(params: dict[str, object]) -> dict[str, object]:
    prefix = params.get("prefix")
    if prefix is not None and (not isinstance(prefix, str) or not prefix or prefix.startswith("/")):
        raise RenderError("prefix must be a non-empty path relative to the stage URL")
    modified_after = params.get("modified_after")
    return {
        "prefix": prefix,
        "modified_after": None if modified_after is None else _iso_timestamp("modified_after", modified_after),
    }


def _copy_history(params: dict[str, object]) -> dict[str, object]:
    return {"start_time": _iso_timestamp("start_time", params.get("start_time"))}


def _one_of(name: str, choices: tuple[str, ...]) -> Callable[[dict[str, object]], dict[str, object]]:
    def prepare(params: dict[str, object]) -> dict[str, object]:
        if params.get(name) not in choices:
            raise RenderError(f"{name} must be one of {', '.join(choices)}")
        return dict(params)

    return prepare


def _loaded_files(params: dict[str, object]) -> dict[str, object]:
    names = params.get("names")
    if not isinstance(names, list | tuple) or not names or len(names) > MAX_FILE_NAMES:
        raise RenderError(f"names must be a list of 1 to {MAX_FILE_NAMES} file names")
    if not all(isinstance(name, str) and name for name in names):
        raise RenderError("names must be non-empty strings")
    since = params.get("since")
    return {"names": list(names), "since": None if since is None else _iso_timestamp("since", since)}


def _show(params: dict[str, object]) -> dict[str, object]:
    prepared = _one_of("object", SHOWABLE_OBJECTS)(params)
    prepared["name"] = check_identifier(params.get("name"), "name")
    return prepared


def _user_key(params: dict[str, object]) -> dict[str, object]:
    public_key = params.get("public_key")
    if params.get("slot") not in (1, 2):
        raise RenderError("slot must be 1 (RSA_PUBLIC_KEY) or 2 (RSA_PUBLIC_KEY_2)")
    if public_key is not None and (not isinstance(public_key, str) or not _PUBLIC_KEY.fullmatch(public_key)):
        raise RenderError("public_key must be the base64 body of a public key, without PEM lines")
    return dict(params)


def _no_params(params: dict[str, object]) -> dict[str, object]:
    return params


@dataclass(frozen=True)
class _Kind:
    allowed: frozenset[str]
    required: frozenset[str]
    prepare: Callable[[dict[str, object]], dict[str, object]]


def _kind(allowed: tuple[str, ...], prepare: Callable[..., dict[str, object]], required: tuple[str, ...] = ()) -> _Kind:
    return _Kind(frozenset(allowed), frozenset(required), prepare)


_PROVISION = _kind(("comment",), _no_params, ("comment",))
_KINDS: Final[Mapping[str, _Kind]] = {
    **{kind: _PROVISION for kind in PROVISION_KINDS},
    "refresh": _kind(("prefix", "modified_after"), _refresh),
    "copy_history": _kind(("start_time",), _copy_history, ("start_time",)),
    "pipe_status": _kind((), _no_params),
    "loaded_files": _kind(("names", "since"), _loaded_files, ("names",)),
    "teardown": _kind(("object",), _one_of("object", TEARDOWN_OBJECTS), ("object",)),
    "describe_integration": _kind((), _no_params),
    "grant_integration": _kind((), _no_params),
    "show": _kind(("object", "name"), _show, ("object", "name")),
    "list_stage": _kind((), _no_params),
    "query_history": _kind((), _no_params),
    "drop_scratch": _kind(("object",), _one_of("object", SCRATCH_OBJECTS), ("object",)),
    "user_key": _kind(("slot", "public_key"), _user_key, ("slot",)),
}
KINDS: Final[tuple[str, ...]] = tuple(_KINDS)


# -- rendering ----------------------------------------------------------------------------------------


def render(kind: str, target: Target, **params: object) -> str:
    """Exactly one statement, without a trailing semicolon.

    Loader kinds: `refresh` (prefix: str | None, modified_after: datetime | None), `copy_history`
    (start_time: datetime), `pipe_status`. Provision kinds (`PROVISION_KINDS`) take no parameters and
    carry their version in COMMENT. Also: `teardown` (object: pipe | stage | table), `describe_integration`,
    `grant_integration`, `show` (object: one of SHOWABLE_OBJECTS, name), `list_stage`, `user_key` (slot: 1 | 2,
    public_key: str | None: set that slot's key, or unset it); for `floe doctor --live`: `query_history`,
    `drop_scratch` (object: one of SCRATCH_OBJECTS).
    """
    if kind in PROVISION_KINDS:
        if params:
            raise RenderError(f"{kind} takes no parameters")
        return _render_kind(kind, target, comment=COMMENT_PREFIX + object_version(kind, target))
    return _render_kind(kind, target, **params)


def _render_kind(kind: str, target: Target, **params: object) -> str:
    spec = _KINDS.get(kind)
    if spec is None:
        raise RenderError(f"unknown statement kind {kind!r}; known: {', '.join(KINDS)}")
    if unexpected := sorted(set(params) - spec.allowed):
        raise RenderError(f"{kind} does not take {', '.join(unexpected)}")
    if missing := sorted(spec.required - set(params)):
        raise RenderError(f"{kind} needs {', '.join(missing)}")
    context = {name: None for name in spec.allowed} | spec.prepare(dict(params))
    return _render_template(f"{kind}.sql", target=target, **context)


def _render_template(template_name: str, **context: Any) -> str:
    try:
        return _environment().get_template(template_name).render(**context).strip()
    except jinja2.UndefinedError as error:
        raise RenderError(f"{template_name}: {error.message}") from None


def object_version(kind: str, target: Target) -> str:
    """Hash of one provisioned object's statement, rendered with an empty COMMENT."""
    if kind not in PROVISION_KINDS:
        raise RenderError(f"{kind!r} is not a provisioned object")
    return _digest(_render_kind(kind, target, comment=""))


def object_versions(target: Target) -> dict[str, str]:
    return {kind: object_version(kind, target) for kind in PROVISION_KINDS}


def template_version(target: Target) -> str:
    """Short hash over every provisioned object's version: changes exactly when some object's DDL does."""
    return _digest("\n".join(f"{kind}:{version}" for kind, version in object_versions(target).items()))


def version_in_comment(comment: object) -> str | None:
    """The object version written in a COMMENT by `render`, or None if it holds none."""
    if not isinstance(comment, str):
        return None
    match = _COMMENT_VERSION.fullmatch(comment.strip())
    return match.group(1) if match else None


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:VERSION_LENGTH]


def provision_statements(target: Target) -> list[tuple[str, str]]:
    """(kind, sql) for every provisioned object, in PROVISION_KINDS order: exactly what provision runs."""
    return [(kind, render(kind, target)) for kind in PROVISION_KINDS]


def teardown_statements(target: Target, drop_table: bool = False) -> list[tuple[str, str]]:
    """(object, sql): the pipe first (it reads the stage), then the stage, then the table if asked."""
    objects = TEARDOWN_OBJECTS if drop_table else TEARDOWN_OBJECTS[:2]
    return [(name, render("teardown", target, object=name)) for name in objects]


def setup_script(target: Target, public_key_b64: str) -> str:
    """The customer admin's script (several statements, each ending in `;`, with SQL comments)."""
    if not isinstance(public_key_b64, str) or not _PUBLIC_KEY.fullmatch(public_key_b64):
        raise RenderError("public_key_b64 must be the base64 body of a public key, without PEM lines")
    integration = SqlText(render("integration", target))
    return _render_template("setup.sql", target=target, public_key=public_key_b64, integration_ddl=integration) + "\n"
