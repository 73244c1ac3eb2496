"""Jigsaw: cut the image into 2x2 tiles, shuffle them by one of the 4! = 24 orders, predict which."""

from __future__ import annotations

import itertools

import torch

from auxtune.robust.tasks.base import ClassificationTask
from auxtune.robust.tasks.registry import register_task

#: Label k means output tile t (row-major) is input tile PERMUTATIONS[k][t].
PERMUTATIONS: tuple[tuple[int, ...], ...] = tuple(itertools.permutations(range(4)))


def to_tiles(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, 4, C, H/2, W/2), tiles in row-major order."""
    n, c, h, w = images.shape
    tiles = images.reshape(n, c, 2, h // 2, 2, w // 2).permute(0, 2, 4, 1, 3, 5)
    return tiles.reshape(n, 4, c, h // 2, w // 2)


def from_tiles(tiles: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_tiles`."""
    n, _, c, th, tw = tiles.shape
    grid = tiles.reshape(n, 2, 2, c, th, tw).permute(0, 3, 1, 4, 2, 5)
    return grid.reshape(n, c, 2 * th, 2 * tw)


@register_task
class JigsawTask(ClassificationTask):
    name = "jigsaw"
    num_classes = len(PERMUTATIONS)

    def transform(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        tiles = to_tiles(images)
        order = torch.tensor(PERMUTATIONS, device=images.device)[labels]  # (N, 4)
        index = order[:, :, None, None, None].expand_as(tiles)
        return from_tiles(torch.gather(tiles, 1, index))
