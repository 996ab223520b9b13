"""Reference data: where it lives (:mod:`.locator`), how to get it (:mod:`.fetch`), the benchmark datasets
(:mod:`.datasets`).

``podm_cli.data`` itself imports nothing heavy: :func:`make_dataset` and :class:`Sample` load torch on
first use, so ``podm data fetch`` works without importing it.
"""

from __future__ import annotations

from podm_cli.data.locator import data_root, find_sun_layout, require

__all__ = ["PROTOCOLS", "Sample", "data_root", "find_sun_layout", "make_dataset", "require"]

_LAZY = {"make_dataset", "Sample", "PROTOCOLS", "BenchmarkDataset"}


def __getattr__(name: str):
    if name in _LAZY:
        from podm_cli.data import datasets

        return getattr(datasets, name)
    raise AttributeError(f"module 'podm_cli.data' has no attribute {name!r}")
