"""Region methods for images: XRAI, extremal perturbations and a submodular region search.

Each explains one image input (``(C, H, W)`` or ``(H, W)`` per sample) with *regions* of
pixels rather than single pixels, and returns an input-shaped pixel map plus the ordered
regions in ``Attribution.extra["region_rank"]`` (each pixel's region position, 0 = most
important). Regions come from :func:`.segmentation.felzenszwalb` over-segmentation (our own
numpy implementation of Felzenszwalb & Huttenlocher 2004), or from the game's groups when
the user passes superpixels or patches as ``groups=``.

* ``xrai`` — Kapishnikov et al. (2019): regions grown by integrated-gradient density.
* ``extremal_perturbation`` — Fong, Patrick & Vedaldi (2019): area-constrained smooth masks
  optimised by gradient.
* ``submodular_regions`` — Chen et al. (2024, 2025; LiMA): greedy / lazy-greedy region
  selection maximising the confidence of the kept regions and the effect of removing them.

Example:
    >>> import torch, tribute
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.ReLU(),
    ...                           torch.nn.Flatten(), torch.nn.Linear(2 * 16 * 16, 2)).double()
    >>> images = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    >>> attr = tribute.explain(net, images, method="xrai", target=1, steps=8)
    >>> tuple(attr.values.shape), attr.extra["region_rank"].shape
    ((2, 1, 16, 16), (2, 1, 16, 16))
"""

from .extremal import ExtremalPerturbation, area_loss, blur_images, smooth_mask
from .growth import grow_regions
from .segmentation import dilate, felzenszwalb, gaussian_blur, multiscale_segments
from .submodular import SubmodularRegions, superpixels
from .xrai import XRAI

__all__ = ["XRAI", "ExtremalPerturbation", "SubmodularRegions", "area_loss", "blur_images",
           "dilate", "felzenszwalb", "gaussian_blur", "grow_regions", "multiscale_segments",
           "smooth_mask", "superpixels"]
