"""RPODM training: pairs made on the fly (:mod:`.pairs`), the HDF5 image cache (:mod:`.cache`), the Lightning
module and data module (:mod:`.module`, :mod:`.datamodule`), the loop-overhead benchmark (:mod:`.throughput`) and the
CSF and RTF trainers (:mod:`.csf`, :mod:`.rtf`); the exported RPODM weights file is :mod:`podm_cli.models.rpodm_weights`.
Lightning is imported only by the modules that need it."""
