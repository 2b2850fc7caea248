"""The registry's per-process state (config, engine, sessions, storage), kept apart from the
app factory so that request helpers (context.py) and hooks import it without importing the
factory, which imports them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from registry.server.config import RegistryConfig
from registry.server.services.pulls import PullCounter
from registry.server.storage import BlobStorage

EXTENSION = "pyrkt"


@dataclass
class RegistryState:
    """What every request needs, built once per process by the factory."""

    config: RegistryConfig
    engine: Engine
    sessions: sessionmaker[Session]
    storage: BlobStorage
    pulls: PullCounter
