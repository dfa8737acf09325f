"""The last-layer head: a linear softmax classifier on embeddings.

The paper fine-tunes only the last layer of ResNet-18 with the labels that
active learning gathers; :class:`LastLayerHead` is that layer, trained on the
cached embeddings ``[N, d]`` of whichever backbone produced them.

It is a small scikit-learn-like estimator (``fit`` / ``predict_proba`` /
``predict`` / ``evaluate``): full-batch L-BFGS (default), truncated Newton
(``"newton-cg"``) or Adam on mean cross-entropy plus an L2 penalty on the
weights. Features are standardized internally. Training starts from zeros, so
a fit is deterministic; with
``warm_start=True`` a refit starts from the previous weights, which is how the
active-learning rounds fine-tune the head.

L-BFGS runs scipy's L-BFGS-B on a numpy objective with an analytic gradient;
Newton-CG is a numpy truncated Newton method (conjugate gradients on exact
Hessian-vector products, Armijo line search): it stops at the same gradient
tolerance in a handful of iterations, and its few array operations per step cost
less than L-BFGS-B's bookkeeping, so a round's refits are several times faster
(what a PSHEA round, fitting one head per candidate, uses). Adam runs in torch.
A head is tiny (``C x d`` weights), so per-call overhead dominates: numpy/scipy
cost microseconds per step where torch's autograd and its OpenMP pool cost far
more, and on a busy 2-core machine torch's thread barriers made a round's fit
50x slower. Every solver is deterministic.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .._validation import check_count, check_matrix, check_random_state
from ..errors import InputError, ModelError

_SOLVERS = ("lbfgs", "newton-cg", "adam")
_MC_ROWS = 1024  # rows per block of MC-dropout masks (fits in cache)


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
    """Softmax over the last axis; a float64 array is transformed in place and returned."""
    z = logits
    z -= z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


class _KeepMask:
    """Dropout keep-masks, exactly ``rng.random(shape, dtype=np.float32) < keep``.

    numpy draws a float32 as ``(u >> 8) * 2**-24`` from the next 32 random bits
    ``u`` (PCG64 hands out each 64-bit output as its low then its high half),
    so the mask is ``u < threshold`` on the same bits. For a PCG64 generator
    (``numpy.random.default_rng``) those are read in bulk with
    ``random_raw``, about three times faster than drawing floats; the state is
    left exactly as the float draw would leave it. Other generators draw
    floats.
    """

    def __init__(self, rng: np.random.Generator, keep: float):
        self.rng, self.keep = rng, keep
        self.fast = (type(rng.bit_generator) is np.random.PCG64 and sys.byteorder == "little"
                     and 0.0 < keep < 1.0)
        if self.fast:
            # the number of 24-bit values m with float32(m * 2**-24) < keep, found with
            # numpy's own comparison (a float32 array against a Python float)
            lo, hi = 0, 2**24
            unit = np.float32(2.0**-24)
            while lo < hi:
                m = (lo + hi) // 2
                if (np.array([m], dtype=np.float32) * unit < keep)[0]:
                    lo = m + 1
                else:
                    hi = m
            self.threshold = np.uint32(lo << 8)

    def _bits(self, count: int) -> np.ndarray:
        """The next ``count`` 32-bit outputs, in the order ``next_uint32`` gives them."""
        bg = self.rng.bit_generator
        out = np.empty(count, dtype=np.uint32)
        st = bg.state
        i = 0
        if st["has_uint32"]:  # a high half left over from an earlier 32-bit draw
            out[0] = st["uinteger"]
            i = 1
            st["has_uint32"] = 0
            bg.state = st
        rest = count - i
        if rest:
            halves = bg.random_raw((rest + 1) // 2).view(np.uint32)
            out[i:] = halves[:rest]
            if rest % 2:  # keep the unused high half for the next draw, as numpy does
                st = bg.state
                st["has_uint32"], st["uinteger"] = 1, int(halves[rest])
                bg.state = st
        return out

    def __call__(self, rows: int, d: int) -> np.ndarray:
        if not self.fast:
            return self.rng.random((rows, d), dtype=np.float32) < self.keep
        return (self._bits(rows * d) < self.threshold).reshape(rows, d)


def _stats(ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation (1 where the feature is constant)."""
    mean = ref.mean(axis=0, dtype=np.float64)
    scale = ref.std(axis=0, dtype=np.float64)
    scale[scale < 1e-12] = 1.0
    return mean, scale


