"""Logged bandit feedback: the versioned Parquet schema of logged decisions (with propensities), its writer, its
checking loader and the collection of simulated logs. Names load their modules lazily."""

from __future__ import annotations

from bundlerl.utils.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".schema": "LOG_SCHEMA_VERSION LogError Dims COLUMNS TRUTH_COLUMNS",
    ".writer": "LogWriter to_table write_log_json",
    ".loader": "LogDataset LogPart",
    ".collect": "collect_logs",
})
