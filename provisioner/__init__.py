"""Control: provision and tear down a connection's Snowflake objects and IAM role, its key pair, and the
dead letters' listing and replay. Imports only the kernel."""
