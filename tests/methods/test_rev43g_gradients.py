"""rev43g: review of aud43g (z^B bounds warning; guided backprop memory).

The warning (input outside ``[low, high]``) fired on ordinary bounds: ImageNet bounds typed
to 4 decimals (-2.1179 for -2.117904, off by 4e-6 to 4.5e-5) and bounds computed in float32
for float64 data (1 ulp, 7e-8), where the credits move by < 1e-4 relatively.
"""

from __future__ import annotations

import warnings
import weakref
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import tribute

MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def _cnn(dtype: torch.dtype) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 4 * 4, 3)).eval().to(dtype)


def _images(dtype: torch.dtype) -> torch.Tensor:
    """uint8 images with black and white pixels, /255 and ImageNet-normalised in ``dtype``."""
    gen = torch.Generator().manual_seed(1)
    u8 = torch.randint(0, 256, (4, 3, 8, 8), generator=gen)
    u8[:, :, 0, 0], u8[:, :, 0, 1] = 0, 255
    x = u8.to(dtype) / 255
    return (x - torch.tensor(MEAN, dtype=dtype).view(1, 3, 1, 1)) / torch.tensor(STD, dtype=dtype).view(1, 3, 1, 1)


def _box(model: nn.Module, x: torch.Tensor, low: Any, high: Any) -> tuple[np.ndarray, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = tribute.explain(model, x, method="lrp", composite="epsilon_gamma_box", low=low, high=high,
                            target=0, progress=False)
    return np.asarray(a.values), [str(w.message) for w in caught if "z^B" in str(w.message)]


@pytest.mark.parametrize("case", ["rounded_scalars", "rounded_per_channel", "float32_bounds_float64_data"])
def test_zbox_bounds_that_match_the_data_up_to_rounding_do_not_warn(case: str) -> None:
    exact_low, exact_high = (0 - MEAN) / STD, (1 - MEAN) / STD  # float64, by hand
    low: Any
    high: Any
    if case == "rounded_scalars":  # as typed in many examples
        dtype, low, high = torch.float32, -2.1179, 2.64
    elif case == "rounded_per_channel":
        dtype = torch.float32
        low = torch.tensor(np.round(exact_low, 4), dtype=dtype).view(1, 3, 1, 1)
        high = torch.tensor(np.round(exact_high, 4), dtype=dtype).view(1, 3, 1, 1)
    else:
        dtype = torch.float64
        m32, s32 = torch.tensor(MEAN, dtype=torch.float32), torch.tensor(STD, dtype=torch.float32)
        low, high = ((0 - m32) / s32).view(1, 3, 1, 1), ((1 - m32) / s32).view(1, 3, 1, 1)
    model, x = _cnn(dtype), _images(dtype)
    lo_t = torch.as_tensor(low, dtype=torch.float64)
    hi_t = torch.as_tensor(high, dtype=torch.float64)
    excess = float(torch.maximum(lo_t - x.double(), x.double() - hi_t).max())
    assert 0 < excess < 1e-4  # the data do leave these bounds, by rounding only
    got, msgs = _box(model, x, low, high)
    assert msgs == []
    # and the credits are those of the exact bounds up to about that rounding
    if case == "rounded_scalars":  # one bound for all channels: the data's range
        want, _ = _box(model, x, float(exact_low.min()), float(exact_high.max()))
    else:
        want, _ = _box(model, x, torch.tensor(exact_low, dtype=dtype).view(1, 3, 1, 1),
                       torch.tensor(exact_high, dtype=dtype).view(1, 3, 1, 1))
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


def test_zbox_bounds_that_miss_the_data_still_warn_with_the_excess() -> None:
    model, x = _cnn(torch.float32), _images(torch.float32)
    _, msgs = _box(model, x, 0.0, 1.0)  # [0, 1] bounds for normalised images
    excess = float(((0 - MEAN) / STD).min() * -1)  # the black pixel of the red channel: 2.1179
    assert len(msgs) == 1 and f"by up to {excess:.3g}" in msgs[0]


def test_zbox_one_bound_given_that_misses_a_sample_warns_not_errs() -> None:
    """low given, high None (each sample's max): a sample below low left the bounds; it was
    refused as 'low=0.5 exceeds high=None', which named a bound the user did not give."""
    model, x = _cnn(torch.float64), _images(torch.float64)
    x = x - x.amax(dim=(1, 2, 3), keepdim=True) + 0.4  # every sample's max is 0.4 < low
    with pytest.warns(UserWarning, match=r"outside the z\^B bounds low=0.5, high=None"):
        tribute.explain(model, x, method="lrp", composite="epsilon_gamma_box", low=0.5,
                        target=0, progress=False)


def test_zbox_warning_points_at_the_callers_line() -> None:
    model, x = _cnn(torch.float32), _images(torch.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tribute.explain(model, x, method="lrp", composite="epsilon_gamma_box", low=0.0, high=1.0,
                        target=0, progress=False)
    box = [w for w in caught if "z^B" in str(w.message)]
    assert len(box) == 1 and box[0].filename == __file__


class _SavedPeak:
    """Peak bytes of the storages autograd keeps for backward (saved tensors), counted once."""

    def __init__(self) -> None:
        self.refs: dict[int, list[int]] = {}
        self.current = self.peak = 0

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        ptr, nbytes = t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()
        if ptr in self.refs:
            self.refs[ptr][0] += 1
        else:
            self.refs[ptr] = [1, nbytes]
            self.current += nbytes
            self.peak = max(self.peak, self.current)
        handle = t.detach()
        weakref.finalize(handle, self._release, ptr)
        return handle

    def _release(self, ptr: int) -> None:
        entry = self.refs[ptr]
        entry[0] -= 1
        if entry[0] == 0:
            self.current -= entry[1]
            del self.refs[ptr]

    @staticmethod
    def unpack(t: torch.Tensor) -> torch.Tensor:
        return t


def test_guided_backprop_keeps_no_second_copy_of_relu_outputs() -> None:
    """aud43g's copy of each ReLU output (for in-place edits) sat next to the saved output itself:
    guided backprop kept 1.58x the saved bytes of the plain gradient (18.5 vs 11.7 MiB on a CNN).
    The truth it should stay near is saliency's graph (the same forward) plus one bool mask per
    ReLU output; deconvolution saves nothing more."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1),
                          nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 8 * 8, 3)).eval()
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    peaks = {}
    for method in ("saliency", "guided_backprop"):
        track = _SavedPeak()
        with torch.autograd.graph.saved_tensors_hooks(track.pack, track.unpack):
            tribute.explain(model, x, method=method, target=0, progress=False)
        peaks[method] = track.peak
    relu_elements = 2 * 4 * 16 * 16 * 16  # two ReLU outputs of the batch
    assert peaks["guided_backprop"] <= peaks["saliency"] + relu_elements  # + one byte per element


def test_lrp_keeps_no_second_copy_of_layer_outputs() -> None:
    """aud43g's copy of each rule node's output (for in-place edits) was saved again by the next
    rule next to the original z: LRP's saved activations rose 1.86x (454704 -> 847920 bytes here;
    18.5 -> 32.0 MiB on a VGG-ish CNN). Truth, by hand: every activation (the input and the 6
    conv/ReLU outputs) once, plus the parameters; 20% slack (a Flatten view still costs one
    more copy of the last activation)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1),
                          nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(16 * 16 * 16, 3)).eval()
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    track = _SavedPeak()
    with torch.autograd.graph.saved_tensors_hooks(track.pack, track.unpack):
        tribute.explain(model, x, method="lrp", composite="epsilon_plus", target=0, progress=False)
    activations = 4 * (3 * 16 * 16 + 6 * 16 * 16 * 16) * 4  # float32 bytes
    params = sum(p.numel() for p in model.parameters()) * 4
    assert track.peak <= 1.2 * (activations + params)
