"""The last-layer head: a linear softmax classifier on embeddings.

The paper fine-tunes only the last layer of ResNet-18 with the labels that
active learning gathers; :class:`LastLayerHead` is that layer, trained on the
cached embeddings ``[N, d]`` of whichever backbone produced them.

It is a small scikit-learn-like estimator (``fit`` / ``predict_proba`` /
``predict`` / ``evaluate``): full-batch L-BFGS (default) or Adam on mean
cross-entropy plus an L2 penalty on the weights. Features are standardized
internally. Training starts from zeros, so a fit is deterministic; with
``warm_start=True`` a refit starts from the previous weights, which is how the
active-learning rounds fine-tune the head.

L-BFGS runs scipy's L-BFGS-B on a numpy objective with an analytic gradient;
Adam runs in torch. A head is tiny (``C x d`` weights), so per-call overhead
dominates: numpy/scipy cost microseconds per step where torch's autograd and its
OpenMP pool cost far more, and on a busy 2-core machine torch's thread barriers
made a round's fit 50x slower. Both paths are deterministic.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .._validation import check_count, check_matrix, check_random_state
from ..errors import InputError, ModelError

_SOLVERS = ("lbfgs", "adam")


@contextlib.contextmanager
def limit_threads(threads: int | None) -> Iterator[None]:
    """Limit BLAS (and, if loaded, torch) threads inside the block; ``None``: no change."""
    if threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with (
        threadpool_limits(limits=int(threads)),
        torch_threads(threads) if "torch" in sys.modules else contextlib.nullcontext(),
    ):
        yield


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(threads)``, then restore the old value.

    ``None`` leaves torch's thread policy alone (the caller's choice).
    """
    if threads is None:
        yield
        return
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _is_f32(X: Any) -> bool:
    return isinstance(X, np.ndarray) and X.dtype == np.float32


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


