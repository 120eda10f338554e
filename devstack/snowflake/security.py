"""Users, roles and grants (docs/snowflake-facts.md §4, §7)."""

from __future__ import annotations

from typing import Any

from . import results
from .auth import fingerprint, load_public_key
from .context import Context
from .errors import SnowflakeError, already_exists, does_not_exist, insufficient_privileges
from .model import SYSTEM_ROLE_CHILDREN, Account, Grant, Role, User
from .results import Result
from .sqltext import OptionValue, Parser, like_to_regex, split_name


def effective_roles(account: Account, role: str) -> set[str]:
    """The role and every role granted to it, transitively (system hierarchy included)."""
    seen: set[str] = set()
    pending = [role]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        pending.extend(SYSTEM_ROLE_CHILDREN.get(current, set()))
        if current in account.roles:
            pending.extend(account.roles[current].granted_roles)
    return seen


def has_privilege(account: Account, role: str, privilege: str, granted_on: str, name: str) -> bool:
    roles = effective_roles(account, role)
    return any(
        g.role in roles
        and g.granted_on == granted_on
        and g.name == name
        and g.privilege in (privilege, "OWNERSHIP", "ALL")
        for g in account.grants
    )


def pipe_allows(ctx: Context, owner: str, pipe_name: str, privilege: str) -> bool:
    """The session's role owns the pipe, or holds `privilege` on it (directly or through its roles)."""
    return role_allows_pipe(ctx.account, ctx.session.role, owner, pipe_name, privilege)


def role_allows_pipe(account: Account, role: str, owner: str, pipe_name: str, privilege: str) -> bool:
    """`role` owns the pipe, or holds `privilege` on it; the Snowpipe REST API has a role but no session."""
    return owner in effective_roles(account, role) or has_privilege(account, role, privilege, "PIPE", pipe_name)


def require_create_integration(ctx: Context) -> None:
    """facts §4: CREATE INTEGRATION on the account; "Only the ACCOUNTADMIN role has this privilege by default"."""
    account, role = ctx.account, ctx.session.role
    if "ACCOUNTADMIN" in effective_roles(account, role):
        return
    for privilege in ("CREATE INTEGRATION", "CREATE STORAGE INTEGRATION"):
        if has_privilege(account, role, privilege, "ACCOUNT", account.name):
            return
    raise insufficient_privileges("account", account.name)


def user_roles(account: Account, user: User) -> set[str]:
    granted = {g.name for g in account.grants if g.granted_on == "USER_ROLE" and g.role == user.name}
    return granted | {"PUBLIC"} | ({user.default_role} if user.default_role else set())


def _grant(ctx: Context, privilege: str, granted_on: str, name: str, role: str) -> None:
    ctx.account.grants.append(Grant(privilege, granted_on, name, role, ctx.session.role, ctx.now()))


def record_ownership(ctx: Context, granted_on: str, name: str) -> None:
    _grant(ctx, "OWNERSHIP", granted_on, name, ctx.session.role)


def _apply_user_options(user: User, options: dict[str, OptionValue]) -> None:
    for key, value in options.items():
        if key == "PASSWORD":
            user.password = str(value)
        elif key in ("RSA_PUBLIC_KEY", "RSA_PUBLIC_KEY_2"):
            load_public_key(str(value))  # reject a malformed key at assignment, like Snowflake
            setattr(user, key.lower(), str(value))
        elif key == "TYPE":
            user.type = str(value).upper()
        elif key == "DEFAULT_ROLE":
            user.default_role = split_name(str(value))[-1]
        elif key == "DEFAULT_WAREHOUSE":
            user.default_warehouse = split_name(str(value))[-1]
        elif key == "DISABLED":
            user.disabled = bool(value)


def create_user(ctx: Context, p: Parser, or_replace: bool, if_not_exists: bool) -> Result:
    name = p.name()[-1]
    account = ctx.account
    if name in account.users and not or_replace:
        if if_not_exists:
            return results.status(f"{name} already exists, statement succeeded.")
        raise already_exists("User", name)
    user = User(name=name, created_on=ctx.now())
    try:
        _apply_user_options(user, p.options())
    except ValueError as error:
        raise SnowflakeError(2028, f"Invalid RSA public key: {error}", "22023") from None
    account.users[name] = user
    return results.status(f"User {name} successfully created.")


