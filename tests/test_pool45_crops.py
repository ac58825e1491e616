"""Pool45-Crops: map choice, projection, ROI pooling and upsampling against slow NumPy references; the feature
model on tiny images (shapes, padding, flatten order, the map cache); the two scripts end to end."""
import csv
import json
import math

import numpy as np
import pytest

import pool45_crops_testing
import pool45_crops_training
from features import (FeatureMapCache, Pool45CropsFeatures, bilinear_weights, choose_stride, crop_and_pool,
                      describe_region, pool_bins, pool_cells, project_region)
from image_helper import MEAN_RGB, paint_mean

pytestmark = pytest.mark.usefixtures("small_q_network")   # plumbing, not the paper's width (conftest.py)

# ---------------------------------------------------------------------------------------------------------------
# slow obvious references


def reference_cells(low, high, stride, size):
    """Cells whose pixels [c·stride, (c+1)·stride) meet [low, high); the last cell when none does (beyond the
    map), the nearest one for an empty side."""
    touched = [c for c in range(size) if c * stride < high and (c + 1) * stride > low]
    if not touched:
        nearest = min(max(int(low // stride), 0), size - 1)
        touched = [nearest]
    return touched[0], touched[-1] + 1


def reference_taps(length, size=7):
    """Per output index, the candidates it takes the max over; each candidate is a weighted sum of cells."""
    taps = []
    for index in range(size):
        if length < size:                                   # bilinear, half-pixel centres
            source = (index + 0.5) * length / size - 0.5
            source = min(max(source, 0.0), length - 1.0)
            low = math.floor(source)
            high = min(low + 1, length - 1)
            weight = source - low
            taps.append([[(low, 1.0 - weight), (high, weight)]])
        else:                                               # Fast R-CNN bins
            first = math.floor(index * length / size)
            last = math.ceil((index + 1) * length / size)
            taps.append([[(cell, 1.0)] for cell in range(first, last)])
    return taps


def reference_descriptor(pool4, pool5, region):
    x0, y0, x1, y1 = region
    stride = 32 if math.sqrt((x1 - x0) * (y1 - y0)) / 7 > 32 else 16
    feature_map = pool5 if stride == 32 else pool4
    row0, row1 = reference_cells(y0, y1, stride, feature_map.shape[0])
    col0, col1 = reference_cells(x0, x1, stride, feature_map.shape[1])
    cells = feature_map[row0:row1, col0:col1].astype(np.float64)
    row_taps, col_taps = reference_taps(cells.shape[0]), reference_taps(cells.shape[1])
    out = np.empty((7, 7, feature_map.shape[2]))
    for i in range(7):
        for j in range(7):
            best = np.full(feature_map.shape[2], -np.inf)
            for row_tap in row_taps[i]:
                for col_tap in col_taps[j]:
                    value = np.zeros(feature_map.shape[2])
                    for row, row_weight in row_tap:
                        for col, col_weight in col_tap:
                            value += row_weight * col_weight * cells[row, col]
                    best = np.maximum(best, value)
            out[i, j] = best
    return out


def random_region(rng, width, height):
    kind = rng.integers(5)
    if kind == 0:                                           # whole image
        return [0.0, 0.0, float(width), float(height)]
    if kind == 1:                                           # 1 pixel
        x, y = rng.integers(width), rng.integers(height)
        return [float(x), float(y), x + 1.0, y + 1.0]
    if kind == 2:                                           # thin
        x0 = rng.uniform(0, max(width - 2, 0))
        return [x0, 0.0, x0 + rng.uniform(0.5, 2.0), float(height)]
    x0, x1 = np.sort(rng.uniform(0, width, 2))
    y0, y1 = np.sort(rng.uniform(0, height, 2))
    return [x0, y0, max(x1, x0 + 0.3), max(y1, y0 + 0.3)]


# ---------------------------------------------------------------------------------------------------------------
# geometry and pooling, no VGG


def test_map_choice_boundary():
    assert choose_stride([0, 0, 224, 224]) == 16                # sqrt(w·h)/7 = 32 is not > 32
    assert choose_stride([0, 0, 225, 224]) == 32
    assert choose_stride([10, 10, 11, 11]) == 16
    assert choose_stride([0, 0, 2000, 20]) == 16                # sqrt(40000)/7 ≈ 28.6
    assert choose_stride([0, 0, 2000, 26]) == 32                # sqrt(52000)/7 ≈ 32.6


def test_projection_by_hand():
    assert project_region([32, 32, 64, 64], 32, 10, 10) == (1, 2, 1, 2)
    assert project_region([32, 32, 64.0000000001, 63.9999999999], 32, 10, 10) == (1, 2, 1, 2)   # float noise
    assert project_region([31, 0, 33, 1], 32, 10, 10) == (0, 1, 0, 2)
    assert project_region([100, 100, 101, 101], 16, 10, 10) == (6, 7, 6, 7)                   # 1 pixel, 1 cell
    assert project_region([0, 0, 500, 375], 32, 11, 15) == (0, 11, 0, 15)                     # clamped to the map
    assert project_region([490, 370, 500, 375], 32, 11, 15) == (10, 11, 14, 15)               # past the last cell
    assert project_region([5, 5, 5, 5], 16, 4, 4) == (0, 1, 0, 1)                             # empty: one cell


def test_projection_matches_reference_on_random_regions():
    rng = np.random.default_rng(0)
    for _ in range(500):
        width, height = int(rng.integers(1, 600)), int(rng.integers(1, 600))
        stride = int(rng.choice([16, 32]))
        rows, cols = max(height, 32) // stride, max(width, 32) // stride
        region = random_region(rng, width, height)
        expected = (*reference_cells(region[1], region[3], stride, rows),
                    *reference_cells(region[0], region[2], stride, cols))
        assert project_region(region, stride, rows, cols) == expected, (region, stride, rows, cols)


def test_bins_and_weights_by_hand():
    assert pool_bins(7) == [(i, i + 1) for i in range(7)]
    assert pool_bins(8) == [(0, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7), (6, 8)]
    assert pool_bins(14) == [(2 * i, 2 * i + 2) for i in range(7)]
    np.testing.assert_allclose(bilinear_weights(1), np.ones((7, 1)))
    assert np.allclose(bilinear_weights(3).sum(axis=1), 1.0)


def test_exact_seven_passes_unchanged_and_pooling_takes_the_max():
    rng = np.random.default_rng(1)
    cells = rng.standard_normal((7, 7, 3)).astype(np.float32)
    np.testing.assert_array_equal(pool_cells(cells), cells)
    cells = rng.standard_normal((14, 21, 3)).astype(np.float32)
    expected = cells.reshape(7, 2, 7, 3, 3).max(axis=(1, 3))
    np.testing.assert_array_equal(pool_cells(cells), expected)


def test_upsampling_matches_tensorflow_bilinear():
    import tensorflow as tf
    rng = np.random.default_rng(2)
    for shape in [(1, 1), (2, 3), (3, 5), (6, 6), (1, 4)]:
        cells = rng.standard_normal((*shape, 4)).astype(np.float32)
        expected = tf.image.resize(cells, (7, 7), method="bilinear", antialias=False).numpy()
        np.testing.assert_allclose(pool_cells(cells), expected, rtol=1e-5, atol=1e-5)


def test_descriptor_matches_reference_on_random_maps_and_regions():
    rng = np.random.default_rng(3)
    for _ in range(120):
        width, height = int(rng.integers(1, 700)), int(rng.integers(1, 700))
        padded_w, padded_h = max(width, 32), max(height, 32)
        pool4 = rng.standard_normal((padded_h // 16, padded_w // 16, 3)).astype(np.float32)
        pool5 = rng.standard_normal((padded_h // 32, padded_w // 32, 3)).astype(np.float32)
        region = random_region(rng, width, height)
        np.testing.assert_allclose(describe_region(pool4, pool5, region), reference_descriptor(pool4, pool5, region),
                                   rtol=1e-5, atol=1e-5, err_msg=str((width, height, region)))


def test_mixed_sides_upsample_one_pool_the_other():
    rng = np.random.default_rng(4)
    feature_map = rng.standard_normal((3, 40, 2)).astype(np.float32)
    region = [0.0, 0.0, 40 * 16.0, 3 * 16.0]                  # pool4: sqrt(640·48)/7 ≈ 25 → 3 × 40 cells
    assert choose_stride(region) == 16
    result = crop_and_pool(feature_map, region, 16)
    assert result.shape == (7, 7, 2)
    np.testing.assert_allclose(result, reference_descriptor(feature_map, None, region), rtol=1e-5, atol=1e-6)


def test_map_cache_is_byte_bounded_lru_and_checks_pixels():
    maps = (np.zeros((4, 4, 512), np.float32), np.zeros((2, 2, 512), np.float32))
    size = sum(m.nbytes for m in maps)
    cache = FeatureMapCache(limit_mb=2.5 * size / 2**20)     # room for two entries
    cache.put(("a", 0), maps, "fa")
    cache.put(("b", 0), maps, "fb")
    assert cache.get(("a", 0), "fa") is not None           # a is now the most recent
    cache.put(("c", 0), maps, "fc")                          # evicts b
    assert cache.get(("b", 0), "fb") is None and cache.get(("a", 0), "fa") is not None
    assert cache.bytes == 2 * size
    assert cache.get(("a", 0), "other pixels") is None       # same key, other pixels: a miss
    cache.put(("a", 0), maps, "other pixels")                 # replaces
    assert cache.get(("a", 0), "other pixels") is not None and cache.bytes == 2 * size
    assert FeatureMapCache(0).get(("a", 0), "fa") is None


# ---------------------------------------------------------------------------------------------------------------
# the feature model (random VGG-16)


@pytest.fixture(scope="module")
def features():
    return Pool45CropsFeatures("random", map_cache_mb=64)


def random_image(rng, height, width):
    return (rng.random((height, width, 3)) * 255).astype(np.float32)


def test_map_sizes_and_descriptor_shapes(features):
    rng = np.random.default_rng(5)
    for (height, width), pool4_cells, pool5_cells in [((64, 64), (4, 4), (2, 2)), ((13, 20), (2, 2), (1, 1)),
                                                        ((1, 1), (2, 2), (1, 1)), ((40, 250), (2, 15), (1, 7))]:
        image = random_image(rng, height, width)
        pool4, pool5 = features.feature_maps(image)
        assert pool4.shape == (*pool4_cells, 512) and pool5.shape == (*pool5_cells, 512)
        regions = [[0, 0, width, height], [0, 0, 1, 1], [width / 3, 0, width / 3 + 0.7, height],
                   [width - 1.5, height - 1.5, width, height], [0, 0, width / 4, height / 4]]
        descriptors = features.describe([((f"{height}x{width}", 0), image, np.array(r, float)) for r in regions])
        assert descriptors.shape == (len(regions), 25088) and descriptors.dtype == np.float32
        assert np.isfinite(descriptors).all()
        for region, descriptor in zip(regions, descriptors):
            np.testing.assert_allclose(descriptor, describe_region(pool4, pool5, region).reshape(-1), rtol=1e-6)


def test_small_images_are_padded_with_the_mean_colour(features):
    image = random_image(np.random.default_rng(6), 13, 20)
    padded = np.empty((32, 32, 3), np.float32)
    padded[:] = MEAN_RGB
    padded[:13, :20] = image
    for ours, reference in zip(features.feature_maps(image), features.feature_maps(padded)):
        np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-4)


def test_flatten_order_matches_image_zooms(features):
    from features import ImageZoomsFeatures
    # 240 × 240: pool5 (sqrt(240²)/7 > 32) of exactly 7 × 7 cells, so the descriptor is pool5 itself
    image = random_image(np.random.default_rng(7), 240, 240)
    ours = features.describe([(None, image, np.array([0.0, 0.0, 240.0, 240.0]))])[0]
    zooms = ImageZoomsFeatures(backbone=features.backbone).forward(image[None])[0]
    np.testing.assert_allclose(ours, zooms, rtol=1e-4, atol=1e-4 * np.abs(zooms).max())


def test_maps_computed_once_per_image_key_and_again_after_masking(features):
    rng = np.random.default_rng(8)
    image = random_image(rng, 70, 90)
    region, before = np.array([10.0, 10.0, 60.0, 50.0]), features.forward_count
    first = features.describe([(("img", 0), image, region)])
    again = features.describe([(("img", 0), image, region), (("img", 0), image, region * 0.5)])
    assert features.forward_count == before + 1
    np.testing.assert_array_equal(first[0], again[0])
    masked = paint_mean(image, [20.0, 20.0, 50.0, 45.0])      # training: a found object is painted
    after = features.describe([(("img", 1), masked, region)])
    assert features.forward_count == before + 2
    assert not np.array_equal(after[0], first[0])
    features.describe([(("img", 1), masked, region * 0.5)])
    assert features.forward_count == before + 2
    # a later epoch: mask version 1 after painting another object is other pixels, so new maps
    other = paint_mean(image, [0.0, 0.0, 30.0, 30.0])
    features.describe([(("img", 1), other, region)])
    assert features.forward_count == before + 3


def test_a_found_object_is_masked_and_the_maps_recomputed(features):
    from episodes import make_states
    from reinforcement import TRIGGER, ZoomEnvironment
    image = random_image(np.random.default_rng(9), 64, 80)
    env = ZoomEnvironment(80, 64, [[0, 0, 70, 60], [60, 40, 80, 64]], 0.75, image=image, image_id="found")
    env.start_search()
    before = features.forward_count
    unmasked = make_states(features, [env])[0]
    make_states(features, [env])
    assert features.forward_count == before + 1
    key = env.image_key
    reward, done, _ = env.step(TRIGGER)                       # whole image covers object 0 with IoU ≥ 0.5
    assert reward > 0 and done and env.image_key != key
    env.start_search()
    masked = make_states(features, [env])[0]
    assert features.forward_count == before + 2
    pool4, pool5 = features.feature_maps(env.image)           # the maps of the painted image
    np.testing.assert_allclose(masked[:25088], describe_region(pool4, pool5, env.region).reshape(-1), rtol=1e-6)
    assert not np.allclose(masked, unmasked)


# ---------------------------------------------------------------------------------------------------------------
# the scripts end to end

TINY = ["--path_vgg", "random", "--buffer_experience_replay", "12", "--batch_size", "4", "--number_of_steps", "3",
        "--learning_rate", "1e-4", "--map_cache_mb", "64"]


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    pool45_crops_training.main(["--path_voc", str(dataset), "--path_model", str(models), "--max_images", "4",
                                "--epochs", "2", *TINY])
    return models


def test_training_writes_checkpoints_and_log(trained):
    names = {path.name for path in trained.iterdir()}
    assert {"model0_epoch_0.weights.h5", "model0_epoch_1.weights.h5", "model0.weights.h5",
            "training_log_model0.csv", "resume_model0_epoch_1.h5"} <= names
    with open(trained / "training_log_model0.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["epoch"] for row in rows] == ["0", "1"]
    assert all(int(row["steps"]) > 0 for row in rows)


def test_vgg_forwards_once_per_image_and_mask_and_cached_across_epochs(trained):
    with open(trained / "training_log_model0.csv") as handle:
        rows = [{key: float(value) for key, value in row.items()} for row in csv.DictReader(handle)]
    # every image costs one forward in the first epoch, plus one per mask change (a correct trigger)
    assert rows[0]["images"] <= rows[0]["vgg_forwards"] <= rows[0]["images"] + rows[0]["correct_triggers"]
    # the second epoch finds every unmasked image's maps in the cache: only mask changes cost a forward
    assert rows[1]["vgg_forwards"] <= rows[1]["correct_triggers"]
    assert rows[1]["vgg_forwards"] <= rows[0]["vgg_forwards"]
    assert rows[1]["cache_hits"] >= rows[1]["images"]


def test_testing_writes_results(trained, dataset, tmp_path):
    pool45_crops_testing.main(["--path_voc_test", str(dataset), "--path_model", str(trained), "--path_vgg", "random",
                               "--path_testing_folder", str(tmp_path), "--number_of_steps", "4"])
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["model"] == "pool45_crops" and results["agent"] == "trained"
    assert results["num_images"] > 0 and len(results["detections"]) > 0
    assert 0 <= results["ap"] <= 1 and 0 <= results["max_recall"] <= 1
    triggers = sum(item["triggered"] for item in results["detections"])
    assert 0 < results["vgg_forwards"] <= results["num_images"] + triggers   # each trigger paints: new maps
    assert (tmp_path / "precision_recall.png").stat().st_size > 0
