"""Forward models for deconvolution: blur operators (circular / valid) with exact adjoints, OTFs and fast
FFT sizes, boundary handling (edgetaper, Liu-Jia wrap-around, padding for FFT solvers), the data term every
solver inverts the blur with (:class:`DataTerm`), finite differences and noise.

No ``torch.nn`` state and no Hydra here: plain functions and classes usable from Python and configs alike.
"""

from podm_cli.physics.blur import Blur, valid_offset
from podm_cli.physics.boundary import (
    EXTEND_METHODS,
    edgetaper,
    edgetaper_weight,
    extend_for_deconv,
    wrap_boundary_liu,
)
from podm_cli.physics.data_term import BOUNDARIES, DATA_MODES, START_RULES, DataTerm, item_weight
from podm_cli.physics.differences import (
    diff_otf_sq,
    forward_diff,
    forward_diff_adjoint,
    forward_diff_neumann,
    forward_diff_neumann_adjoint,
)
from podm_cli.physics.fft import next_fast_len, psf2otf
from podm_cli.physics.noise import add_gaussian_noise, image_seed, quantize

__all__ = [
    "BOUNDARIES",
    "DATA_MODES",
    "EXTEND_METHODS",
    "START_RULES",
    "Blur",
    "DataTerm",
    "diff_otf_sq",
    "forward_diff",
    "forward_diff_adjoint",
    "forward_diff_neumann",
    "forward_diff_neumann_adjoint",
    "item_weight",
    "add_gaussian_noise",
    "edgetaper",
    "edgetaper_weight",
    "extend_for_deconv",
    "image_seed",
    "next_fast_len",
    "psf2otf",
    "quantize",
    "valid_offset",
    "wrap_boundary_liu",
]
