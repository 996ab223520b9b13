"""Deconvolution methods, one file each, one interface (:class:`podm_cli.methods.base.Method`).

Configs in ``configs/method/<name>.yaml`` name the class with ``_target_``; every app builds them with
:func:`podm_cli.apps.methods.build_method`, and ``podm eval`` finds every YAML there by itself. Adding a
method = one file here + one YAML there.
"""

from podm_cli.methods.base import Method, Requirements

__all__ = ["Method", "Requirements"]
