"""The complete SQL schema: every model module of the server, loaded onto one metadata.

Models live next to their feature (`registry.server.models`, `registry.server.oci.models`,
...); migrations and the schema test must see all of them even when nothing else imported
them yet, so this finds every `registry.server[.*].models` module and imports it.
"""

from __future__ import annotations

import importlib
import pkgutil

from sqlalchemy import MetaData

import registry.server
from registry.server.models import Base


def load_all_models() -> MetaData:
    for module in pkgutil.walk_packages(registry.server.__path__, "registry.server."):
        if module.name.rsplit(".", 1)[-1] == "models":
            importlib.import_module(module.name)
    return Base.metadata