def alter_user(ctx: Context, p: Parser) -> Result:
    if_exists = p.accept("IF", "EXISTS")
    name = p.name()[-1]
    user = ctx.account.users.get(name)
    if user is None:
        if if_exists:
            return results.status("Statement executed successfully.")
        raise does_not_exist("User", name)
    if p.accept("SET"):
        try:
            _apply_user_options(user, p.options())
        except ValueError as error:
            raise SnowflakeError(2028, f"Invalid RSA public key: {error}", "22023") from None
    elif p.accept("UNSET"):
        while not p.at_end():
            token = p.next()
            if token.text != ",":
                _unset_user_property(user, token.upper)
    else:
        raise SnowflakeError(1003, "SQL compilation error:\nunsupported ALTER USER form", "42000")
    return results.status("Statement executed successfully.")


def _unset_user_property(user: User, key: str) -> None:
    defaults: dict[str, Any] = {
        "RSA_PUBLIC_KEY": None,
        "RSA_PUBLIC_KEY_2": None,
        "PASSWORD": None,
        "DEFAULT_ROLE": None,
        "DEFAULT_WAREHOUSE": None,
    }
    if key in defaults:
        setattr(user, key.lower(), defaults[key])


def drop_user(ctx: Context, p: Parser) -> Result:
    if_exists = p.accept("IF", "EXISTS")
    name = p.name()[-1]
    if ctx.account.users.pop(name, None) is None and not if_exists:
        raise does_not_exist("User", name)
    return results.status(f"{name} successfully dropped.")


def describe_user(ctx: Context, p: Parser) -> Result:
    name = p.name()[-1]
    user = ctx.account.users.get(name)
    if user is None:
        raise does_not_exist("User", name)
    fp1 = fingerprint(load_public_key(user.rsa_public_key)) if user.rsa_public_key else None
    fp2 = fingerprint(load_public_key(user.rsa_public_key_2)) if user.rsa_public_key_2 else None
    rows: list[list[Any]] = [
        ["NAME", user.name, "null", "Name"],
        ["TYPE", user.type, "PERSON", "Type of user"],
        ["DEFAULT_ROLE", user.default_role, "null", "Default role"],
        ["RSA_PUBLIC_KEY_FP", fp1, "null", "Fingerprint of user's RSA public key."],
        ["RSA_PUBLIC_KEY_2_FP", fp2, "null", "Fingerprint of user's second RSA public key."],
        ["HAS_PASSWORD", str(user.password is not None).lower(), "false", "Whether the user has a password"],
    ]
    return Result(results.columns("property", "value", "default", "description"), rows)


def show_users(ctx: Context, p: Parser) -> Result:
    pattern = like_to_regex(str(p.value())) if p.accept("LIKE") else None
    rows = [
        [u.name, u.created_on, u.name, u.type, u.default_role, u.disabled]
        for u in ctx.account.users.values()
        if pattern is None or pattern.match(u.name)
    ]
    cols = results.columns("name", "created_on:timestamp_ltz", "login_name", "type", "default_role")
    return Result([*cols, results.Column("disabled", "boolean")], rows)


def create_role(ctx: Context, p: Parser, or_replace: bool, if_not_exists: bool) -> Result:
    name = p.name()[-1]
    if name in ctx.account.roles and not or_replace:
        if if_not_exists:
            return results.status(f"{name} already exists, statement succeeded.")
        raise already_exists("Role", name)
    options = p.options()
    ctx.account.roles[name] = Role(name, comment=str(options.get("COMMENT", "")), created_on=ctx.now())
    record_ownership(ctx, "ROLE", name)
    return results.status(f"Role {name} successfully created.")


def drop_role(ctx: Context, p: Parser) -> Result:
    if_exists = p.accept("IF", "EXISTS")
    name = p.name()[-1]
    if ctx.account.roles.pop(name, None) is None and not if_exists:
        raise does_not_exist("Role", name)
    return results.status(f"{name} successfully dropped.")


def _require_role(account: Account, name: str) -> None:
    if name not in account.roles:
        raise does_not_exist("Role", name)


def grant(ctx: Context, p: Parser) -> Result:
    """``GRANT ROLE r TO USER u|ROLE r2`` or ``GRANT privs ON <kind> <name>|ACCOUNT TO ROLE r``."""
    account = ctx.account
    if p.accept("ROLE"):
        role = p.name()[-1]
        _require_role(account, role)
        p.expect("TO")
        if p.accept("USER"):
            user = p.name()[-1]
            if user not in account.users:
                raise does_not_exist("User", user)
            _grant(ctx, "USAGE", "USER_ROLE", role, user)
        else:
            p.expect("ROLE")
            grantee = p.name()[-1]
            _require_role(account, grantee)
            account.roles[grantee].granted_roles.add(role)
        return results.status("Statement executed successfully.")
    privileges, granted_on, name = _privilege_target(ctx, p)
    p.expect("TO")
    p.accept("ROLE")
    role = p.name()[-1]
    _require_role(account, role)
    for privilege in privileges:
        _grant(ctx, privilege, granted_on, name, role)
    return results.status("Statement executed successfully.")


