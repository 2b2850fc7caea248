"""Per-request access to the registry's state: config, storage and a database session."""

from __future__ import annotations

from flask import current_app, g
from sqlalchemy.orm import Session

from registry.server.config import RegistryConfig
from registry.server.services.pulls import PullCounter
from registry.server.state import EXTENSION, RegistryState
from registry.server.storage import BlobStorage


def state() -> RegistryState:
    return current_app.extensions[EXTENSION]


def config() -> RegistryConfig:
    return state().config


def storage() -> BlobStorage:
    return state().storage


def pulls() -> PullCounter:
    return state().pulls


def db() -> Session:
    """The request's session (opened on first use, closed when the request ends)."""
    session = g.get("db_session")
    if session is None:
        session = g.db_session = state().sessions()
    return session


def db_if_open() -> Session | None:
    """The request's session if one was opened (error handlers must not open one)."""
    return g.get("db_session")
