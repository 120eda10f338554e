"""Virtual warehouses: which statements need one, auto-resume and auto-suspend.

docs/snowflake-facts.md §2: the information-schema views need a "Warehouse must be running and currently
in use"; SHOW commands do not. With auto-resume Snowflake "automatically resumes the warehouse when
any statement that requires a warehouse is submitted" (warehouses-overview).
"""

from __future__ import annotations

from typing import Any

from . import results
from .context import Context
from .errors import SnowflakeError, already_exists, does_not_exist
from .model import Account, Warehouse
from .results import Result
from .sqltext import OptionValue, Parser, like_to_regex


def no_active_warehouse() -> SnowflakeError:
    return SnowflakeError(
        606,
        "No active warehouse selected in the current session.  "
        "Select an active warehouse with the 'use warehouse' command.",
        "57P03",
    )


def warehouse_suspended(name: str) -> SnowflakeError:
    return SnowflakeError(
        608,
        f"Warehouse '{name}' is suspended.  Use 'alter warehouse {name} resume;' command if you need to use it again.",
        "57P03",
    )


def settle_auto_suspend(warehouse: Warehouse, now: float) -> None:
    """Suspend a warehouse idle for AUTO_SUSPEND seconds on the stand-in's clock."""
    if (
        warehouse.state == "STARTED"
        and warehouse.auto_suspend
        and now - warehouse.last_active >= warehouse.auto_suspend
    ):
        warehouse.state = "SUSPENDED"


def resume(account: Account, warehouse: Warehouse, now: float) -> None:
    warehouse.state = "STARTED"
    warehouse.resumed_on = now
    warehouse.last_active = now
    account.warehouse_resumes += 1


def use_for_statement(ctx: Context) -> None:
    """Make the session's warehouse run the statement, resuming it if allowed."""
    account, name = ctx.account, ctx.session.warehouse
    warehouse = account.warehouses.get(name) if name else None
    if warehouse is None:
        raise no_active_warehouse()
    now = ctx.now()
    settle_auto_suspend(warehouse, now)
    if warehouse.state == "SUSPENDED":
        if not warehouse.auto_resume:
            raise warehouse_suspended(warehouse.name)
        resume(account, warehouse, now)
    warehouse.last_active = now
    ctx.used_warehouse = True


def _apply_options(warehouse: Warehouse, options: dict[str, OptionValue]) -> None:
    for key, value in options.items():
        if key == "WAREHOUSE_SIZE":
            warehouse.size = str(value)
        elif key == "AUTO_SUSPEND":
            warehouse.auto_suspend = None if value in ("NULL", 0) else int(str(value))
        elif key == "AUTO_RESUME":
            warehouse.auto_resume = bool(value)
        elif key == "COMMENT":
            warehouse.comment = str(value)


def create(ctx: Context, p: Parser, or_replace: bool, if_not_exists: bool) -> Result:
    name = p.name()[-1]
    account = ctx.account
    if name in account.warehouses and not or_replace:
        if if_not_exists:
            return results.status(f"{name} already exists, statement succeeded.")
        raise already_exists("Warehouse", name)
    p.accept("WITH")
    options = p.options()
    now = ctx.now()
    warehouse = Warehouse(name=name, created_on=now, resumed_on=now, last_active=now, owner=ctx.session.role)
    _apply_options(warehouse, options)
    if options.get("INITIALLY_SUSPENDED") is True:
        warehouse.state = "SUSPENDED"
    account.warehouses[name] = warehouse
    # Snowflake makes a new warehouse the session's current one.
    ctx.session.warehouse = name
    return results.status(f"Warehouse {name} successfully created.")


def _get(account: Account, name: str) -> Warehouse:
    if name not in account.warehouses:
        raise does_not_exist("Warehouse", name)
    return account.warehouses[name]


def alter(ctx: Context, p: Parser) -> Result:
    if_exists = p.accept("IF", "EXISTS")
    name = p.name()[-1]
    account = ctx.account
    if name not in account.warehouses and if_exists:
        return results.status("Statement executed successfully.")
    warehouse = _get(account, name)
    now = ctx.now()
    settle_auto_suspend(warehouse, now)
    if p.accept("SUSPEND"):
        if warehouse.state == "SUSPENDED":
            raise SnowflakeError(90064, f"Invalid state. Warehouse '{name}' cannot be suspended.", "22000")
        warehouse.state = "SUSPENDED"
    elif p.accept("RESUME"):
        if_suspended = p.accept("IF", "SUSPENDED")
        if warehouse.state == "STARTED" and not if_suspended:
            raise SnowflakeError(90063, f"Invalid state. Warehouse '{name}' cannot be resumed.", "22000")
        if warehouse.state == "SUSPENDED":
            resume(account, warehouse, now)
    elif p.accept("SET"):
        _apply_options(warehouse, p.options())
    return results.status("Statement executed successfully.")


def drop(ctx: Context, p: Parser) -> Result:
    if_exists = p.accept("IF", "EXISTS")
    name = p.name()[-1]
    if ctx.account.warehouses.pop(name, None) is None and not if_exists:
        raise does_not_exist("Warehouse", name)
    return results.status(f"{name} successfully dropped.")


def use(ctx: Context, p: Parser) -> Result:
    name = p.name()[-1]
    _get(ctx.account, name)
    ctx.session.warehouse = name
    return results.status("Statement executed successfully.")


def show(ctx: Context, p: Parser) -> Result:
    pattern = like_to_regex(str(p.value())) if p.accept("LIKE") else None
    now = ctx.now()
    rows: list[list[Any]] = []
    for warehouse in ctx.account.warehouses.values():
        if pattern and not pattern.match(warehouse.name):
            continue
        settle_auto_suspend(warehouse, now)
        rows.append(
            [
                warehouse.name,
                warehouse.state,
                "STANDARD",
                warehouse.size,
                0,
                0,
                warehouse.name == ctx.session.warehouse,
                warehouse.auto_suspend,
                warehouse.auto_resume,
                warehouse.created_on,
                warehouse.resumed_on,
                warehouse.owner,
                warehouse.comment,
            ]
        )
    cols = [
        *results.columns("name", "state", "type", "size", "running:fixed", "queued:fixed"),
        results.Column("is_current", "boolean"),
        results.Column("auto_suspend", "fixed"),
        results.Column("auto_resume", "boolean"),
        *results.columns("created_on:timestamp_ltz", "resumed_on:timestamp_ltz", "owner", "comment"),
    ]
    return Result(cols, rows)
