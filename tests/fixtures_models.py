"""Session fixtures with real tiny models (filled in by the proxy-training work)."""
