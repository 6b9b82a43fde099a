"""Error types of the telephony package: the CLI prints any subclass as one clean line."""

from __future__ import annotations


class TelephonyError(Exception):
    """Base of every error the telephony package raises on bad input or a failed peer."""
