"""BatchNorm running statistics: which forward passes may move them.

In training mode a BatchNorm layer normalises with the batch's own statistics and also folds them
into its running mean and variance, which evaluation then normalises with. The auxiliary tasks
forward rotated, grey, blurred or channel-permuted *views* of the batch through the shared
backbone; if each of those forwards updated the running statistics, evaluation would normalise
clean test images with statistics that mostly describe views it never sees.
:func:`frozen_running_stats` lets a forward pass use batch statistics without updating anything.

    >>> import torch
    >>> bn = torch.nn.BatchNorm2d(3).train()
    >>> with frozen_running_stats(bn):
    ...     _ = bn(torch.randn(8, 3, 4, 4) + 5.0)
    >>> bn.running_mean.tolist(), int(bn.num_batches_tracked)
    ([0.0, 0.0, 0.0], 0)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


@contextlib.contextmanager
def frozen_running_stats(module: nn.Module) -> Iterator[None]:
    """Inside, ``module``'s BatchNorm layers leave their running statistics untouched.

    In training mode they normalise with batch statistics as usual (the forward and its gradient
    are unchanged); in eval mode they keep using the running statistics. A layer without
    ``track_running_stats`` is left as it is.
    """
    layers = [m for m in module.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    for layer in layers:
        layer.track_running_stats = False  # train mode: batch statistics, no running update
    try:
        yield
    finally:
        for layer in layers:
            layer.track_running_stats = True
