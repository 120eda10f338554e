"""A local Snowflake that speaks the connector's protocol and models Snowpipe."""