class LastLayerHead:
    """Linear softmax classifier over embeddings, the layer active learning fine-tunes.

    Parameters
    ----------
    classes : int or sequence of labels, optional
        The label set. An int ``C`` means labels ``0 .. C-1``. Every class gets a
        probability column even when no labeled item has it yet, so ``predict_proba``
        always returns ``[N, C]``. When omitted, ``fit`` takes ``classes=`` or, failing
        that, the distinct values of ``y``.
    weight_decay : float, default 1e-2
        L2 penalty ``weight_decay / 2 * ||W||^2`` added to the mean cross-entropy
        (the bias is not penalised). Features are standardized first, so one value
        suits most backbones.
    solver : {"lbfgs", "adam"}, default "lbfgs"
        Full-batch L-BFGS with a strong-Wolfe line search, or full-batch Adam.
    max_iter : int, default 200
        L-BFGS iterations, or Adam steps.
    lr : float, default 0.05
        Adam learning rate (L-BFGS uses its line search).
    tol : float, default 1e-6
        L-BFGS stops when the largest gradient entry falls below ``tol``.
    dropout : float, default 0.2
        Probability of dropping an input feature in :meth:`predict_proba_mc`
        (MC dropout for BALD-style strategies). In ``[0, 1)``.
    standardize : bool, default True
        Centre and scale each feature (statistics from ``standardize_on`` or ``X``).
    warm_start : bool, default True
        Start each refit from the previous weights (same classes and features).
    seed : int, default 0
        Seeds the default generator of :meth:`predict_proba_mc`.
    threads : int, optional
        BLAS/torch threads during ``fit``; ``None`` leaves the caller's setting.

    Attributes
    ----------
    classes_ : ndarray of shape (C,)
    coef_ : ndarray of shape (C, d)
        Weights over standardized features.
    intercept_ : ndarray of shape (C,)
    mean_, scale_ : ndarray of shape (d,)
        Standardization statistics (zeros and ones when ``standardize=False``).
    n_features_in_ : int
    n_iter_ : int
        Optimizer iterations of the last fit.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0, 0.0], [0.1, 0.0], [3.0, 3.0], [3.1, 3.0]])
    >>> head = LastLayerHead(classes=3).fit(X, [0, 0, 1, 1])
    >>> head.predict_proba(X).shape
    (4, 3)
    >>> head.predict(X).tolist()
    [0, 0, 1, 1]
    """

    def __init__(
        self,
        classes: int | Sequence[Any] | np.ndarray | None = None,
        *,
        weight_decay: float = 1e-2,
        solver: str = "lbfgs",
        max_iter: int = 200,
        lr: float = 0.05,
        tol: float = 1e-6,
        dropout: float = 0.2,
        standardize: bool = True,
        warm_start: bool = True,
        seed: int = 0,
        threads: int | None = None,
    ) -> None:
        if solver not in _SOLVERS:
            raise InputError(f"solver must be one of {_SOLVERS}; got {solver!r}.")
        if not (isinstance(weight_decay, (int, float)) and weight_decay >= 0):
            raise InputError(f"weight_decay must be a float >= 0; got {weight_decay!r}.")
        if not (isinstance(lr, (int, float)) and lr > 0):
            raise InputError(f"lr must be a float > 0; got {lr!r}.")
        if not (isinstance(tol, (int, float)) and tol >= 0):
            raise InputError(f"tol must be a float >= 0; got {tol!r}.")
        if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
            raise InputError(f"dropout must be a float in [0, 1); got {dropout!r}.")
        self.classes = None if classes is None else _check_classes(classes, name="classes")
        self.weight_decay = float(weight_decay)
        self.solver = solver
        self.max_iter = check_count(max_iter, name="max_iter", minimum=1)
        self.lr = float(lr)
        self.tol = float(tol)
        self.dropout = float(dropout)
        self.standardize = bool(standardize)
        self.warm_start = bool(warm_start)
        self.seed = check_count(seed, name="seed")
        self.threads = None if threads is None else check_count(threads, name="threads", minimum=1)

    def __repr__(self) -> str:
        n = "?" if self.classes is None else len(self.classes)
        return (
            f"LastLayerHead(classes={n}, solver={self.solver!r}, "
            f"weight_decay={self.weight_decay}, max_iter={self.max_iter})"
        )

    # ------------------------------------------------------------------ fitting
    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` has run."""
        return hasattr(self, "coef_")

    def fit(
        self,
        X: Any,
        y: Any,
        *,
        classes: int | Sequence[Any] | np.ndarray | None = None,
        standardize_on: Any = None,
    ) -> LastLayerHead:
        """Train the head on labeled embeddings.

        Parameters
        ----------
        X : array-like of shape (n, d)
            Embeddings of the labeled items.
        y : array-like of shape (n,)
            Their labels, each one of the classes.
        classes : int or sequence, optional
            Overrides the label set given at construction.
        standardize_on : array-like of shape (m, d), optional
            Rows whose mean and standard deviation define the feature scaling,
            typically the whole pool (labeled and unlabeled). Default: ``X``.
            With few labels the pool gives far steadier statistics.

        Returns
        -------
        self : LastLayerHead
        """
        X = check_matrix(X, name="X")
        n, d = X.shape
        if n == 0:
            raise InputError("X has no rows; label at least one item before fitting the head.")
        y_arr = np.asarray(y)
        if y_arr.ndim != 1 or y_arr.shape[0] != n:
            raise InputError(
                f"y must be 1-D with one label per row of X ({n}); got shape {y_arr.shape}."
            )
        if classes is not None:
            cls = _check_classes(classes, name="classes")
        elif self.classes is not None:
            cls = self.classes
        else:
            cls = np.unique(y_arr)
        y_idx = _encode(y_arr, cls)
        n_classes = len(cls)

        if self.standardize:
            ref = (
                X if standardize_on is None else check_matrix(standardize_on, name="standardize_on")
            )
            if ref.shape[1] != d:
                raise InputError(
                    f"standardize_on must have {d} columns like X; got shape {ref.shape}."
                )
            mean = ref.mean(axis=0)
            scale = ref.std(axis=0)
            scale[scale < 1e-12] = 1.0
        else:
            mean = np.zeros(d)
            scale = np.ones(d)

        w0 = np.zeros((n_classes, d))
        b0 = np.zeros(n_classes)
        warm = (
            self.warm_start
            and self.is_fitted
            and self.n_features_in_ == d
            and len(self.classes_) == n_classes
            and np.array_equal(self.classes_, cls)
        )
        if warm:
            # Re-express the previous model in the new standardization, exactly:
            # W'(x - m')/s' + b' == W(x - m)/s + b.
            w0 = self.coef_ * (scale / self.scale_)
            b0 = self.intercept_ + self.coef_ @ ((mean - self.mean_) / self.scale_)

        Z = (X - mean) / scale
        with limit_threads(self.threads):
            coef, intercept, n_iter = self._optimize(Z, y_idx, w0, b0)
        if not (np.isfinite(coef).all() and np.isfinite(intercept).all()):
            raise ModelError(
                "the head's training diverged (non-finite weights); lower lr, raise "
                "weight_decay, or check the embeddings for extreme values."
            )
        self.classes_ = cls
        self.mean_ = mean
        self.scale_ = scale
        self.coef_ = coef
        self.intercept_ = intercept
        self.n_features_in_ = d
        self.n_iter_ = n_iter
        return self

    def _optimize(
        self, Z: np.ndarray, y_idx: np.ndarray, w0: np.ndarray, b0: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """Minimise mean cross-entropy + L2 from (w0, b0); inputs are trusted."""
        if self.solver == "lbfgs":
            return _fit_lbfgs(Z, y_idx, w0, b0, self.weight_decay, self.max_iter, self.tol)
        return _fit_adam(Z, y_idx, w0, b0, self.weight_decay, self.max_iter, self.lr)

    # --------------------------------------------------------------- prediction
    def _check_X(self, X: Any, dtype: Any = np.float64) -> np.ndarray:
        if not self.is_fitted:
            raise ModelError(
                "this LastLayerHead is not fitted yet; call fit(X, y) with labeled "
                "embeddings first."
            )
        X = check_matrix(X, name="X", dtype=dtype)
        if X.shape[1] != self.n_features_in_:
            raise InputError(
                f"X has {X.shape[1]} features but the head was fitted on "
                f"{self.n_features_in_}; embed with the same backbone."
            )
        return X

    def decision_function(self, X: Any) -> np.ndarray:
        """Logits, shape ``(n, C)``.

        The standardization is folded into the weights (``W / scale``, ``b - W·mean/scale``)
        and float32 embeddings stay float32, so scoring a large pool costs one matrix
        product and no standardized copy of it.
        """
        X = self._check_X(X, dtype=np.float32 if _is_f32(X) else np.float64)
        W = self.coef_ / self.scale_
        b = self.intercept_ - W @ self.mean_
        return (X @ W.T.astype(X.dtype, copy=False)).astype(np.float64) + b

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities.

        Parameters
        ----------
        X : array-like of shape (n, d)

        Returns
        -------
        probs : ndarray of shape (n, C), float64
            Rows sum to 1; column ``j`` is ``classes_[j]``.
        """
        return _softmax(self.decision_function(X))

    def predict_proba_mc(self, X: Any, T: int = 20, rng: Any = None) -> np.ndarray:
        """Monte-Carlo dropout probabilities (input-feature dropout), for BALD.

        Each sample drops every standardized feature with probability ``dropout``
        (dropped features sit at the pool mean) and rescales the rest by
        ``1 / (1 - dropout)``.

        Parameters
        ----------
        X : array-like of shape (n, d)
        T : int, default 20
            Number of samples, >= 1.
        rng : None, int or numpy.random.Generator
            Source of the dropout masks; ``None`` uses ``seed``.

        Returns
        -------
        probs : ndarray of shape (T, n, C), float64
        """
        X = self._check_X(X)
        T = check_count(T, name="T", minimum=1)
        rng = check_random_state(self.seed if rng is None else rng)
        Z = (X - self.mean_) / self.scale_
        keep = 1.0 - self.dropout
        out = np.empty((T, X.shape[0], len(self.classes_)))
        for t in range(T):
            mask = rng.random(Z.shape, dtype=np.float32) < keep
            out[t] = _softmax((Z * mask / keep) @ self.coef_.T + self.intercept_)
        return out

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class label per row, shape ``(n,)``."""
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]

    def evaluate(self, X: Any, y: Any) -> dict[str, float]:
        """Top-1 and top-k accuracy on labeled data.

        Parameters
        ----------
        X : array-like of shape (n, d)
        y : array-like of shape (n,)

        Returns
        -------
        dict
            ``top1`` and ``top5`` (fractions in [0, 1]; top-5 counts a hit when the
            label is among the ``min(5, C)`` most probable classes) and ``n``.
        """
        logits = self.decision_function(X)
        y_arr = np.asarray(y)
        if y_arr.ndim != 1 or y_arr.shape[0] != logits.shape[0]:
            raise InputError(
                f"y must be 1-D with one label per row of X ({logits.shape[0]}); "
                f"got shape {y_arr.shape}."
            )
        if y_arr.shape[0] == 0:
            raise InputError("X and y are empty; evaluate needs at least one labeled item.")
        y_idx = _encode(y_arr, self.classes_)
        k = min(5, logits.shape[1])
        order = np.argsort(-logits, axis=1, kind="stable")
        top1 = float(np.mean(order[:, 0] == y_idx))
        topk = float(np.mean((order[:, :k] == y_idx[:, None]).any(axis=1)))
        return {"top1": top1, "top5": topk, "n": int(y_arr.shape[0])}


def _loss_and_grad(
    theta: np.ndarray, Z: np.ndarray, y_idx: np.ndarray, n_classes: int, wd: float
) -> tuple[float, np.ndarray]:
    """Mean cross-entropy + ``wd/2 ||W||^2`` and its gradient, ``theta = [W.ravel(), b]``."""
    n, d = Z.shape
    W = theta[: n_classes * d].reshape(n_classes, d)
    b = theta[n_classes * d :]
    logits = Z @ W.T + b
    logits -= logits.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(logits).sum(axis=1))
    rows = np.arange(n)
    loss = float(np.mean(log_norm - logits[rows, y_idx])) + 0.5 * wd * float(np.sum(W * W))
    G = np.exp(logits - log_norm[:, None])  # softmax
    G[rows, y_idx] -= 1.0
    G /= n
    grad_w = G.T @ Z + wd * W
    return loss, np.concatenate([grad_w.ravel(), G.sum(axis=0)])


def _fit_lbfgs(
    Z: np.ndarray,
    y_idx: np.ndarray,
    w0: np.ndarray,
    b0: np.ndarray,
    wd: float,
    max_iter: int,
    tol: float,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Full-batch L-BFGS (scipy's L-BFGS-B, no bounds) on the numpy objective."""
    from scipy.optimize import minimize

    n_classes, d = w0.shape
    res = minimize(
        _loss_and_grad,
        np.concatenate([w0.ravel(), b0]),
        args=(np.ascontiguousarray(Z), y_idx, n_classes, wd),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iter, "gtol": tol, "ftol": 1e-12, "maxcor": 20},
    )
    theta = res.x
    return (
        theta[: n_classes * d].reshape(n_classes, d).copy(),
        theta[n_classes * d :].copy(),
        int(res.nit),
    )


def _fit_adam(
    Z: np.ndarray,
    y_idx: np.ndarray,
    w0: np.ndarray,
    b0: np.ndarray,
    wd: float,
    max_iter: int,
    lr: float,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Full-batch Adam in torch (float64)."""
    import torch
    import torch.nn.functional as F

    Zt = torch.from_numpy(np.ascontiguousarray(Z))
    yt = torch.from_numpy(y_idx.astype(np.int64))
    W = torch.tensor(w0, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(b0, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([W, b], lr=lr)
    for _ in range(max_iter):
        opt.zero_grad()
        loss = F.cross_entropy(torch.addmm(b, Zt, W.T), yt) + 0.5 * wd * (W * W).sum()
        loss.backward()
        opt.step()
    return W.detach().numpy().copy(), b.detach().numpy().copy(), max_iter


def _check_classes(classes: Any, *, name: str) -> np.ndarray:
    if isinstance(classes, (int, np.integer)) and not isinstance(classes, bool):
        if classes < 2:
            raise InputError(f"{name} must give at least 2 classes; got {classes}.")
        return np.arange(int(classes))
    arr = np.asarray(classes)
    if arr.ndim != 1 or arr.shape[0] < 2:
        raise InputError(
            f"{name} must be an int >= 2 or a 1-D sequence of at least 2 labels; got {classes!r}."
        )
    if len(np.unique(arr)) != arr.shape[0]:
        raise InputError(f"{name} has repeated labels: {arr.tolist()!r}; list each class once.")
    return arr


def _encode(y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Map labels to column indices of ``classes``; unknown labels raise InputError."""
    uniq, inverse = np.unique(y, return_inverse=True)
    lookup = {c.item() if hasattr(c, "item") else c: i for i, c in enumerate(classes)}
    codes = np.empty(len(uniq), dtype=np.int64)
    for j, u in enumerate(uniq):
        key = u.item() if hasattr(u, "item") else u
        if key not in lookup:
            raise InputError(
                f"y contains the label {key!r}, which is not one of the classes "
                f"{classes.tolist()!r}; pass classes= with every label."
            )
        codes[j] = lookup[key]
    return codes[inverse.reshape(-1)]
