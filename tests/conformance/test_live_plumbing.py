"""Live-only: the live target's own plumbing (run only when FLOE_LIVE_SNOWFLAKE_ACCOUNT is set; deselected
against the stand-in, where a reset does the cleaning)."""

from __future__ import annotations

import pytest

from .harness import LiveTarget, query, records


@pytest.mark.live
def test_live_run_drops_everything_it_created() -> None:
    """Every object a live run makes (schema, integration, user, warehouse, IAM role under
    /floe-conformance/, S3 objects under floe-conformance/<run>/) is gone after `close()`."""
    made = LiveTarget.from_environment()
    loading = made.setup_loading("plumb")
    made.put_file(loading.prefix, "events", records("plumb", 1))
    user = made.create_user("PLUMB", properties="TYPE = SERVICE")
    warehouse = made.create_warehouse("PLUMB_WH", properties="WAREHOUSE_SIZE = XSMALL INITIALLY_SUSPENDED = TRUE")
    made.close()

    checker = LiveTarget.from_environment()
    try:
        admin = checker.admin
        assert query(admin, f"SHOW SCHEMAS LIKE '{made.schema}' IN DATABASE {made.database}") == []
        assert query(admin, f"SHOW INTEGRATIONS LIKE '{loading.access.integration}'") == []
        assert query(admin, f"SHOW USERS LIKE '{user}'") == []
        assert query(admin, f"SHOW WAREHOUSES LIKE '{warehouse}'") == []
        roles = checker.iam.list_roles(PathPrefix="/floe-conformance/")["Roles"]
        assert all(made.run_id.lower() not in r["RoleName"] for r in roles), roles
        assert checker.list_keys(f"floe-conformance/{made.run_id.lower()}/") == []
    finally:
        checker.close()
