"""The shared kernel: configuration, identifiers, connection rows and their stores, secrets, the Snowflake
session, SQL rendering, logs and errors. It imports nothing else of Floe's (docs/architecture.md)."""
