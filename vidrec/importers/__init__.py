"""Importers: public datasets (MovieLens, KuaiRand) as raw logs in the raw event schema.

Each `load_*` builds every raw table in memory and fails with a `DatasetImportError` naming the file
and what is wrong before anything is written; `write_imported` then replaces the raw tables. What
each importer had to derive is in its manifest's notes and in docs/importers.md.
"""

from vidrec.importers.common import DatasetImportError, ImportedLogs, write_imported
from vidrec.importers.kuairand import load_kuairand
from vidrec.importers.movielens import load_movielens

__all__ = ["DatasetImportError", "ImportedLogs", "load_kuairand", "load_movielens", "write_imported"]
