"""Published numbers printed beside ours, always labelled with their source.

* "paper": the PODM paper's Table 1 (Liu et al., NeurIPS 2018): synthetic Levin and Sun columns, shown
  beside the synthetic protocols.
* "published: Kruse et al. 2017": FDN's Table 1 (Kruse, Rother & Schmidt, ICCV 2017), the field's
  numbers on Levin et al.'s captured blurs scored with Levin's ``comp_upto_shift`` (``levin_real``), and
  on Sun et al.'s images (``sun``).

These are the published figures, never ours: every number podm claims is computed by `podm eval`.
"""

from __future__ import annotations

from typing import NamedTuple

# (psnr, ssim) per method and paper column.
PAPER_TABLE: dict[str, dict[str, tuple[float, float]]] = {
    "levin": {
        "tv": (29.38, 0.88),
        "hl": (30.12, 0.90),
        "epll": (31.65, 0.93),
        "csf": (32.74, 0.93),
        "rtf": (33.26, 0.94),
        "ircnn": (32.51, 0.92),
        "rpodm": (34.06, 0.97),
    },
    "sun": {
        "tv": (30.67, 0.85),
        "hl": (31.03, 0.85),
        "epll": (32.44, 0.88),
        "csf": (31.55, 0.87),
        "rtf": (32.45, 0.89),
        "ircnn": (32.61, 0.89),
        "rpodm": (32.62, 0.89),
    },
}

# Which paper column a protocol is compared with. sun_substitute uses Sun's recipe on other images:
# its paper numbers are shown for orientation only (the report says so). levin_real (captured blurs) has
# no paper column: the paper's table is synthetic; it is compared with Kruse et al.'s table instead.
PAPER_COLUMN = {
    "levin": "levin",
    "levin_valid": "levin",
    "levin_valid_whole": "levin",
    "sun": "sun",
    "sun_substitute": "sun",
}


def paper_numbers(method: str, protocol: str) -> tuple[float | None, float | None]:
    """The paper's (PSNR, SSIM) for ``method`` in the column matching ``protocol`` (None if absent).

    The paper ran one noise level (1 %): a variant at another level (``levin_valid_whole[sigma=0.02]``, a
    noise sweep) has no paper number; another noise draw of the same level (``levin[seed=1]``) keeps it.

    >>> paper_numbers("tv", "levin_valid"), paper_numbers("tv", "levin[seed=1]")
    ((29.38, 0.88), (29.38, 0.88))
    >>> paper_numbers("fdn", "levin"), paper_numbers("tv", "levin_valid_whole[sigma=0.02]")
    ((None, None), (None, None))
    """
    base, _, extras = protocol.partition("[")
    if any(extra.strip().startswith("sigma=") for extra in extras.rstrip("]").split(",")):
        return None, None
    column = PAPER_COLUMN.get(base)
    if column is None:
        return None, None
    return PAPER_TABLE[column].get(method, (None, None))


PUBLISHED_SOURCE = "Kruse et al. 2017"
PUBLISHED_REFERENCE = (
    "Kruse, Rother & Schmidt, Learning to push the limits of efficient FFT-based image deconvolution, "
    "ICCV 2017, Table 1"
)


class Published(NamedTuple):
    """One published PSNR: the value, the source and what exactly was run (model, input noise level)."""

    psnr: float
    source: str
    what: str


def _k(psnr: float, what: str) -> Published:
    return Published(psnr, PUBLISHED_SOURCE, what)


# Kruse et al. 2017, Table 1, per podm method name and protocol. levin_real: Levin's captured blurs and
# Levin's comp_upto_shift scoring, input sigma in the label. sun: Sun et al.'s 640 images (input sigma
# 2.55/255). Only rows whose model matches a podm method are listed; a podm method trained by podm shares
# the architecture, not the weights (its row's "source" says so).
PUBLISHED: dict[str, dict[str, Published]] = {
    "levin_real": {
        "fdn": _k(35.09, "FDN, 10 stages fine-tuned, input sigma 1.5/255"),
        "fdn_greedy": _k(34.98, "FDN, 10 stages greedy, input sigma 1.5/255"),
        "epll": _k(34.75, "EPLL, input sigma 1.5/255"),
        "csf_5x5": _k(34.06, "CSF 5x5 (5 stages), input sigma 1.5/255"),
        "rtf": _k(33.97, "RTF, input sigma 0.5/255"),
        "csf": _k(33.48, "CSF pairwise (3 stages), input sigma 0.5/255"),
        "csf_official": _k(33.48, "CSF pairwise (3 stages), input sigma 0.5/255"),
    },
    "sun": {
        "fdn": _k(32.67, "FDN, 10 stages fine-tuned, input sigma 2.55/255"),
        "fdn_greedy": _k(32.62, "FDN, 10 stages greedy, input sigma 2.55/255"),
        "epll": _k(32.46, "EPLL, input sigma 2.55/255"),
        "csf_5x5": _k(32.21, "CSF 5x5, input sigma 2.55/255"),
        "rtf": _k(32.49, "RTF, input sigma 2.55/255"),
    },
}

# Published rows without a podm method, printed as a note under the table.
PUBLISHED_OTHERS: dict[str, list[tuple[str, float]]] = {
    "levin_real": [("Levin et al. (sparse-prior deconvolution)", 33.82)],
}


def published_numbers(method: str, protocol: str) -> dict | None:
    """Kruse et al. 2017's PSNR for ``method`` on ``protocol`` as a JSON-ready dict (None if absent).

    Only the protocols' own definitions qualify: a renamed variant (``levin_real[sigma=0.01]``) or
    ``sun_substitute`` (other images) has no published number.

    >>> published_numbers("rtf", "levin_real")
    {'psnr': 33.97, 'source': 'Kruse et al. 2017', 'what': 'RTF, input sigma 0.5/255'}
    >>> published_numbers("rtf", "sun_substitute") is None, published_numbers("tv", "levin_real") is None
    (True, True)
    """
    entry = PUBLISHED.get(protocol, {}).get(method)
    return None if entry is None else entry._asdict()
