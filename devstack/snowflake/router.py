"""Which statements the stand-in answers itself, which fakesnow runs, and which use the warehouse."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from . import observe, pipes, results, security, storage, warehouses
from .context import Context
from .errors import SnowflakeError
from .results import Result
from .sqltext import Parser, quote_string

# fakesnow runs these; the ones marked True need a running warehouse (docs/snowflake-facts.md §2 + warehouses-overview:
# DML and queries on tables need one; DDL, SHOW, DESC and USE run in cloud services).
_DELEGATED_KINDS = {
    "INSERT": ("dml", True),
    "UPDATE": ("dml", True),
    "DELETE": ("dml", True),
    "MERGE": ("dml", True),
    "SHOW": ("show", False),
    "DESC": ("describe", False),
    "DESCRIBE": ("describe", False),
    "USE": ("use", False),
    "BEGIN": ("transaction", False),
    "COMMIT": ("transaction", False),
    "ROLLBACK": ("transaction", False),
}


@dataclass
class Routed:
    kind: str
    result: Result | None = None
    sql: str | None = None  # the statement fakesnow should run instead, when result is None


Handler = Callable[[Context, Parser], Result]
Creator = Callable[[Context, Parser, bool, bool], Result]

_CREATORS: dict[tuple[str, ...], tuple[str, Creator]] = {
    ("STORAGE", "INTEGRATION"): ("create_integration", storage.create_integration),
    ("INTEGRATION",): ("create_integration", storage.create_integration),
    ("STAGE",): ("create_stage", storage.create_stage),
    ("FILE", "FORMAT"): ("create_file_format", storage.create_file_format),
    ("PIPE",): ("create_pipe", pipes.create_pipe),
    ("WAREHOUSE",): ("create_warehouse", warehouses.create),
    ("USER",): ("create_user", security.create_user),
    ("ROLE",): ("create_role", security.create_role),
}

_BY_PREFIX: dict[tuple[str, ...], tuple[str, Handler]] = {
    ("ALTER", "USER"): ("alter_user", security.alter_user),
    ("ALTER", "WAREHOUSE"): ("alter_warehouse", warehouses.alter),
    ("ALTER", "STAGE"): ("alter_stage", storage.alter_stage),
    ("DROP", "USER"): ("drop_user", security.drop_user),
    ("DROP", "ROLE"): ("drop_role", security.drop_role),
    ("DROP", "WAREHOUSE"): ("drop_warehouse", warehouses.drop),
    ("DROP", "STORAGE", "INTEGRATION"): ("drop_integration", storage.drop_integration),
    ("DROP", "INTEGRATION"): ("drop_integration", storage.drop_integration),
    ("DROP", "STAGE"): ("drop_stage", storage.drop_stage),
    ("DROP", "FILE", "FORMAT"): ("drop_file_format", storage.drop_file_format),
    ("DROP", "PIPE"): ("drop_pipe", pipes.drop_pipe),
    ("DESC", "USER"): ("describe_user", security.describe_user),
    ("DESC", "STORAGE", "INTEGRATION"): ("desc_integration", storage.describe_integration),
    ("DESC", "INTEGRATION"): ("desc_integration", storage.describe_integration),
    ("DESC", "STAGE"): ("desc_stage", storage.describe_stage),
    ("DESC", "PIPE"): ("desc_pipe", pipes.describe_pipe),
    ("SHOW", "USERS"): ("show_users", security.show_users),
    ("SHOW", "ROLES"): ("show_roles", security.show_roles),
    ("SHOW", "GRANTS"): ("show_grants", security.show_grants),
    ("SHOW", "WAREHOUSES"): ("show_warehouses", warehouses.show),
    ("SHOW", "STORAGE", "INTEGRATIONS"): ("show_integrations", storage.show_integrations),
    ("SHOW", "INTEGRATIONS"): ("show_integrations", storage.show_integrations),
    ("SHOW", "STAGES"): ("show_stages", storage.show_stages),
    ("SHOW", "FILE", "FORMATS"): ("show_file_formats", storage.show_file_formats),
    ("SHOW", "PIPES"): ("show_pipes", pipes.show_pipes),
    ("GRANT",): ("grant", security.grant),
    ("REVOKE",): ("revoke", security.revoke),
    ("USE", "WAREHOUSE"): ("use_warehouse", warehouses.use),
    ("USE", "ROLE"): ("use_role", security.use_role),
    ("LIST",): ("list_stage", storage.list_stage),
    ("LS",): ("list_stage", storage.list_stage),
}
_BY_PREFIX.update({("DESCRIBE", *k[1:]): v for k, v in list(_BY_PREFIX.items()) if k[0] == "DESC"})


def route(ctx: Context, sql: str) -> Routed:
    try:
        p = Parser(sql)
    except ValueError as error:
        raise SnowflakeError(1003, f"SQL compilation error:\nsyntax error {error}") from None
    if p.at_end():
        raise SnowflakeError(900, "Empty SQL statement.", "42000")
    try:
        return _route(ctx, p, sql)
    except ValueError as error:
        raise SnowflakeError(1003, f"SQL compilation error:\nsyntax error: {error}") from None


def _route(ctx: Context, p: Parser, sql: str) -> Routed:
    if p.accept("CREATE"):
        routed = _create(ctx, p)
        if routed is not None:
            return routed
        p.pos = 0
    for prefix, (kind, handler) in _BY_PREFIX.items():
        if p.accept(*prefix):
            return Routed(kind, handler(ctx, p))
    if p.accept("ALTER", "PIPE"):
        kind, result = pipes.alter_pipe(ctx, p)
        return Routed(kind, result)
    if p.accept("ALTER", "SESSION"):
        return Routed("alter_session", _alter_session(ctx, p))
    if p.accept("TRUNCATE"):
        p.accept("TABLE")
        p.accept("IF", "EXISTS")
        pipes.truncate_table(ctx.account, ctx.qualify(p.name(), "TRUNCATE TABLE"))
        return Routed("truncate", sql=sql)  # fakesnow deletes the rows
    return _query(ctx, p, sql)


def _create(ctx: Context, p: Parser) -> Routed | None:
    or_replace = p.accept("OR", "REPLACE")
    for words, (kind, creator) in _CREATORS.items():
        if p.accept(*words):
            if_not_exists = p.accept("IF", "NOT", "EXISTS")
            return Routed(kind, creator(ctx, p, or_replace, if_not_exists))
    return None


def _alter_session(ctx: Context, p: Parser) -> Result:
    """Session parameters (QUERY_TAG …) are remembered; fakesnow does not implement ALTER SESSION."""
    if p.accept("SET"):
        ctx.session.parameters.update(p.options())
    elif p.accept("UNSET"):
        while not p.at_end():
            ctx.session.parameters.pop(p.next().upper, None)
    return results.status("Statement executed successfully.")


_SESSION_FUNCTIONS = re.compile(r"\bCURRENT_(ROLE|USER|WAREHOUSE|ACCOUNT)\s*\(\s*\)", re.IGNORECASE)


def _with_session_values(ctx: Context, sql: str) -> str:
    """fakesnow answers CURRENT_ROLE() and the like from DuckDB ('duckdb'); Snowflake, from the session."""
    values = {
        "ROLE": ctx.session.role,
        "USER": ctx.session.user,
        "WAREHOUSE": ctx.session.warehouse,
        "ACCOUNT": ctx.account.name,
    }

    def literal(match: re.Match[str]) -> str:
        value = values[match.group(1).upper()]
        return "NULL" if value is None else quote_string(value)

    return _SESSION_FUNCTIONS.sub(literal, sql)


def _query(ctx: Context, p: Parser, sql: str) -> Routed:
    first = p.tokens[0].upper
    sql = _with_session_values(ctx, sql)
    if first == "COPY":
        warehouses.use_for_statement(ctx)
        return Routed("copy_into", pipes.copy_into(ctx, sql))
    if first in ("SELECT", "WITH"):
        if observe.mentions_copy_history(sql):
            warehouses.use_for_statement(ctx)
            return Routed("copy_history", sql=observe.rewrite_copy_history(ctx, sql))
        if observe.mentions_pipe_status(sql):
            # docs/snowflake-facts.md §2: warehouse need UNCERTAIN; modelled as needing one (the harder reading).
            warehouses.use_for_statement(ctx)
            return Routed("pipe_status", sql=observe.rewrite_pipe_status(ctx, sql))
        if any(token.is_word("FROM") for token in p.tokens):
            warehouses.use_for_statement(ctx)
        return Routed("select", sql=sql)
    if first == "CREATE":
        if any(token.is_word("SELECT") for token in p.tokens):
            warehouses.use_for_statement(ctx)
        return Routed("ddl", sql=sql)
    kind, needs_warehouse = _DELEGATED_KINDS.get(first, ("ddl" if first in ("ALTER", "DROP") else "other", False))
    if needs_warehouse:
        warehouses.use_for_statement(ctx)
    return Routed(kind, sql=sql)
