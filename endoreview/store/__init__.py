"""The label store: the only part of EndoReview that touches the database.

Public API (everything else in this package is internal)::

    from endoreview.store import Store, records, errors
    store = Store.open()                       # SQLite in the user data directory (or --db URL)
    store = Store.open("postgresql+psycopg://user:pw@server/endoreview", reviewer="dr_x")

See :class:`endoreview.store.store.Store` for the methods (grouped in ``catalog`` — reviewers, label sets,
projects, videos, model versions; ``annotations`` — labels, predictions, timeline; ``history`` — change polling,
undo, removing videos, jobs), :mod:`endoreview.store.records` for what they return and
:mod:`endoreview.store.errors` for what they raise. Schema: :mod:`endoreview.store.schema`; migrations:
``endoreview/store/migrations``.
"""

from typing import TYPE_CHECKING, Any

from endoreview.store import errors, records
from endoreview.store.errors import StaleWriteError, StoreError

if TYPE_CHECKING:
    from endoreview.store.store import Store

__all__ = ["Store", "StoreError", "StaleWriteError", "errors", "records"]


def __getattr__(name: str) -> Any:
    """``Store`` is imported when first asked for: the records and errors are light, the store (SQLAlchemy, Alembic)
    is not, and the desktop app shows its window before it opens the database (on a worker thread)."""
    if name == "Store":
        from endoreview.store.store import Store

        return Store
    raise AttributeError(f"module 'endoreview.store' has no attribute {name!r}")
