"""Shared fixtures: where the reference data is, and how to run the CLI as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from podm_cli.methods.base import Method
from podm_cli.optim import denoiser_levels

REPO = Path(__file__).resolve().parents[1]

# `make test` runs two xdist workers on two cores: one intra-op thread each avoids oversubscription
# (small FFTs and convolutions are several times slower with two threads on a loaded 2-core machine).
torch.set_num_threads(1)


# Where the reference data is expected: $PODM_DATA, else ../shared/data beside the checkout (may be absent;
# tests that need it skip).
SHARED_DATA = Path(os.environ.get("PODM_DATA") or REPO.parent / "shared" / "data")


def load_script(name: str):
    """``scripts/<name>.py`` imported as a module (the scripts are not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shared_data_dir() -> Path | None:
    """$PODM_DATA, else ../shared/data beside the checkout; None when neither has the Levin files."""
    candidates = [os.environ.get("PODM_DATA"), REPO.parent / "shared" / "data"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "levin" / "gt" / "im_1.png").is_file():
            return Path(candidate)
    return None


@pytest.fixture
def data_dir() -> Path:
    root = shared_data_dir()
    if root is None:
        pytest.skip("reference data absent (set PODM_DATA or run `make data`)")
    return root


def run_podm(args: list[str], cwd: Path, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``podm ARGS`` in a fresh interpreter from ``cwd`` (as a user's shell would)."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "podm_cli.cli", *args],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
    )


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.strip()]


def eval_rows(tmp_path: Path, data_dir: Path, *args: str) -> dict:
    """Run ``podm eval ARGS`` into ``tmp_path/eval`` (no report) and return results.json's rows by method."""
    import json

    run = tmp_path / "eval"
    proc = run_podm(["eval", *args, "report=false", f"hydra.run.dir={run}"], tmp_path, env={"PODM_DATA": str(data_dir)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {r["method"]: r for r in json.loads((run / "results.json").read_text())["rows"]}


def psnr01(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR (dB) of ``a`` (clamped to [0, 1]) against ``b``, pooled over the whole tensor."""
    import math

    return -10 * math.log10(float(((a.clamp(0, 1) - b) ** 2).mean()))


def checker_scene(n: int = 64) -> torch.Tensor:
    """``(1, 1, n, n)`` float64 test scene: a 16 px checkerboard (0.2 / 0.7) with a brighter disc."""
    yy, xx = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    x = 0.2 + 0.5 * ((xx // 16 + yy // 16) % 2) + 0.2 * ((xx - 40) ** 2 + (yy - 24) ** 2 < 120)
    return x.double()[None, None]



class IdentityMethod(Method):
    """A method that returns its input (tiling, blending and colour handling tested without a solver)."""

    name = "identity"

    def restore(self, data, sigma, on_stage=None):
        return data.initial()


# ----------------------------------------------------------------- a small PODM problem with a stand-in denoiser
def smooth_image(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(1, 1, n // 4, n // 4, generator=g, dtype=torch.float64)
    return F.interpolate(a, size=(n, n), mode="bicubic", align_corners=False).clamp(0, 1)


def gauss_denoiser(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Stand-in denoiser: circular Gaussian smoothing, width sigma*255/10 px (at least 0.3)."""
    w = max(sigma * 255 / 10, 0.3)
    r = torch.arange(-3, 4, dtype=x.dtype)
    g = torch.exp(-(r**2) / (2 * w * w))
    g = g / g.sum()
    c = x.shape[1]
    xp = F.pad(x, (3, 3, 3, 3), mode="circular")
    xp = F.conv2d(xp, g.view(1, 1, 1, 7).expand(c, 1, 1, 7).contiguous(), groups=c)
    return F.conv2d(xp, g.view(1, 1, 7, 1).expand(c, 1, 7, 1).contiguous(), groups=c)


def motion_kernel() -> torch.Tensor:
    k = torch.zeros(7, 7, dtype=torch.float64)
    k[3, :] = 1
    k[2, 4] = 1
    return k / k.sum()


@pytest.fixture(scope="module")
def small_problem():
    """Two smooth 32 x 32 images, a 7 x 7 motion kernel, 1 % noise: ``(Deconvolution with lp-DCT, truth)``."""
    from podm_cli.optim import Deconvolution
    from podm_cli.priors import LpDCT

    x = torch.cat([smooth_image(32, 0), smooth_image(32, 1)])
    k = motion_kernel()
    g = torch.Generator().manual_seed(5)
    y = Deconvolution.circular(x, k).A(x) + 0.01 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    return Deconvolution.circular(y, k, LpDCT()), x


#: PODM's 10-stage denoiser schedule 48 -> 4 (0..255), on [0, 1].
SIGMAS = denoiser_levels(10, 48 / 255, 4 / 255)
