"""One blockwise run, shared by fix and upsample-z: fingerprint, prepare-or-rejoin, pending blocks, execution
(in this process, worker processes or daisy, through ``emrepair.distributed``) and commit.

A pipeline subclasses :class:`BlockwiseRun` (its blocks, outputs, fingerprint and provenance) and
:class:`BlockJob` (what a worker needs, and ``process_block``'s models, loaded once per worker).
"""

from emrepair.blockwise.job import BlockJob, BlockSession, worker_device
from emrepair.blockwise.outputs import partial_path
from emrepair.blockwise.run import BlockwiseRun

__all__ = ["BlockJob", "BlockSession", "BlockwiseRun", "partial_path", "worker_device"]
