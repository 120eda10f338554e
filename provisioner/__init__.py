"""Floe's control plane: connection rows, secrets, SQL rendering, provisioning and the CLI."""
