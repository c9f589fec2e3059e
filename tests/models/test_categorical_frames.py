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


def _enumerate_columns(fn, x_row, base_rows, cols):
    """Exact interventional Shapley by hand: for every coalition, the background rows with the
    coalition's columns set to the explained row's values (as DataFrames of the user's dtypes)."""
    import itertools
    import math

    n = len(cols)
    v = {}
    for s in itertools.product((0, 1), repeat=n):
        fr = base_rows.copy()
        for c, keep in zip(cols, s):
            if keep:
                fr[c] = x_row[c]
        v[s] = float(np.mean(fn(fr.reset_index(drop=True))))
    phi = np.zeros(n)
    for s, val in v.items():
        k = sum(s)
        for i in range(n):
            if not s[i]:
                t = tuple(1 if j == i else s[j] for j in range(n))
                phi[i] += math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n) * (v[t] - val)
    return phi


def test_columns_keep_their_dtypes_through_the_decoder():
    """Nullable Int64, string, bool and datetime columns reach the model with their own dtypes
    (a nullable integer column crashed the decoder; datetime columns arrived as object arrays,
    so `.dt` failed; bool columns as 0.0/1.0), and the values equal enumeration by hand."""
    rng = np.random.default_rng(3)
    n = 40
    df = pd.DataFrame({
        "income": rng.normal(50, 15, n),
        "age": pd.array(rng.integers(18, 80, n), dtype="Int64"),
        "city": pd.array(rng.choice(["paris", "lyon"], n), dtype="string"),
        "member": rng.random(n) < 0.4,
        "when": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D"),
    })
    seen = []

    def model(d):
        seen.append(dict(d.dtypes))
        return (0.01 * d["income"].to_numpy() + 0.02 * d["age"].to_numpy(dtype=float)
                + 1.5 * d["member"].to_numpy(dtype=float) + (d["city"] == "paris").to_numpy(dtype=float)
                + 0.002 * (d["when"] - pd.Timestamp("2020-01-01")).dt.days.to_numpy())

    bg = df.iloc[20:28]
    attr = tribute.explain(model, df.iloc[:2], method="exact_shapley", baseline=tribute.Background(bg),
                           progress=False)
    assert all(s == dict(df.dtypes) for s in seen)
    for i in range(2):
        truth = _enumerate_columns(model, df.iloc[i], bg, list(df.columns))
        np.testing.assert_allclose(np.asarray(attr.values)[i], truth, rtol=1e-9, atol=1e-12)


def test_a_row_of_a_frame_with_bool_columns_is_a_baseline():
    """``df.iloc[k]`` of a numeric frame with a bool column is an object Series: it was refused
    as a 'non-numeric column' named by the row label."""
    rng = np.random.default_rng(4)
    df = pd.DataFrame({"income": rng.normal(size=60), "member": rng.random(60) < 0.5})
    y = (df.income + df.member > 0.5).astype(int)
    model = LogisticRegression().fit(df, y)
    attr = tribute.explain(model, df.iloc[:3], method="exact_shapley", baseline=df.iloc[50], target=1,
                           progress=False)
    for i in range(3):
        truth = _enumerate_columns(lambda d: model.predict_proba(d)[:, 1], df.iloc[i], df.iloc[[50]],
                                   ["income", "member"])
        np.testing.assert_allclose(np.asarray(attr.values)[i], truth, rtol=1e-9, atol=1e-12)
    with pytest.raises(InputError, match=r"non-numeric value\(s\) at \['member'\]"):
        bad = df.iloc[50].astype(object)
        bad["member"] = "yes"
        tribute.explain(model, df.iloc[:3], method="exact_shapley", baseline=bad, target=1, progress=False)


def test_groups_of_columns_by_name_or_position(data):
    """Groups of columns as players: ``{name: columns}`` or a list of column lists (a ragged
    list raised numpy's 'inhomogeneous shape' ValueError before); values equal enumeration
    over the groups by hand, names follow the groups."""
    import itertools
    import math

    df, pipe = data
    bg = df.iloc[100:112]
    groups = {"money": ["income", "age"], "place": ["city", "plan"]}
    attr = tribute.explain(pipe, df.iloc[:2], method="exact_shapley", baseline=tribute.Background(bg),
                           target=1, groups=groups, progress=False)
    assert attr.player_names == ["money", "place"]
    for i in range(2):
        v = {}
        for s in itertools.product((0, 1), repeat=2):
            fr = bg.copy()
            for keep, cols in zip(s, groups.values()):
                for c in cols if keep else ():
                    fr[c] = df.iloc[i][c]
            v[s] = float(pipe.predict_proba(fr)[:, 1].mean())
        truth = [0.5 * (v[1, 0] - v[0, 0]) + 0.5 * (v[1, 1] - v[0, 1]),
                 0.5 * (v[0, 1] - v[0, 0]) + 0.5 * (v[1, 1] - v[1, 0])]
        np.testing.assert_allclose(np.asarray(attr.values)[i], truth, rtol=1e-9, atol=1e-12)
        assert math.isclose(sum(truth), v[1, 1] - v[0, 0], rel_tol=1e-9)
    by_list = tribute.explain(pipe, df.iloc[:2], method="exact_shapley", baseline=tribute.Background(bg),
                              target=1, groups=[["income", "age"], ["city", "plan"]], progress=False)
    by_pos = tribute.explain(pipe, df.iloc[:2], method="exact_shapley", baseline=tribute.Background(bg),
                             target=1, groups=[[0, 1], [2], [3]], progress=False)
    np.testing.assert_allclose(np.asarray(by_list.values), np.asarray(attr.values), rtol=1e-12)
    assert by_list.player_names == ["income+age", "city+plan"]
    assert by_pos.player_names == ["age+income", "city", "plan"]
    for bad, match in (([["income"], ["city", "plan"]], "in no group"),
                       ([["income", "age", "city"], ["city", "plan"]], "two groups"),
                       ([["income", "age"], ["town", "plan"]], "not a column")):
        with pytest.raises(InputError, match=match):
            tribute.explain(pipe, df.iloc[:2], method="exact_shapley", baseline=tribute.Background(bg),
                            target=1, groups=bad, progress=False)
