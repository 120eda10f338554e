"""Reviewable Jinja SQL templates, one per statement kind, shipped as package data."""
