"""Prefect flows: wiring only (discover → evaluate → select; proxy-train)."""
