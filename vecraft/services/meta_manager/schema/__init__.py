"""Collection DDL of the meta manager: validated, journal-ordered, materialized in the store."""

from vecraft.services.meta_manager.schema.ddl import DdlCoordinator, DdlJournal, ddl_of, ddl_payload

__all__ = ["DdlCoordinator", "DdlJournal", "ddl_of", "ddl_payload"]
