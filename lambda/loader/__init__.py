"""The per-connection loader: one tick of one connection, run as an AWS Lambda."""
