"""upsample-z: repair defective sections, then synthesize factor - 1 sections between each pair.

``command`` (options, ``run_upsample``, ``upsample_volume``), ``factor`` (the factor, output shape and positions),
``blocks`` (output blocks), ``upsampler`` (the models of a run), ``stream`` (pairs streamed into blocks),
``run`` (the blockwise run), ``result`` and ``estimate`` (a dry run's time estimate).
"""

from emrepair.pipelines.upsample.command import (
           UpsampleOptions,
           host_memory_bytes,
           run_upsample,
           upsample_volume,
)
from emrepair.pipelines.upsample.plan import INTERPOLATED_LABEL
from emrepair.pipelines.upsample.result import UpsampleResult

__all__ = ["INTERPOLATED_LABEL", "UpsampleOptions", "UpsampleResult", "host_memory_bytes", "run_upsample",
           "upsample_volume"]
