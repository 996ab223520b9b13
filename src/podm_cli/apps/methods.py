"""The one way to build a method from config: :func:`build_method` (used by eval, deblur, bench and tests).

A method is one YAML in ``configs/method/<name>.yaml`` whose ``_target_`` names its class; this module
discovers them (:func:`method_names`), loads one (:func:`method_config`, resolving a same-group defaults
list such as ``podm_authors.yaml``'s ``defaults: [podm, _self_]``) and instantiates it with the data root.

>>> "hl" in method_names() and "tv" in method_names()
True
>>> build_method("hl", {"lam": 100.0}).lam
100.0
>>> build_method("nope")
Traceback (most recent call last):
...
podm_cli.errors.InputError: unknown method 'nope' (available: csf, csf_5x5, csf_official, epll, fdn, hl, ircnn, podm, podm_authors, rpodm, rpodm_edgetaper, rpodm_levin, rtf, tv)
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from podm_cli.apps.common import method_boundary
from podm_cli.errors import InputError

__all__ = ["build_method", "method_config", "method_names", "method_overrides"]


def _method_dir() -> Path:
    from podm_cli.apps import config_dir

    return config_dir() / "method"


def method_names() -> list[str]:
    """Every method podm knows: the stems of ``configs/method/*.yaml``, sorted."""
    return sorted(p.stem for p in _method_dir().glob("*.yaml") if not p.stem.startswith("_"))


def _unknown(name: str) -> InputError:
    return InputError(f"unknown method '{name}' (available: {', '.join(method_names()) or 'none'})")


def method_config(name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """``configs/method/<name>.yaml`` with its same-group defaults list applied, then dotlist ``overrides``."""
    path = _method_dir() / f"{name}.yaml"
    if not path.is_file():
        raise _unknown(name)
    own = OmegaConf.load(path)
    defaults = own.pop("defaults", None) or ["_self_"]
    cfg = OmegaConf.create()
    for entry in defaults:
        entry = str(entry)
        cfg = OmegaConf.merge(cfg, own if entry == "_self_" else method_config(entry))
    return OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))


def method_overrides(user_overrides: Sequence[str] = ()) -> list[str]:
    """Hydra overrides that add every discovered method under ``method_cfg`` (``podm eval``'s defaults).

    A method the user adds explicitly (``+method@method_cfg.NAME=...``) is left to the user's override.
    """
    taken = {o.split("=", 1)[0].rsplit(".", 1)[-1] for o in user_overrides if "@method_cfg." in o.split("=", 1)[0]}
    return [f"+method@method_cfg.{n}={n}" for n in method_names() if n not in taken]


def build_method(name: str, cfg: Mapping | DictConfig | None = None,
                 data_root: str | os.PathLike | None = None, boundary: Mapping | None = None, **kwargs):
    """Instantiate method ``name`` from its config node ``cfg`` (``None``: ``configs/method/<name>.yaml``).

    A ``cfg`` without ``_target_`` holds overrides of the method's YAML. ``data_root`` is handed to
    methods whose constructor takes one (the root their weights are read from); ``boundary`` holds the
    :meth:`~podm_cli.methods.base.Method.with_boundary` settings (``apps.common.boundary_settings`` of the
    ``operator`` group), the one place where boundary handling is attached; ``kwargs`` are further
    constructor arguments (``denoiser=...``). An unknown ``name`` is one line that lists
    the available methods; a method's own refusal of a parameter stays its one-line ``InputError``.
    """
    from hydra.utils import instantiate

    if cfg is None or "_target_" not in cfg:
        node = method_config(name)
        if cfg is not None:
            node = OmegaConf.merge(node, OmegaConf.create(_plain(cfg)))
    else:
        node = OmegaConf.create(_plain(cfg))
    node.pop("defaults", None)
    target = _target_class(node)
    if data_root is not None and "data_root" not in node and target is not None \
            and "data_root" in inspect.signature(target.__init__).parameters:
        kwargs.setdefault("data_root", os.fspath(data_root))
    method = instantiate(node, **kwargs)
    return method if boundary is None else method.with_boundary(**method_boundary(boundary, name))


def _plain(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)


def _target_class(node: DictConfig):
    from hydra.utils import get_class

    try:
        return get_class(str(node["_target_"]))
    except Exception:  # noqa: BLE001 - instantiate reports a bad _target_ in one line
        return None
