"""Command-line helpers for CI and for measuring: each module runs as ``python tools/<name>.py``."""
