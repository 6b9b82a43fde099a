"""Errors the dialog brain raises for users: each says what was wrong and what to do."""

from __future__ import annotations


class DialogError(Exception):
    """Base class of every dialog error shown to users as one line."""


class ModelMissingError(DialogError):
    """A model (LLM, embeddings, sentiment head) is not on disk."""


class KnowledgeBaseError(DialogError):
    """The knowledge-base folder is missing, empty or holds a malformed document."""


class BackendError(DialogError):
    """The generation backend failed (unknown backend, server unreachable, bad response)."""


class OptionsError(DialogError):
    """A dialog option has an invalid value."""