def feature_stats(X: Any) -> tuple[np.ndarray, np.ndarray]:
    """The standardization statistics ``(mean, scale)`` that ``fit`` derives from ``X``.

    Parameters
    ----------
    X : array-like of shape (n, d)
        Typically the whole pool.

    Returns
    -------
    mean, scale : ndarray of shape (d,), float64
        ``scale`` is the standard deviation, 1 for constant features. Pass them
        as ``LastLayerHead.fit(..., stats=(mean, scale))``.
    """
    X = check_matrix(X, name="X")  # float64, as fit converts standardize_on: same numbers
    if X.shape[0] == 0:
        raise InputError("X has no rows; feature_stats needs at least one.")
    return _stats(X)


def _check_stats(stats: Any, d: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        mean, scale = stats
    except (TypeError, ValueError):
        raise InputError("stats must be a pair (mean, scale) of arrays of shape (n_features,), "
                         "as feature_stats(pool) returns.") from None
    mean = check_matrix(mean, name="stats mean", ndim=1)
    scale = check_matrix(scale, name="stats scale", ndim=1)
    if mean.shape != (d,) or scale.shape != (d,):
        raise InputError(f"stats must hold two arrays of shape ({d},) like X's columns; got "
                         f"{mean.shape} and {scale.shape}.")
    if (scale <= 0).any():
        raise InputError("stats scale must be > 0 everywhere (feature_stats sets constant "
                         "features to 1).")
    return mean, scale


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
    solver : {"lbfgs", "newton-cg", "adam"}, default "lbfgs"
        Full-batch L-BFGS (scipy's L-BFGS-B), truncated Newton with conjugate
        gradients (numpy; the fastest for repeated refits), or full-batch Adam.
        L-BFGS and Newton-CG stop at the same gradient tolerance ``tol``, so they
        reach the same optimum up to it.
    max_iter : int, default 200
        L-BFGS or Newton iterations, or Adam steps.
    lr : float, default 0.05
        Adam learning rate (L-BFGS uses its line search).
    tol : float, default 1e-6
        L-BFGS and Newton-CG stop when the largest gradient entry falls below ``tol``.
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
        stats: tuple[np.ndarray, np.ndarray] | None = None,
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
        stats : (mean, scale), optional
            The standardization statistics themselves, arrays of shape ``(d,)``,
            as :func:`feature_stats` computes them from ``standardize_on``: a
            caller that fits many heads on one pool computes them once. Not
            with ``standardize_on``.

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

        if stats is not None and standardize_on is not None:
            raise InputError("pass standardize_on= or stats=, not both; stats are the "
                             "statistics of standardize_on (feature_stats(standardize_on)).")
        if self.standardize and stats is not None:
            mean, scale = _check_stats(stats, d)
        elif self.standardize:
            ref = (
                X if standardize_on is None else check_matrix(standardize_on, name="standardize_on")
            )
            if ref.shape[1] != d:
                raise InputError(
                    f"standardize_on must have {d} columns like X; got shape {ref.shape}."
                )
            mean, scale = _stats(ref)
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
        if self.solver == "newton-cg":
            return _fit_newton(Z, y_idx, w0, b0, self.weight_decay, self.max_iter, self.tol)
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
        X = self._check_X(X, dtype=np.float32 if _is_f32(X) else np.float64)
        T = check_count(T, name="T", minimum=1)
        rng = check_random_state(self.seed if rng is None else rng)
        keep = 1.0 - self.dropout
        # (Z * mask / keep) @ coef.T with Z = (X - mean) / scale, folded: the
        # centred pool stays in X's dtype and the scaling goes into the weights
        Xc = X - self.mean_.astype(X.dtype)
        Wt = (self.coef_ / self.scale_).T.astype(X.dtype)
        n, d = X.shape
        out = np.empty((T, n, len(self.classes_)))
        buf = np.empty((min(n, _MC_ROWS), d), dtype=X.dtype)
        draw = _KeepMask(rng, keep)
        for t in range(T):
            # masks drawn row block after row block: the same stream as one (n, d) draw
            for r0 in range(0, n, _MC_ROWS):
                r1 = min(n, r0 + _MC_ROWS)
                part = np.multiply(Xc[r0:r1], draw(r1 - r0, d), out=buf[: r1 - r0])
                out[t, r0:r1] = part @ Wt
            out[t] /= keep
            out[t] += self.intercept_
            _softmax(out[t])
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


def _fit_newton(
    Z: np.ndarray,
    y_idx: np.ndarray,
    w0: np.ndarray,
    b0: np.ndarray,
    wd: float,
    max_iter: int,
    tol: float,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Truncated Newton: CG on exact Hessian-vector products, Armijo backtracking.

    Stops when the largest gradient entry is at most ``tol`` (L-BFGS-B's test)
    or after ``max_iter`` Newton steps. Each CG step costs two ``n x d x C``
    products (in float32: CG only needs an approximate direction); CG is
    preconditioned by the Hessian's diagonal, and its tolerance tightens as the
    gradient shrinks (``min(0.5, sqrt(|g|)) |g|``), so convergence is
    superlinear. The gradient, the line search and the stopping test are float64.
    """
    Z = np.ascontiguousarray(Z)
    n = Z.shape[0]
    n_classes = w0.shape[0]
    rows = np.arange(n)
    Y = np.zeros((n, n_classes))
    Y[rows, y_idx] = 1.0

    def value_grad(W: np.ndarray, b: np.ndarray):
        L = Z @ W.T + b
        L -= L.max(axis=1, keepdims=True)
        lse = np.log(np.exp(L).sum(axis=1))
        loss = float(np.mean(lse - L[rows, y_idx])) + 0.5 * wd * float(np.sum(W * W))
        P = np.exp(L - lse[:, None])
        G = (P - Y) / n
        return loss, G.T @ Z + wd * W, G.sum(axis=0), P

    W, b = w0.astype(np.float64, copy=True), b0.astype(np.float64, copy=True)
    loss, gW, gb, P = value_grad(W, b)
    Z2 = Z * Z
    # CG only needs an approximate Newton direction: its Hessian products run in float32
    # (half the memory traffic); the gradient and the stopping test stay float64
    Z32 = Z.astype(np.float32)
    it = 0
    while it < max_iter and max(np.abs(gW).max(), np.abs(gb).max()) > tol:
        it += 1
        gnorm = float(np.sqrt(np.sum(gW * gW) + np.sum(gb * gb)))
        target = min(0.5, np.sqrt(gnorm)) * gnorm
        # Jacobi preconditioner: the Hessian's diagonal, sum_i p_ic (1 - p_ic) z_ij^2 / n + wd
        S = P * (1.0 - P) / n
        MW = S.T @ Z2 + wd
        Mb = S.sum(axis=0)
        MW[MW <= 0.0] = 1.0
        Mb[Mb <= 0.0] = 1.0
        pW, pb = np.zeros_like(W), np.zeros_like(b)
        rW, rb = -gW, -gb
        dW, db = rW / MW, rb / Mb
        rz = float(np.sum(rW * dW) + np.sum(rb * db))
        for _ in range(max(10, 2 * Z.shape[1])):
            A = Z32 @ dW.T.astype(np.float32) + db  # Hessian-vector product, (n, C)
            R = P * (A - np.sum(P * A, axis=1, keepdims=True))
            R /= n
            hW, hb = (R.T.astype(np.float32) @ Z32) + wd * dW, R.sum(axis=0)
            curv = float(np.sum(dW * hW) + np.sum(db * hb))
            if curv <= 0.0:  # flat direction (no weight decay): take what we have
                if not pW.any() and not pb.any():
                    pW, pb = dW, db
                break
            alpha = rz / curv
            pW += alpha * dW
            pb += alpha * db
            rW -= alpha * hW
            rb -= alpha * hb
            if np.sqrt(np.sum(rW * rW) + np.sum(rb * rb)) <= target:
                break
            zW, zb = rW / MW, rb / Mb
            rz_new = float(np.sum(rW * zW) + np.sum(rb * zb))
            dW *= rz_new / rz
            dW += zW
            db *= rz_new / rz
            db += zb
            rz = rz_new
        slope = float(np.sum(gW * pW) + np.sum(gb * pb))
        if not slope < 0.0:  # pragma: no cover - CG always returns a descent direction
            pW, pb, slope = -gW, -gb, -gnorm * gnorm
        step = 1.0
        while True:
            Wn, bn = W + step * pW, b + step * pb
            new = value_grad(Wn, bn)
            if new[0] <= loss + 1e-4 * step * slope or step < 1e-10:
                break
            step *= 0.5
        if step < 1e-10 and new[0] > loss:  # no progress possible in floating point
            break
        W, b = Wn, bn
        loss, gW, gb, P = new
    return W, b, it


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
