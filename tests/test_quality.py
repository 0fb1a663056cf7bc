"""Image quality: FID/KID, the tiny profile's feature net and its cache, the digit classifier on the judge set."""
import numpy as np
import pytest

from smplora_nb import config, data, duplicates, quality, sets


def test_fid_kid_near_zero_for_same_distribution_and_large_for_shifted():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(500, 8)), rng.normal(size=(500, 8))
    assert quality.fid_kid(a, a)["fid"] == pytest.approx(0.0, abs=1e-6)
    same = quality.fid_kid(a, b)
    assert same["fid"] < 0.5 and abs(same["kid"]) < 0.05
    far = quality.fid_kid(a, a + 1.0)
    assert far["fid"] == pytest.approx(8.0, rel=0.05)      # ||mu1 - mu2||^2 = 8, same covariance
    assert far["kid"] > 0.1


def test_feature_net_features_shape():
    net = quality.FeatureNet()
    f = net.features(np.zeros((5, 16, 16, 3), np.uint8))               # the 10 class logits (FeatureNet says why)
    assert f.shape == (5, 10) and np.isfinite(f).all()


def test_feature_net_is_trained_once_then_read_back_bit_for_bit(monkeypatch):
    """The extractor's digit CNN of one judge set is trained once per thread count; later notebooks read its
    safetensors file and get exactly the weights training gives."""
    items = data.load_dataset("digits", 16)[:96]
    fresh = quality.train_feature_net(items, epochs=2)
    first = quality.cached_feature_net(items, epochs=2)
    monkeypatch.setattr(quality, "train_feature_net", lambda *a, **k: pytest.fail("trained again"))
    again = quality.cached_feature_net(items, epochs=2)
    images = np.stack([it.image for it in items[:8]])
    assert np.array_equal(fresh.features(images), first.features(images))
    assert np.array_equal(first.features(images), again.features(images))


def test_the_judge_set_knows_every_class_and_no_private_image():
    """The quality features and the digit classifier are fitted on the judge set: every distinct image outside the
    four private sets, so with private classes it holds all ten digits and no member or non-member."""
    items = data.load_dataset("digits", 16)
    s = sets.make_splits(items, config.make("tiny").split)
    judge = sets.judge(items, s)
    private = {it.sha256 for k in sets.PRIVATE for it in s[k]}
    assert not private & {it.sha256 for it in judge} and {it.label for it in judge} == set(range(10))
    assert len(judge) == len(duplicates.dedupe(items)) - len(private) and set(map(id, s["public"])) <= set(map(id, judge))
    clf = quality.digit_classifier(judge[::3])
    real = s["member_te"]
    acc = quality.accuracy_by_domain(clf, [it.image for it in real], [it.label for it in real], {5, 6, 7, 8, 9})
    assert set(acc) == {"digit_accuracy_base_samples", "digit_accuracy_base_private_classes",   # no public caption
                        "n_base_private_classes"} and acc["n_base_private_classes"] == len(real)
    assert acc["digit_accuracy_base_private_classes"] > 0.8                   # it reads the private digits
    mixed = s["public"][:20] + real[:20]
    both = quality.accuracy_by_domain(clf, [it.image for it in mixed], [it.label for it in mixed], {5, 6, 7, 8, 9})
    assert set(both) == {"digit_accuracy_base_samples", "digit_accuracy_base_public_classes",
                         "digit_accuracy_base_private_classes", "n_base_public_classes", "n_base_private_classes"}
    assert both["n_base_public_classes"] == both["n_base_private_classes"] == 20
    assert set(quality.accuracy_by_domain(clf, [it.image for it in mixed], [it.label for it in mixed], set())) == {
        "digit_accuracy_base_samples"}


def test_the_base_models_samples_are_read_by_the_judge_sets_classifier():
    """Notebook 01's sample check: real D_te digits are read well, the private domain apart; no labels, no check."""
    items = data.load_dataset("digits", 16)
    s = sets.make_splits(items, config.make("tiny").split)
    real = s["member_te"][:20]
    out = quality.base_samples(items, s, [it.image for it in real], [it.label for it in real], "5-9")
    assert out["digit_accuracy_real"] > 0.8 and out["n_base_private_classes"] == 20
    assert out["digit_accuracy_base_samples"] == out["digit_accuracy_base_private_classes"] > 0.8
    assert quality.base_samples(items, s, [real[0].image], [None]) == {}
