"""rev44z: mislabel_auc on a regression whose y_train has shape (n, 1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

import tribute
from tribute.errors import InputError
from tribute.metrics import mislabel_auc


def test_mislabel_auc_takes_a_regression_y_train_of_one_column() -> None:
    # before: y_train of shape (n, 1) (an MSE model's natural labels) beside the game's (n,)
    # targets was refused as "targets differ from y_train at 20 of 20 examples ... Pass
    # target=y_train", though target=y_train was passed (BASE scored it 0.980)
    torch.manual_seed(0)
    n = 20
    X = torch.randn(n, 3)
    y = (X @ torch.tensor([1.0, -2.0, 0.5])).reshape(n, 1)
    y[:3] += 5.0  # three corrupted targets
    flip = np.zeros(n, dtype=bool)
    flip[:3] = True
    net = torch.nn.Linear(3, 1)
    data = tribute.TrainingData(X, y, loss="mse")
    attr = tribute.explain(net, X, target=y, output="loss", players=data, method="grad_dot")
    game = tribute.build_game(net, X, target=y, output="loss", players=data)
    truth = roc_auc_score(flip, np.abs(np.diag(attr.values.numpy().reshape(n, n))))
    assert mislabel_auc(game, attr, ground_truth=flip).extra["auc"] == pytest.approx(truth, abs=1e-12)
    # other targets are still refused
    other = y + 1.0
    attr2 = tribute.explain(net, X, target=other, output="loss", players=data, method="grad_dot")
    game2 = tribute.build_game(net, X, target=other, output="loss", players=data)
    with pytest.raises(InputError, match="differ from y_train at 20 of 20"):
        mislabel_auc(game2, attr2, ground_truth=flip)


@pytest.mark.parametrize("where", ["X_train", "inputs"])
def test_data_games_refuse_sparse_containers_like_feature_games(where: str) -> None:
    # before: a torch sparse X_train was taken and failed at the first gradient (aten::as_strided
    # on SparseCPU), sparse test points with "reshape is not implemented for sparse tensors"
    torch.manual_seed(0)
    X = torch.randn(10, 4)
    y = torch.randint(0, 2, (10,))
    net = torch.nn.Linear(4, 2)
    sparse = X.to_sparse()
    with pytest.raises(InputError, match=rf"{where} is a torch tensor with layout torch.sparse_coo.*{where}.to_dense\(\)"):
        if where == "X_train":
            data = tribute.TrainingData(sparse, y)
            tribute.explain(net, X, target=y, players=data, method="grad_dot")
        else:
            tribute.explain(net, sparse, target=y, players=tribute.TrainingData(X, y), method="grad_dot")
    # the advice works
    dense = tribute.TrainingData(sparse.to_dense(), y) if where == "X_train" else tribute.TrainingData(X, y)
    attr = tribute.explain(net, sparse.to_dense() if where == "inputs" else X, target=y, players=dense,
                           method="grad_dot")
    assert attr.values.shape == (10, 10)