def _privilege_target(ctx: Context, p: Parser) -> tuple[list[str], str, str]:
    words: list[str] = []
    while not p.accept("ON"):
        token = p.next()
        words.append("," if token.text == "," else token.upper)
    privileges = [" ".join(part.split()) for part in " ".join(words).split(",") if part.strip()]
    privileges = ["ALL" if priv.startswith("ALL") else priv for priv in privileges]
    if p.accept("ACCOUNT"):
        return privileges, "ACCOUNT", ctx.account.name
    if p.accept("ALL") or p.accept("FUTURE"):
        kind = p.next().upper.rstrip("S")
        p.expect("IN")
        p.next()
        return privileges, kind, ".".join(p.name())
    kind = p.next().upper
    if kind == "FILE" and p.accept("FORMAT"):
        kind = "FILE_FORMAT"
    parts = p.name()
    name = (
        ".".join(ctx.qualify(parts)) if kind in ("STAGE", "PIPE", "TABLE", "FILE_FORMAT", "VIEW") else ".".join(parts)
    )
    return privileges, kind, name


def revoke(ctx: Context, p: Parser) -> Result:
    account = ctx.account
    if p.accept("ROLE"):
        role = p.name()[-1]
        p.expect("FROM")
        if p.accept("USER"):
            user = p.name()[-1]
            account.grants = [
                g for g in account.grants if not (g.granted_on == "USER_ROLE" and g.name == role and g.role == user)
            ]
        else:
            p.expect("ROLE")
            grantee = p.name()[-1]
            if grantee in account.roles:
                account.roles[grantee].granted_roles.discard(role)
        return results.status("Statement executed successfully.")
    privileges, granted_on, name = _privilege_target(ctx, p)
    p.expect("FROM")
    p.accept("ROLE")
    role = p.name()[-1]
    account.grants = [
        g
        for g in account.grants
        if not (g.role == role and g.granted_on == granted_on and g.name == name and g.privilege in privileges)
    ]
    return results.status("Statement executed successfully.")


def show_grants(ctx: Context, p: Parser) -> Result:
    account = ctx.account
    if p.accept("TO", "USER"):
        user = p.name()[-1]
        rows: list[list[Any]] = [
            [g.created_on, g.name, "USER", user, g.granted_by]
            for g in account.grants
            if g.granted_on == "USER_ROLE" and g.role == user
        ]
        cols = results.columns("created_on:timestamp_ltz", "role", "granted_to", "grantee_name", "granted_by")
        return Result(cols, rows)
    p.expect("TO")
    p.accept("ROLE")
    role = p.name()[-1]
    _require_role(account, role)
    rows = [
        [g.created_on, g.privilege, g.granted_on, g.name, "ROLE", role, False, g.granted_by]
        for g in account.grants
        if g.role == role and g.granted_on != "USER_ROLE"
    ]
    rows += [
        [account.roles[role].created_on, "USAGE", "ROLE", child, "ROLE", role, False, "SECURITYADMIN"]
        for child in sorted(account.roles[role].granted_roles)
    ]
    cols = results.columns("created_on:timestamp_ltz", "privilege", "granted_on", "name", "granted_to", "grantee_name")
    return Result([*cols, results.Column("grant_option", "boolean"), results.Column("granted_by")], rows)


def show_roles(ctx: Context, p: Parser) -> Result:
    pattern = like_to_regex(str(p.value())) if p.accept("LIKE") else None
    rows = [
        [r.created_on, r.name, r.name == ctx.session.role, r.comment]
        for r in ctx.account.roles.values()
        if pattern is None or pattern.match(r.name)
    ]
    cols = [results.Column("created_on", "timestamp_ltz"), results.Column("name")]
    return Result([*cols, results.Column("is_current", "boolean"), results.Column("comment")], rows)


def use_role(ctx: Context, p: Parser) -> Result:
    role = p.name()[-1]
    user = ctx.account.users[ctx.session.user]
    if role not in ctx.account.roles:
        raise does_not_exist("Role", role)
    if role not in user_roles(ctx.account, user):
        raise SnowflakeError(3013, f"Role '{role}' specified in the connect string is not granted to this user.")
    ctx.session.role = role
    return results.status("Statement executed successfully.")
