"""aud51v: the explorer scores a numeric table as ``tribute.explain`` on the table does.

A ``--data rows.csv`` subject handed its model float64 rows whatever the table's column dtypes
(``5.0`` for the integer ``5``). A model reading column ``a`` as text (``"5"`` scores a bonus
of 10, ``"5.0"`` does not) was shown 6.0 for the 16 it gives on the table's row 0, and exact
Shapley credits ``[1.75, 0.5]`` for the truth ``[11.75, 0.5]``; its classifier twin was shown
the wrong predicted class. Truth: exact enumeration over one-row DataFrame copies of the table
(a removed column set to the file's column mean), scored by the model itself.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("starlette")
pd = pytest.importorskip("pandas")
from tribute.explorer import compute  # noqa: E402
from tribute.explorer.subjects import file_spec  # noqa: E402

FACTORY = '''
import numpy as np


class TextBonus:
    def fit(self, frame):
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        return self

    def predict(self, frame):
        bonus = np.where(frame["a"].astype(str) == "5", 10.0, 0.0)
        return frame["a"].to_numpy(dtype=np.float64) + bonus + 2.0 * frame["b"].to_numpy(dtype=np.float64)


class TextClassifier(TextBonus):
    classes_ = np.array([0, 1])

    def predict_proba(self, frame):
        s = np.where(frame["a"].astype(str) == "5", 2.0, -1.0) + frame["b"].to_numpy(dtype=np.float64)
        p = 1.0 / (1.0 + np.exp(-s))
        return np.stack([1.0 - p, p], 1)

    def predict(self, frame):
        return (self.predict_proba(frame)[:, 1] > 0.5).astype(int)


def regressor():
    import pandas as pd
    return TextBonus().fit(pd.DataFrame({"a": [1], "b": [0.0]}))


def classifier():
    import pandas as pd
    return TextClassifier().fit(pd.DataFrame({"a": [1], "b": [0.0]}))


def linear():
    import pandas as pd
    from sklearn.linear_model import LinearRegression
    X = pd.DataFrame({"a": [5, 2, 5, 1], "b": [0.5, -0.5, 1.0, 0.0]})
    return LinearRegression().fit(X, [1.0, 2.0, 0.5, 3.0])
'''

TABLE = pd.DataFrame({"a": [5, 2, 5, 1], "b": [0.5, -0.5, 1.0, 0.0]})


def _subject(tmp_path: Path, factory: str) -> Any:
    (tmp_path / "fac51v.py").write_text(FACTORY, encoding="utf-8")
    TABLE.to_csv(tmp_path / "rows.csv", index=False)
    return file_spec(f"{tmp_path / 'fac51v.py'}:{factory}", data=str(tmp_path / "rows.csv")).build()


def _shapley(score: Any, row: int) -> np.ndarray:
    means = TABLE.to_numpy(np.float64).mean(0)
    cols = list(TABLE.columns)

    def v(keep: set[int]) -> float:
        f = TABLE.iloc[[row]].copy()
        for j, c in enumerate(cols):
            if j not in keep:
                f[c] = means[j]
        return float(score(f))

    n = len(cols)
    phi = np.zeros(n)
    for j in range(n):
        others = [k for k in range(n) if k != j]
        for r in range(n):
            for s in itertools.combinations(others, r):
                w = math.factorial(r) * math.factorial(n - r - 1) / math.factorial(n)
                phi[j] += w * (v(set(s) | {j}) - v(set(s)))
    return phi


def test_a_table_reaches_a_dtype_reading_model_typed_as_the_table(tmp_path: Path) -> None:
    subject = _subject(tmp_path, "regressor")
    model = subject.model
    for row in (0, 2):  # rows whose integer 5 the model reads as "5"
        assert compute.predict(subject, row)["scores"][0] == float(model.predict(TABLE.iloc[[row]])[0])
        got = compute._explain(subject, row, "exact_shapley", {}, None, 0).values[0]
        np.testing.assert_allclose(got, _shapley(lambda f: model.predict(f)[0], row), atol=1e-12)
    assert compute.predict(subject, 0)["scores"] == [16.0]  # 6.0 before (5.0 read as "5.0")


def test_a_dtype_reading_classifier_predicts_and_explains_the_tables_class(tmp_path: Path) -> None:
    subject = _subject(tmp_path, "classifier")
    model = subject.model
    shown = compute.predict(subject, 0)
    assert shown["top"] == 1  # class 0 before: p(1) = 0.924 on the table's row, 0.378 on 5.0
    np.testing.assert_allclose(shown["scores"], model.predict_proba(TABLE.iloc[[0]])[0], atol=1e-15)
    got = compute._explain(subject, 0, "exact_shapley", {}, None, 0).values[0]
    np.testing.assert_allclose(got, _shapley(lambda f: model.predict_proba(f)[0, 1], 0), atol=1e-12)


def test_a_model_that_validates_its_columns_gets_the_float_rows_as_before(tmp_path: Path) -> None:
    subject = _subject(tmp_path, "linear")
    assert subject.column_dtypes is None
    assert isinstance(subject.model_row(0), np.ndarray)
    got = compute._explain(subject, 1, "exact_shapley", {}, None, 0).values[0]
    truth = subject.model.coef_ * (TABLE.to_numpy(np.float64)[1] - TABLE.to_numpy(np.float64).mean(0))
    np.testing.assert_allclose(got, truth, atol=1e-12)


# ---------------------------------------------------------------- tree_shap and subject.output
def _tree_subject(model: Any, target: Any, output: str) -> Any:
    from tribute.explorer.subjects import Subject

    x = np.random.default_rng(0).normal(size=(60, 4))
    return Subject(name="t", title="t", kind="tabular", model=model, inputs=x[:2].copy(),
                   baseline=x.mean(0), target=target, output=output,
                   class_names=[str(c) for c in getattr(model, "classes_", [])] or None,
                   feature_names=[f"x{i}" for i in range(4)], gradients=False)


def _tree_data() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).normal(size=(60, 4))
    return x, (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(int)


def _offered(subject: Any) -> bool:
    return bool(next(e for e in compute.method_catalogue(subject) if e["name"] == "tree_shap")["usable"])


def _tree_vs_exact(subject: Any) -> float:
    return max(float(np.abs(compute._explain(subject, i, "tree_shap", {}, None, 0).values
                            - compute._explain(subject, i, "exact_shapley", {}, None, 0).values).max())
               for i in range(2))


def test_tree_shap_is_offered_where_it_explains_the_subjects_output() -> None:
    from sklearn.ensemble import GradientBoostingClassifier

    x, y = _tree_data()
    gbc = GradientBoostingClassifier(n_estimators=5, max_depth=2, random_state=0).fit(x, y)
    # output='logit': the log-odds, which tree_shap explains (refused before, diff 4.4e-16)
    logit = _tree_subject(gbc, "predicted", "logit")
    assert _offered(logit)
    assert _tree_vs_exact(logit) < 1e-9
    # output='raw': the probabilities, not the margin tree_shap explains (refused, as before)
    assert not _offered(_tree_subject(gbc, "predicted", "raw"))


def test_tree_shap_of_a_logitraw_classifier_is_offered() -> None:
    xgb = pytest.importorskip("xgboost")
    x, y = _tree_data()
    model = xgb.XGBClassifier(objective="binary:logitraw", n_estimators=5, max_depth=2, n_jobs=1,
                              random_state=0).fit(x, y)
    subject = _tree_subject(model, "predicted", "raw")  # its own scores are the margin
    assert _offered(subject)
    assert _tree_vs_exact(subject) < 1e-5  # float32 trees (9.7e-8 measured)


@pytest.mark.parametrize("output", ["logit", "log_prob"])
def test_tree_shap_of_a_forest_under_a_log_output_is_refused(output: str) -> None:
    from sklearn.ensemble import RandomForestClassifier

    from tribute.errors import UnsupportedModelError

    x, y = _tree_data()
    rf = RandomForestClassifier(n_estimators=3, max_depth=2, random_state=0, n_jobs=1).fit(x, y)
    subject = _tree_subject(rf, "predicted", output)
    assert not _offered(subject)  # offered before: the click raised
    with pytest.raises(UnsupportedModelError):
        compute._explain(subject, 0, "tree_shap", {}, None, 0)


def test_a_model_refit_in_place_with_another_objective_is_read_again() -> None:
    lgb = pytest.importorskip("lightgbm")
    x, _ = _tree_data()
    booster = lgb.LGBMRegressor(n_estimators=3, verbose=-1, n_jobs=1).fit(x, np.exp(x[:, 0]))
    subject = _tree_subject(booster, None, "raw")
    assert _offered(subject)
    booster.set_params(objective="poisson").fit(x, np.exp(x[:, 0]))  # the same object, a log link
    assert not _offered(subject)  # the first answer was kept (its margin is 0.0053 off)


# ---------------------------------------------------------------- image layout of a file subject
IMAGE_FACTORY = '''
import torch


class Flat(torch.nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(*shape, generator=torch.Generator().manual_seed(0)))

    def forward(self, x):
        return (x * self.w).sum((1, 2, 3))[:, None]


class Conv(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 1, 1)

    def forward(self, x):
        return self.conv(x).sum((1, 2, 3))[:, None]


def last():
    return Flat((4, 6, 3))


def conv():
    return Conv()
'''


def _image_spec(tmp_path: Path, factory: str, shape: tuple[int, ...], channels: str | None = None) -> Any:
    (tmp_path / "img51v.py").write_text(IMAGE_FACTORY, encoding="utf-8")
    x = np.random.default_rng(0).random((2, *shape)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    return file_spec(f"{tmp_path / 'img51v.py'}:{factory}", data=str(tmp_path / "x.npy"),
                     channels=channels), x


def test_an_image_file_that_reads_two_ways_needs_channels(tmp_path: Path) -> None:
    from tribute.errors import InputError

    spec, x = _image_spec(tmp_path, "last", (4, 6, 3))
    with pytest.raises(InputError, match="--channels first or --channels last"):
        spec.get()  # read channels-first before: 6x3 maps summed over each image's rows
    spec, x = _image_spec(tmp_path, "last", (4, 6, 3), channels="last")
    subject = spec.get()
    assert subject.channels_last
    values = compute._explain(subject, 0, "input_x_gradient", {}, None, 0).values.detach().numpy()
    truth = (subject.model.w.detach().numpy() * x[0]).sum(-1)  # w * x, channels summed
    np.testing.assert_allclose(np.asarray(compute._display(subject, values)["values"]), truth, rtol=1e-5)


def test_channels_that_contradict_the_models_convolution_are_refused(tmp_path: Path) -> None:
    from tribute.errors import InputError

    spec, _ = _image_spec(tmp_path, "conv", (3, 4, 4))
    assert not spec.get().channels_last  # the Conv2d reads the first axis: no flag needed
    spec, _ = _image_spec(tmp_path, "conv", (3, 4, 4), channels="last")
    with pytest.raises(InputError, match="reads these 3 x 4 x 4 inputs as channels first"):
        spec.get()
    with pytest.raises(InputError, match="--channels 'middle'"):
        _image_spec(tmp_path, "conv", (3, 4, 4), channels="middle")


def test_serve_passes_channels_and_refuses_it_without_a_model(tmp_path: Path) -> None:
    from tribute.errors import InputError
    from tribute.explorer import build_config

    (tmp_path / "img51v.py").write_text(IMAGE_FACTORY, encoding="utf-8")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((2, 4, 6, 3)).astype(np.float32))
    config = build_config(model=f"{tmp_path / 'img51v.py'}:last", data=str(tmp_path / "x.npy"),
                          channels="last")
    assert config.subjects[0].get().channels_last
    with pytest.raises(InputError, match="--channels needs --model"):
        build_config(channels="last")
