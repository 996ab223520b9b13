"""The paper's Table 1 (Liu et al., NeurIPS 2018), printed beside our numbers and always labelled "paper".

These are the published figures, never ours: every number podm claims is computed by `podm eval`.
"""

from __future__ import annotations

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
# its paper numbers are shown for orientation only (the report says so).
PAPER_COLUMN = {
    "levin": "levin",
    "levin_valid": "levin",
    "levin_valid_whole": "levin",
    "levin_real": "levin",
    "sun": "sun",
    "sun_substitute": "sun",
}


def paper_numbers(method: str, protocol: str) -> tuple[float | None, float | None]:
    """The paper's (PSNR, SSIM) for ``method`` in the column matching ``protocol`` (None if absent).

    >>> paper_numbers("tv", "levin_valid")
    (29.38, 0.88)
    >>> paper_numbers("fdn", "levin")
    (None, None)
    """
    column = PAPER_COLUMN.get(protocol.split("[", 1)[0])  # "levin[sigma=0.02]" is still a Levin variant
    if column is None:
        return None, None
    return PAPER_TABLE[column].get(method, (None, None))
