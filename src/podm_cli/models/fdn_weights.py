"""Importer for the released FDN weights (Kruse, Rother & Schmidt 2017; Keras 2.0 HDF5, BSD-2).

Layout of ``weights/fdn/<set>/`` (``<set>`` = ``sigma_1.0-3.0`` or ``sigma_0.1-12.75``):

* ``config.json`` -- ``{"sigma_range": [lo, hi], "n_stages": 10}`` (``sigma`` on the 0..255 scale);
* ``stage_01.hdf5`` ... ``stage_10.hdf5`` -- one greedily trained stage each (``model.save_weights`` of a
  single stage): top-level groups ``conv1`` ... ``conv6``, ``dense1`` ... ``dense3``, ``lambda``, ``x_out``;
* ``stages_01-10_greedy.hdf5`` / ``stages_01-10_finetuned.hdf5`` -- the 10-stage cascade, one group per stage
  (``model_1`` ... or ``model_2`` ...: take them in the order of the file's ``layer_names`` attribute, never
  sorted as strings), whose layers carry a Keras uniquifying suffix (``conv1_9``, ``dense2_9``, ``x_out_9``).

The group that holds the weights (the stage group ``model_<n>`` of a stacked file, each layer group of a
single-stage file) has a ``weight_names`` attribute listing its datasets by path relative to it
(``conv1_9/kernel:0`` ..., ``conv1/kernel:0`` ...).  Mapping to :class:`~podm_cli.models.fdn.FDNStage`:

==============================  =========================  =====================================
HDF5 dataset                    shape                      PyTorch parameter
==============================  =========================  =====================================
``conv{j}/kernel:0``            ``(3, 3, in, out)``        ``convs[j-1].weight`` = ``permute(3, 2, 0, 1)``
``conv{j}/bias:0``              ``(out,)``                 ``convs[j-1].bias``
``dense{j}/kernel:0``           ``(in, out)``              ``dense[j-1].weight`` = transpose
``lambda/kernel:0``             ``(16, 1)``                ``dense[3].weight`` = transpose
``x_out/filter_weights:0``      ``(24, 24)``               ``filter_weights`` (as is)
==============================  =========================  =====================================

Keras ``Conv2D`` is a cross-correlation, as PyTorch's, so the 3x3 kernels are not flipped; ``Dense``
computes ``v @ kernel + bias``.  Nothing is unpickled: HDF5 holds plain arrays.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import torch

from podm_cli.errors import DataNotFoundError, InputError
from podm_cli.models.fdn import FDN, FDNStage
from podm_cli.nets.weights import open_hdf5

__all__ = ["FDN_RELPATH", "FDN_SETS", "fdn_files", "load_fdn", "load_fdn_config", "read_fdn_stages"]

#: Where the released weights live under the data root.
FDN_RELPATH = "weights/fdn"
#: The two released weight sets (training noise range on 0..255).
FDN_SETS = ("sigma_1.0-3.0", "sigma_0.1-12.75")

_CONV = 6
_DENSE = ("dense1", "dense2", "dense3", "lambda")


def fdn_files(weights: str = "sigma_1.0-3.0", finetuned: bool = True, stages: int = 10) -> list[str]:
    """The files (relative to the data root) that :func:`load_fdn` reads for these options.

    >>> fdn_files("sigma_1.0-3.0", finetuned=False, stages=2)
    ['weights/fdn/sigma_1.0-3.0/config.json', 'weights/fdn/sigma_1.0-3.0/stage_01.hdf5', 'weights/fdn/sigma_1.0-3.0/stage_02.hdf5']
    """
    base = f"{FDN_RELPATH}/{weights}"
    if finetuned:
        return [f"{base}/config.json", f"{base}/stages_01-10_finetuned.hdf5"]
    return [f"{base}/config.json"] + [f"{base}/stage_{t + 1:02d}.hdf5" for t in range(stages)]


def load_fdn_config(folder: str | os.PathLike) -> dict:
    """``config.json`` of a weight set: ``{"sigma_range": [lo, hi], "n_stages": n}`` (checked)."""
    p = Path(folder) / "config.json"
    if not p.is_file():
        raise DataNotFoundError(f"FDN weights not found: {p} is missing; run `podm data fetch weights`")
    try:
        cfg = json.loads(p.read_text())
        lo, hi = (float(v) for v in cfg["sigma_range"])
        n = int(cfg["n_stages"])
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"{p}: not an FDN config.json ({type(err).__name__}: {err})") from None
    return {"sigma_range": (lo, hi), "n_stages": n}


def _text(v) -> str:
    return v.decode("utf-8") if isinstance(v, (bytes, bytearray)) else str(v)


def _stage_arrays(group, where: str) -> dict[str, np.ndarray]:
    """``{"conv1/kernel": array, ..., "x_out/filter_weights": array}`` from one stage's layer groups
    (``group`` holds the layers directly, with or without a ``_<n>`` suffix on their names)."""
    out: dict[str, np.ndarray] = {}
    # a stacked file names all of a stage's datasets on the stage group; a single-stage file on each layer
    holders = [group] if "weight_names" in group.attrs else [group[n] for n in group]
    for holder in holders:
        for name in (_text(n) for n in holder.attrs.get("weight_names", [])):
            layer_part, _, leaf = name.rpartition("/")
            base = re.sub(r"_\d+$", "", layer_part.rsplit("/", 1)[-1])
            if name not in holder:
                raise InputError(f"{where}: dataset {name} listed but missing")
            out[f"{base}/{leaf.removesuffix(':0')}"] = np.asarray(holder[name][()], dtype=np.float32)
    needed = [f"conv{j}/{p}" for j in range(1, _CONV + 1) for p in ("kernel", "bias")]
    needed += [f"{d}/{p}" for d in _DENSE for p in ("kernel", "bias")] + ["x_out/filter_weights"]
    absent = [n for n in needed if n not in out]
    if absent:
        raise InputError(f"{where}: not an FDN stage (no {absent[0]})")
    return out


def read_fdn_stages(path: str | os.PathLike) -> list[dict[str, np.ndarray]]:
    """The raw arrays of every stage in an FDN HDF5 file, in stage order (see the module docstring)."""
    p = Path(path)
    with open_hdf5(p, "FDN weight file", "; run `podm data fetch weights`") as f:
        try:
            order = [_text(n) for n in f.attrs["layer_names"]]
        except KeyError:
            raise InputError(f"{p}: no 'layer_names' attribute (not a Keras weight file)") from None
        models = [n for n in order if re.fullmatch(r"model_\d+", n)]
        try:
            if models:  # a stacked cascade
                return [_stage_arrays(f[m], f"{p}[{m}]") for m in models]
            return [_stage_arrays(f, str(p))]
        except (KeyError, OSError, ValueError) as err:
            raise InputError(f"{p}: unreadable FDN weights ({type(err).__name__}: {err})") from None


def stage_from_arrays(arrays: dict[str, np.ndarray], where: str = "FDN weights") -> FDNStage:
    """An :class:`FDNStage` holding ``arrays`` (mapped as in the module table)."""
    stage = FDNStage()
    state = {}
    for j in range(_CONV):
        state[f"convs.{j}.weight"] = torch.from_numpy(arrays[f"conv{j + 1}/kernel"].transpose(3, 2, 0, 1).copy())
        state[f"convs.{j}.bias"] = torch.from_numpy(arrays[f"conv{j + 1}/bias"].copy())
    for j, d in enumerate(_DENSE):
        state[f"dense.{j}.weight"] = torch.from_numpy(arrays[f"{d}/kernel"].T.copy())
        state[f"dense.{j}.bias"] = torch.from_numpy(arrays[f"{d}/bias"].copy())
    state["filter_weights"] = torch.from_numpy(arrays["x_out/filter_weights"].copy())
    own = stage.state_dict()
    for k, v in state.items():
        if tuple(own[k].shape) != tuple(v.shape):
            raise InputError(f"{where}: {k} has shape {tuple(v.shape)}, expected {tuple(own[k].shape)}")
    stage.load_state_dict(state, strict=True)
    return stage.requires_grad_(False).eval()


def load_fdn(folder: str | os.PathLike, finetuned: bool = True, stages: int | None = None) -> tuple[FDN, dict]:
    """The FDN cascade of a released weight set ``folder`` and its config.

    ``finetuned=True``: the jointly fine-tuned 10-stage cascade, or its first ``stages`` stages (released for
    10 stages only: fewer is a truncation, whose last stage was not trained to give the output);
    ``finetuned=False``: the first ``stages`` greedily trained stages (``stage_01.hdf5`` ...).
    The parameters are frozen (``requires_grad=False``); call ``requires_grad_(True)`` to train them.
    """
    folder = Path(folder)
    cfg = load_fdn_config(folder)
    n = cfg["n_stages"] if stages is None else int(stages)
    if not 1 <= n <= cfg["n_stages"]:
        raise InputError(f"fdn: stages must be 1..{cfg['n_stages']}, got {stages}")
    if finetuned:
        total = cfg["n_stages"]
        path = folder / f"stages_01-{total:02d}_finetuned.hdf5"
        arrays = read_fdn_stages(path)
        if len(arrays) != total:
            raise InputError(f"{path}: {len(arrays)} stages, expected {total}")
        arrays = arrays[:n]
        where = [f"{path}[{t}]" for t in range(n)]
    else:
        arrays, where = [], []
        for t in range(n):
            path = folder / f"stage_{t + 1:02d}.hdf5"
            got = read_fdn_stages(path)
            if len(got) != 1:
                raise InputError(f"{path}: {len(got)} stages in a single-stage file")
            arrays.append(got[0])
            where.append(str(path))
    return FDN([stage_from_arrays(a, w) for a, w in zip(arrays, where)]).eval(), cfg
