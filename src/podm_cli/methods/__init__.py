"""Deconvolution methods, one file each, one interface (:class:`podm_cli.methods.base.Method`).

Configs in ``configs/method/<name>.yaml`` name the class with ``_target_``; ``podm eval`` instantiates
them. Adding a method = one file here + one YAML there.
"""

from podm_cli.methods.base import Method, Requirements

__all__ = ["Method", "Requirements"]
