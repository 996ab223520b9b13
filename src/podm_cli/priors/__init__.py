"""Designed priors ``g`` and their proximal operators (the G module of PODM: one proximal-gradient step).

* :class:`LpDCT` — ``lam ||W x||_p^p``, W the orthonormal 2-D DCT, exact prox by generalized
  soft-thresholding (the PODM authors' prior: p = 0.8, lam = 1e-4, 2 GST iterations);
* :class:`LpGradient` — hyper-Laplacian ``lam ||D x||_p^p`` on gradients, prox by a few ADMM steps;
* :class:`TV` — isotropic total variation, prox by fast gradient projection on the dual;
* :class:`NoPrior` — ``g = 0``.

Every prior has ``value(x) -> (N,)`` and ``prox(v, step) = argmin_x step g(x) + 1/2 ||x - v||^2``.
:func:`build_prior` builds one from its config.
"""

from podm_cli.priors.base import NoPrior, Prior
from podm_cli.priors.factory import PRIORS, build_prior
from podm_cli.priors.hyper_laplacian import LpGradient
from podm_cli.priors.lp import LpDCT, dct2, dct_matrix, gst, gst_threshold, idct2
from podm_cli.priors.tv import TV

__all__ = [
    "PRIORS",
    "TV",
    "LpDCT",
    "LpGradient",
    "NoPrior",
    "Prior",
    "build_prior",
    "dct2",
    "dct_matrix",
    "gst",
    "gst_threshold",
    "idct2",
]
