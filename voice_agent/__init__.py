"""Voice call-center assistant: the product layer (config, sessions, CLI, store)."""

__version__ = "0.1.0"
