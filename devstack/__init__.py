"""The local stack: stand-ins for AWS, Snowflake, PostgreSQL and the core API."""
