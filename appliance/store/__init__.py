"""The box's SQLite store: ``Store.open(path)``, then the functions of ``queries``."""

from appliance.store.db import Store, Tx

__all__ = ["Store", "Tx"]
