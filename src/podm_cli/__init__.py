"""podm: PODM / RPODM model-inspired deep non-blind deconvolution (Liu et al., NeurIPS 2018)."""

__version__ = "0.1.0"
