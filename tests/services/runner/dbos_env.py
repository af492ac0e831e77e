"""A real DBOS on a throwaway database for store/reconciler tests, without the whole service.

`DbosEnv(url)` migrates the run tables, launches DBOS (SQLite file or PostgreSQL) with a fixed
executor id, and `relaunch()` is a restart of the process as far as DBOS is concerned: destroy
(in-flight workflows stay PENDING), then launch again, which recovers this executor's PENDING
workflows. `store` is a fresh `AsyncRunStore` per launch (a new process has a new store).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from dbos import DBOS

from app.services.runner.store import SqlRunStore, make_engine
from app.services.runner.store_async import AsyncRunStore

EXECUTOR = "test-reconciler"


@dataclass
class DbosEnv:
    url: str
    store: AsyncRunStore = field(init=False)
    launched: bool = False

    def launch(self) -> None:
        self.store = AsyncRunStore(SqlRunStore(make_engine(self.url)))
        DBOS(config={
            "name": "auto-code-test", "system_database_url": self.url, "application_version": "t1",
            "executor_id": EXECUTOR, "log_level": "WARNING", "run_migrations": True,
            "notification_listener_polling_interval_sec": 0.05,
        })
        self.store.sync.create_schema(then=DBOS.launch)
        self.launched = True

    def destroy(self) -> None:
        if self.launched:
            DBOS.destroy(destroy_registry=False)
            self.store.sync.dispose()
            self.launched = False

    def relaunch(self) -> None:
        self.destroy()
        self.launch()

    def sql(self, statement: str, **params: object) -> None:
        """A write to DBOS's own tables (schema `dbos` on PostgreSQL)."""
        engine = make_engine(self.url)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(statement.replace("{dbos}", self.dbos_schema)), params)
        finally:
            engine.dispose()

    @property
    def dbos_schema(self) -> str:
        return "dbos." if self.url.startswith("postgres") else ""
