"""The linear probe: AUC against a pairwise count, the logistic regression on a separable set, regions of the
hierarchy, and a tiny end-to-end run with a stand-in backbone."""
import json

import numpy as np
import pytest

from conftest import tiny_backbone
from experiments import feature_probe
from reinforcement import child_regions
from synthetic_dataset import generate_synthetic_voc


def pairwise_auc(labels, scores):
    """The slow obvious reference: the share of (positive, negative) pairs ranked right, ties counting half."""
    positives = [s for s, label in zip(scores, labels) if label]
    negatives = [s for s, label in zip(scores, labels) if not label]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def test_auc_matches_pairwise_count_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        labels = rng.random(40) < 0.3
        labels[:2] = [True, False]              # both classes present
        scores = rng.integers(0, 6, 40).astype(float)  # few distinct values: many ties
        assert feature_probe.roc_auc(labels, scores) == pytest.approx(pairwise_auc(labels, scores))


def test_auc_extremes_and_one_class():
    assert feature_probe.roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert feature_probe.roc_auc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]) == 0.0
    assert feature_probe.roc_auc([1, 0, 1, 0], [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert np.isnan(feature_probe.roc_auc([1, 1], [0.2, 0.3]))


def test_logistic_regression_separates_a_separable_set():
    rng = np.random.default_rng(1)
    # two clouds far apart along a direction, unbalanced (as positive regions are rare), plus noise columns
    labels = np.r_[np.ones(10), np.zeros(60)]
    features = rng.normal(0, 1, (70, 5))
    features[:, 0] += np.where(labels == 1, 4.0, -4.0)
    train, = feature_probe.standardise(features)
    weights, bias = feature_probe.fit_logistic_regression(train, labels, l2=1e-3, steps=500)
    scores = feature_probe.scores_of(labels, feature_probe.predict_probability(train, weights, bias))
    assert scores == {"accuracy": 1.0, "balanced_accuracy": 1.0, "auc": 1.0}
    assert abs(weights[0]) > 5 * np.abs(weights[1:]).max()     # the informative column carries the decision


def test_one_class_is_a_user_error():
    from runs.errors import UserError
    with pytest.raises(UserError, match="only one class"):
        feature_probe.fit_logistic_regression(np.zeros((4, 2)), np.zeros(4), l2=1.0, steps=1)


def test_sampled_regions_are_distinct_regions_of_the_hierarchy():
    def hierarchy(region, depth):
        yield tuple(region)
        if depth:
            for child in child_regions(region, 0.75):
                yield from hierarchy(child, depth - 1)
    all_regions = {tuple(np.round(region, 6)) for region in hierarchy(np.array([0.0, 0.0, 200.0, 120.0]), 3)}
    regions = feature_probe.sample_regions(200, 120, 30, 0.75, 3, np.random.default_rng(0))
    keys = [tuple(np.round(region, 6)) for region in regions]
    assert len(keys) == 30 and len(set(keys)) == 30
    assert set(keys) <= all_regions
    # the whole-image hierarchy of depth 0 has one region only
    assert len(feature_probe.sample_regions(200, 120, 5, 0.75, 0, np.random.default_rng(0))) == 1


def test_end_to_end_writes_probe_json(tmp_path, monkeypatch):
    from features import ImageZoomsFeatures
    dataset = generate_synthetic_voc(tmp_path / "voc", num_trainval=4, num_test=3, seed=1, min_size=64, max_size=96)
    monkeypatch.setattr(feature_probe, "make_features", lambda settings: ImageZoomsFeatures(backbone=tiny_backbone()))
    feature_probe.main(["--path_voc", str(dataset), "--output", str(tmp_path / "probe"), "--regions_per_image", "6",
                        "--learning_steps", "50"])
    report = json.loads((tmp_path / "probe" / "probe.json").read_text())
    assert set(report) == {"settings", "images", "regions", "probes", "describe_seconds"}
    assert set(report["probes"]) == {"vgg", "geometry"}
    for probe in report["probes"].values():
        assert set(probe) == {"features", "train", "test", "fit_seconds"}
        assert set(probe["train"]) == {"accuracy", "balanced_accuracy", "auc"}
    assert report["probes"]["geometry"]["features"] == 4
    assert report["regions"]["train"]["count"] == 6 * report["images"]["train"]


def test_pool4_descriptor_is_pool4_averaged_over_2x2():
    from types import SimpleNamespace
    import keras
    from image_helper import resize, vgg_preprocess
    from features import build_vgg16
    image = np.random.default_rng(0).uniform(0, 255, (96, 128, 3)).astype(np.float32)
    region = np.array([8.0, 4.0, 104.0, 76.0])
    describer = feature_probe.make_features(SimpleNamespace(layer="block4_pool", path_vgg="random",
                                                            vgg_precision="float32"))
    descriptor = describer.describe([(None, image, region)])
    assert descriptor.shape == (1, 7 * 7 * 512)
    vgg = build_vgg16("random", (224, 224, 3))
    crop = resize(image[4:76, 8:104], (224, 224))
    pool4 = keras.Model(vgg.input, vgg.get_layer("block4_pool").output)(vgg_preprocess(crop[None])).numpy()[0]
    expected = pool4.reshape(7, 2, 7, 2, 512).mean(axis=(1, 3)).reshape(-1)
    np.testing.assert_allclose(descriptor[0], expected, rtol=1e-4, atol=1e-6)


def test_an_unknown_layer_is_a_user_error():
    from runs.errors import UserError
    with pytest.raises(UserError, match="layer takes block5_pool or block4_pool"):
        feature_probe.main(["--layer", "block3_conv1"])
