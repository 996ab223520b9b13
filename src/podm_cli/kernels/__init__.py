"""Blur kernels: reading and validating kernel files (:mod:`.files`), the random camera-shake generator
(:mod:`.motion`) and the model of a recovered kernel's error (:mod:`.error`). Every kernel is a float64 ``(kh, kw)`` tensor, non-negative, summing to 1, in the
orientation of a true convolution kernel."""

from podm_cli.kernels.files import (
    LEVIN09_SIZES,
    load_kernel,
    load_kernels,
    load_levin_kernels,
    validate_kernel,
)
from podm_cli.kernels.motion import random_motion_kernel

__all__ = [
    "LEVIN09_SIZES",
    "load_kernel",
    "load_kernels",
    "load_levin_kernels",
    "random_motion_kernel",
    "validate_kernel",
]
