"""DataFrames with categorical columns through the user's own Pipeline: one player per column."""

from __future__ import annotations

import numpy as np
import pytest

import tribute
from tribute.errors import InputError

pd = pytest.importorskip("pandas")
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n = 300
    df = pd.DataFrame({
        "age": rng.integers(18, 80, n),
        "income": rng.normal(50, 15, n),
        "city": rng.choice(["paris", "lyon", "nice"], n),
        "plan": pd.Categorical(rng.choice(["a", "b"], n)),
    }, index=[f"id{i}" for i in range(n)])
    y = ((df.city == "paris") ^ (df.income > 50)).astype(int)
    pre = ColumnTransformer([("cat", OneHotEncoder(), ["city", "plan"]),
                             ("num", StandardScaler(), ["age", "income"])])
    pipe = make_pipeline(pre, LogisticRegression(max_iter=500)).fit(df, y)
    return df, pipe


def test_one_player_per_original_column_and_exact_efficiency(data):
    df, pipe = data
    bg = tribute.Background(df[100:120])
    attr = tribute.explain(pipe, df[:4], method="exact_shapley", baseline=bg, target=1)
    assert attr.player_names == ["age", "income", "city", "plan"]
    p = pipe.predict_proba(df[:4])[:, 1]
    base = pipe.predict_proba(df[100:120])[:, 1].mean()
    np.testing.assert_allclose(attr.values.sum(1), p - base, atol=1e-10)
    frame = attr.to_pandas()
    assert list(frame.index) == list(df.index[:4]) and list(frame.columns) == attr.player_names


def test_single_reference_row_replaces_whole_column(data):
    df, pipe = data
    ref = df.iloc[200]
    attr = tribute.explain(pipe, df[:3], method="feature_ablation", baseline=ref, target=1)
    for i in range(3):
        for j, col in enumerate(df.columns):
            row = df.iloc[[i]].copy()
            row[col] = ref[col] if col != "plan" else pd.Categorical([ref[col]], categories=df["plan"].cat.categories)
            want = pipe.predict_proba(df.iloc[[i]])[0, 1] - pipe.predict_proba(row)[0, 1]
            assert attr.values[i, j] == pytest.approx(want, abs=1e-10)


def test_categorical_frames_bad_input(data):
    df, pipe = data
    with pytest.raises(InputError, match="baseline"):
        tribute.explain(pipe, df[:2], method="feature_ablation", baseline=np.zeros(4))
    other = df[100:110].copy()
    other["city"] = "tokyo"
    # unseen categories in the baseline are fine for the codec but the pipeline's encoder refuses
    with pytest.raises(Exception):  # noqa: B017 - the user's pipeline raises its own error
        tribute.explain(pipe, df[:2], method="feature_ablation", baseline=tribute.Background(other))
    missing = df[:3].copy()
    missing.loc[missing.index[0], "city"] = None
    with pytest.raises(InputError, match="missing values"):
        tribute.explain(pipe, missing, method="feature_ablation", baseline=tribute.Background(df[100:110]))
