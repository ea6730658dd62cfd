from tests.store.dbfixtures import db_url, pg_url, store  # noqa: F401  (fixtures)
