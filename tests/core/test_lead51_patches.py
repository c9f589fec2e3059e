"""Patches of a model whose first Conv2d reads a tensor the model made from its input (lead51).

aud51c tiles patches around the channel axis the model's first ``Conv2d`` reads; rev51v found
that axis wrong for space-to-depth stems. A gray ``(1, 16, 16)`` image through
``PixelUnshuffle(4) -> Conv2d(16, ...)``: the Conv2d's 16 input channels match the image's last
axis, read as channels-last, and ``patches(4)`` was refused ("exceeds the image size (1, 16)").
The image's 16 x 16 pixels are the patches' axes, as for any (C, H, W) image.
"""
from __future__ import annotations

import numpy as np
import torch

import tribute


class _SpaceToDepth(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.unshuffle = torch.nn.PixelUnshuffle(4)
        self.conv = torch.nn.Conv2d(16, 2, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.unshuffle(x)).sum((2, 3))


def test_patches_of_a_space_to_depth_models_gray_image_tile_its_pixels() -> None:
    torch.manual_seed(0)
    model = _SpaceToDepth().double()
    x = torch.randn(1, 1, 16, 16, dtype=torch.float64)
    attr = tribute.explain(model, x, method="feature_ablation", baseline=0.0, target=0,
                           groups=tribute.patches(4), progress=False)
    got = np.asarray(attr.values)[0]
    assert got.shape == (16,)  # 4 x 4 patches of 4 x 4 pixels, not (1, 16) axes
    # the model is linear: a patch's credit is the output it carries, w * x summed over the patch
    with torch.no_grad():
        contrib = torch.autograd.functional.jacobian(lambda t: model(t)[:, 0], x)[0].reshape(16, 16) \
            * x.reshape(16, 16)
    truth = contrib.reshape(4, 4, 4, 4).sum((1, 3))  # 4x4 patches of 4x4 pixels
    np.testing.assert_allclose(got, truth.numpy().reshape(-1), rtol=0, atol=1e-12)
