"""Further anchors of the data benchmark: kronfluence (EK-FAC) and traker (TRAK), CPU, float64.

Benchmark-only (never runtime dependencies). Install next to the CPU torch without letting pip
replace it::

    pip install --no-deps kronfluence==1.0.1 accelerate einconv opt-einsum einops psutil
    pip install --no-deps traker==0.3.2

Each returns scores ``n_test x n_train`` in tribute's sign (positive = including the training
example raises the test point's target-class margin), seconds and peak RSS growth (MiB).
"""

from __future__ import annotations

import copy
import tempfile
import time
from typing import Any

import torch

from tribute.bench.data_suite import PeakRSS


def _margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    yy = labels.reshape(-1).long()
    zy = logits.gather(1, yy[:, None])[:, 0]
    other = logits.scatter(1, yy[:, None], float("-inf"))
    return zy - torch.logsumexp(other, 1)


def kronfluence_scores(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, X_test: torch.Tensor,
                       y_test: torch.Tensor, damping: float | None) -> tuple[torch.Tensor, float, float]:
    """kronfluence's EK-FAC influence of each training example on the test margins.

    kronfluence scores are ``grad f^T (F + d I)^-1 grad loss_i`` (the effect of *up-weighting*
    the loss, opposite to tribute's sign): negated here. Its Fisher is the *true* Fisher
    (labels sampled from the model, seeded) averaged over examples; ``damping`` = the case's
    ``l2`` makes the curvature that of tribute's mean objective ``F + l2 I``; None is
    kronfluence's heuristic (0.1 x mean eigenvalue).
    """
    import torch.nn.functional as F
    from kronfluence.analyzer import Analyzer, prepare_model
    from kronfluence.arguments import FactorArguments, ScoreArguments
    from kronfluence.task import Task
    from torch.utils.data import TensorDataset

    class _Task(Task):  # type: ignore[misc]  # kronfluence is untyped
        def compute_train_loss(self, batch: Any, model: torch.nn.Module, sample: bool = False) -> torch.Tensor:
            x, t = batch
            logits = model(x)
            if sample:
                with torch.no_grad():
                    t = torch.multinomial(torch.softmax(logits.detach(), -1), 1).flatten()
            return F.cross_entropy(logits, t.long(), reduction="sum")

        def compute_measurement(self, batch: Any, model: torch.nn.Module) -> torch.Tensor:
            x, t = batch
            return _margin(model(x), t).sum()

    f64 = torch.float64
    t0 = time.perf_counter()
    with PeakRSS() as mem, tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)  # kronfluence samples labels for the true Fisher from global RNG
        task = _Task()
        m = prepare_model(copy.deepcopy(model), task)
        an = Analyzer(analysis_name="tribute_bench", model=m, task=task, cpu=True,
                      disable_tqdm=True, output_dir=tmp)
        fargs = FactorArguments(strategy="ekfac", activation_covariance_dtype=f64,
                                gradient_covariance_dtype=f64, eigendecomposition_dtype=f64,
                                per_sample_gradient_dtype=f64, lambda_dtype=f64)
        train = TensorDataset(X, y)
        an.fit_all_factors(factors_name="f", dataset=train, per_device_batch_size=len(X),
                           factor_args=fargs, overwrite_output_dir=True)
        sargs = ScoreArguments(damping_factor=damping, per_sample_gradient_dtype=f64,
                               precondition_dtype=f64, score_dtype=f64)
        an.compute_pairwise_scores(scores_name="s", factors_name="f",
                                   query_dataset=TensorDataset(X_test, y_test), train_dataset=train,
                                   per_device_query_batch_size=len(X_test),
                                   per_device_train_batch_size=len(X), score_args=sargs,
                                   overwrite_output_dir=True)
        s = an.load_pairwise_scores("s")["all_modules"]
    return -s.double().cpu(), time.perf_counter() - t0, mem.peak_mib


def traker_scores(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, X_test: torch.Tensor,
                  y_test: torch.Tensor, proj_dim: int) -> tuple[torch.Tensor, float, float]:
    """The official TRAK (``traker``) with its CPU projector, one model, float32.

    TRAK's scores already follow tribute's sign (positive = the example helps the margin).
    ``traker`` keeps features in float32 (``use_half_precision=False``), so the model is cast.
    """
    from trak import TRAKer
    from trak.projectors import BasicProjector, ProjectionType

    t0 = time.perf_counter()
    with PeakRSS() as mem, tempfile.TemporaryDirectory() as tmp:
        m = copy.deepcopy(model).float().eval()
        n_params = sum(p.numel() for p in m.parameters())
        proj = BasicProjector(grad_dim=n_params, proj_dim=proj_dim, seed=0,
                              proj_type=ProjectionType.normal, device="cpu", dtype=torch.float32)
        tr = TRAKer(model=m, task="image_classification", train_set_size=len(X), save_dir=tmp,
                    device="cpu", projector=proj, proj_dim=proj_dim, use_half_precision=False)
        tr.load_checkpoint(m.state_dict(), model_id=0)
        tr.featurize(batch=(X.float(), y.long()), num_samples=len(X))
        tr.finalize_features()
        tr.start_scoring_checkpoint(exp_name="t", checkpoint=m.state_dict(), model_id=0,
                                    num_targets=len(X_test))
        tr.score(batch=(X_test.float(), y_test.long()), num_samples=len(X_test))
        s = torch.as_tensor(tr.finalize_scores(exp_name="t")).double().T.contiguous()
    return s, time.perf_counter() - t0, mem.peak_mib
