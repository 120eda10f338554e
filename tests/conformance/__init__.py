"""Conformance suite for the Snowflake stand-in: the same tests run against a real account.

See docs/conformance.md. Every test states the fact it checks (a section of
docs/snowflake-facts.md or a Snowflake documentation page).
"""
