"""RPODM training: pairs made on the fly (:mod:`.pairs`), the HDF5 image cache (:mod:`.cache`), the Lightning
module and data module (:mod:`.module`, :mod:`.datamodule`), the exported weights (:mod:`podm_cli.models.rpodm_weights`) and the
loop-overhead benchmark (:mod:`.throughput`). Lightning is imported only by the modules that need it."""
