"""Are the features the limit? A linear probe on the Image-Zooms descriptor.

    python experiments/feature_probe.py              # the synthetic demo dataset, random VGG-16, 60 + 60 images
    python experiments/feature_probe.py --path_voc VOC2012 --path_vgg vgg16_weights.h5

Samples regions of the hierarchy the agent can visit (the whole image, then random children down to depth
``max_depth``, with the geometry of ``reinforcement.child_regions``) on trainval images (to fit) and test images
(held out). A region is positive when its IoU with some object of ``class_object`` is at least 0.5 (the trigger's
threshold). Two logistic regressions are fitted on the training regions, with the same optimiser and L2:

* ``vgg``: the Image-Zooms descriptor (VGG-16 pool5 of the 224×224 crop, 25,088 numbers), as the agent sees it
  (``--layer block4_pool``: pool4 averaged to the same size instead, to see what fewer layers keep);
* ``geometry``: the region's position and size relative to the image (4 numbers), the trivial baseline.

If the descriptor does no better than geometry on held-out images, the agent's Q-network has nothing more to learn
from than where the region is. Writes ``<output>/probe.json`` and prints a table.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the top-level modules

from runs.errors import UserError
from runs.runtime import main_guard, write_json
from settings import DEMO_DATA, check_dataset, check_path_vgg, configure, script_settings

# data
path_voc = ""                           # VOC-format folder; "": the synthetic demo dataset (generated if absent)
class_object = 1                        # VOC id 1-20 or name (1 = aeroplane)
max_images = 60                         # trainval images to fit on (the demo trained on 60 when measured)
max_test_images = 60                    # test images held out
# regions
scale_subregion = 3.0 / 4               # the hierarchy's sub-region scale, as in training
max_depth = 3                           # deepest level sampled (0: the whole image)
regions_per_image = 6                   # distinct regions sampled per image (6 x 120 images: ~5 min of VGG-16 on
                                        # 2 CPU cores, at ~0.4 s a crop)
iou_threshold = 0.5                     # a region is positive at IoU >= this with some object
# features
path_vgg = "random"                     # VGG-16 weights file, 'imagenet', 'hed' (the demo's) or 'random'
vgg_precision = "float32"
layer = "block5_pool"                   # the descriptor's layer: block5_pool (pool5, the agent's), or block4_pool
                                        # averaged over 2x2 to the same 7x7x512 (a diagnostic: what a layer with
                                        # fewer random convolutions keeps; the agent cannot use it)
# the probe
l2 = 1e-2                               # L2 penalty on the weights (features are standardised)
learning_steps = 2000                   # full-batch gradient descent steps
seed = 0
output = "results/probe"                # folder for probe.json


LAYERS = ("block5_pool", "block4_pool")


def make_features(settings):
    from features import ImageZoomsFeatures
    if settings.layer == "block5_pool":
        return ImageZoomsFeatures(settings.path_vgg, cache_mb=0, precision=settings.vgg_precision)
    import keras
    from features import ZOOM_SIZE, build_vgg16
    vgg = build_vgg16(settings.path_vgg, (ZOOM_SIZE, ZOOM_SIZE, 3), settings.vgg_precision)
    pooled = keras.layers.AveragePooling2D(2)(vgg.get_layer(settings.layer).output)     # 14x14x512 -> 7x7x512
    return ImageZoomsFeatures(backbone=keras.Model(vgg.input, pooled))


# ---------------------------------------------------------------------------------------------------------------
# regions

def sample_regions(width, height, count, scale, deepest, rng):
    """``count`` distinct regions ``[x0, y0, x1, y1]`` of the hierarchy of a ``width`` x ``height`` image.

    Each draw picks a depth uniformly in 0..``deepest`` and descends that many random children from the whole image,
    so every level is as likely as any other (uniform over all regions would be almost all depth-3 regions). Fewer
    than ``count`` come back only if the hierarchy is smaller than ``count``.
    """
    from reinforcement import child_regions
    regions, seen = [], set()
    for _ in range(count * 20):        # repeated draws (the whole image, mostly) are skipped
        region = np.array([0.0, 0.0, float(width), float(height)])
        for _ in range(int(rng.integers(0, deepest + 1))):
            region = child_regions(region, scale)[int(rng.integers(0, 5))]
        key = tuple(np.round(region, 6))
        if key not in seen:
            seen.add(key)
            regions.append(region)
        if len(regions) == count:
            break
    return regions


def geometry_features(region, width, height):
    """The trivial baseline: left, top, width and height of the region relative to the image."""
    x0, y0, x1, y1 = region
    return np.array([x0 / width, y0 / height, (x1 - x0) / width, (y1 - y0) / height], dtype=np.float32)


def describe_split(records, settings, describer, rng, split_name):
    """Sample, label and describe the regions of ``records``; returns (vgg, geometry, labels, image index)."""
    from image_helper import image_path, load_image
    from metrics import iou_many
    from parse_xml_annotations import class_name
    target = class_name(settings.class_object)
    vgg_rows, geometry_rows, labels, image_index = [], [], [], []
    waiting = []          # regions not yet described: VGG-16 runs on full batches across images, not one image's few
    started = time.time()
    for number, record in enumerate(records):
        image = load_image(image_path(record.path_voc, record.image_id))
        height, width = image.shape[:2]
        # the image's own size wins over the annotation's (as episodes.make_environment does)
        boxes = np.clip(record.annotation.boxes_of(target), 0.0, [width, height, width, height])
        for region in sample_regions(width, height, settings.regions_per_image, settings.scale_subregion,
                                     settings.max_depth, rng):
            best = float(iou_many(boxes, region).max()) if len(boxes) else 0.0
            labels.append(best >= settings.iou_threshold)
            geometry_rows.append(geometry_features(region, width, height))
            image_index.append(number)
            waiting.append((None, image, region))       # no image key: the cache is off, every crop is new
        if len(waiting) >= describer.batch_size or number + 1 == len(records):
            vgg_rows.append(describer.describe(waiting))
            waiting = []
            print(f"{split_name}: {number + 1}/{len(records)} images, {len(labels)} regions, "
                  f"{time.time() - started:.0f} s", flush=True)
    return (np.concatenate(vgg_rows), np.stack(geometry_rows), np.array(labels, dtype=np.float64),
            np.array(image_index))


# ---------------------------------------------------------------------------------------------------------------
# the probe: logistic regression by gradient descent, and its scores

def standardise(train, *others):
    """Scale every column to mean 0, variance 1 on ``train``; constant columns are centred only."""
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std = np.where(std > 1e-8, std, 1.0)
    return [(array - mean) / std for array in (train, *others)]


def fit_logistic_regression(features, labels, l2, steps):
    """Weights and bias of a class-balanced, L2-penalised logistic regression, by full-batch gradient descent.

    The classes are weighted to equal total weight: positives are rare, and without it the fit may predict
    "negative" everywhere. The step is 1/L, L the loss's smoothness constant (a quarter of the largest eigenvalue of
    the weighted Gram matrix, plus ``l2``), so descent never diverges whatever the feature scale.
    """
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    count = len(labels)
    positives = labels.sum()
    if positives == 0 or positives == count:
        raise UserError(f"the training regions hold only one class ({int(positives)} positive of {count}): "
                        "sample more images or regions")
    sample_weight = np.where(labels == 1, count / (2 * positives), count / (2 * (count - positives))) / count
    # the smaller Gram matrix has the same largest eigenvalue (n << d for the VGG descriptor)
    scaled = features * np.sqrt(sample_weight)[:, None]
    gram = scaled @ scaled.T if count <= features.shape[1] else scaled.T @ scaled
    smoothness = 0.25 * (np.linalg.eigvalsh(gram)[-1] + sample_weight.sum()) + l2   # the bias counts as a column
    step = 1.0 / smoothness
    weights, bias = np.zeros(features.shape[1]), 0.0
    for _ in range(steps):
        probability = 1.0 / (1.0 + np.exp(-(features @ weights + bias)))
        error = sample_weight * (probability - labels)
        weights -= step * (features.T @ error + l2 * weights)
        bias -= step * error.sum()
    return weights, bias


def predict_probability(features, weights, bias):
    return 1.0 / (1.0 + np.exp(-(np.asarray(features, dtype=np.float64) @ weights + bias)))


def roc_auc(labels, scores):
    """Area under the ROC curve from ranks (Mann–Whitney U); tied scores share their mean rank. NaN with one class."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores))
    start = 0
    while start < len(scores):      # a run of equal scores gets the mean of the ranks it spans (1-based)
        end = start
        while end + 1 < len(scores) and sorted_scores[end + 1] == sorted_scores[start]:
            end += 1
        ranks[order[start:end + 1]] = (start + end) / 2 + 1
        start = end + 1
    rank_sum = ranks[labels].sum()
    return float((rank_sum - positives * (positives + 1) / 2) / (positives * negatives))


def scores_of(labels, probability):
    """Accuracy, balanced accuracy (mean of the two classes' recalls, at 0.5) and ROC AUC."""
    labels = np.asarray(labels).astype(bool)
    predicted = probability >= 0.5
    recalls = [float((predicted[labels == value] == value).mean()) if (labels == value).any() else float("nan")
               for value in (True, False)]
    return {"accuracy": float((predicted == labels).mean()), "balanced_accuracy": float(np.mean(recalls)),
            "auc": roc_auc(labels, probability)}


# ---------------------------------------------------------------------------------------------------------------

def main(argv=None):
    settings = configure(script_settings(globals()), argv, __doc__.split("\n")[0])
    for name in ("max_images", "max_test_images", "regions_per_image", "learning_steps"):
        if getattr(settings, name) < 1:
            raise UserError(f"{name} must be 1 or more, got {getattr(settings, name)}")
    if settings.layer not in LAYERS:
        raise UserError(f"layer takes {' or '.join(LAYERS)}, got {settings.layer!r}")
    if not 0 < settings.scale_subregion < 1:
        raise UserError(f"scale_subregion must be between 0 and 1, got {settings.scale_subregion}")
    if not settings.path_voc:
        from synthetic_dataset import ensure_synthetic_voc
        settings.path_voc = str(ensure_synthetic_voc(DEMO_DATA))
    for set_name in ("trainval", "test"):
        check_dataset(settings.path_voc, set_name, settings.class_object, "path_voc")
    check_path_vgg(settings.path_vgg)

    from parse_xml_annotations import load_records
    from runs.runtime import seed_everything
    train_records = load_records(settings.path_voc, settings.class_object, "trainval", settings.max_images)
    test_records = load_records(settings.path_voc, settings.class_object, "test", settings.max_test_images)
    seed_everything(settings.seed)
    rng = np.random.default_rng(settings.seed)
    describer = make_features(settings)

    started = time.time()
    splits = {"train": describe_split(train_records, settings, describer, rng, "train"),
              "test": describe_split(test_records, settings, describer, rng, "test")}
    describe_seconds = time.time() - started
    train_labels, test_labels = splits["train"][2], splits["test"][2]

    results = {}
    for column, probe in ((0, "vgg"), (1, "geometry")):
        started = time.time()
        train_features, test_features = standardise(splits["train"][column], splits["test"][column])
        weights, bias = fit_logistic_regression(train_features, train_labels, settings.l2, settings.learning_steps)
        results[probe] = {
            "features": int(train_features.shape[1]),
            "train": scores_of(train_labels, predict_probability(train_features, weights, bias)),
            "test": scores_of(test_labels, predict_probability(test_features, weights, bias)),
            "fit_seconds": round(time.time() - started, 2)}

    report = {
        "settings": {name: getattr(settings, name) for name in script_settings(globals())},
        "images": {"train": len(train_records), "test": len(test_records)},
        "regions": {split: {"count": int(len(labels)), "positive": int(labels.sum())}
                    for split, labels in (("train", train_labels), ("test", test_labels))},
        "probes": results,
        "describe_seconds": round(describe_seconds, 1)}
    path = Path(settings.output) / "probe.json"
    write_json(path, report)

    print(f"\nregions: train {len(train_labels)} ({int(train_labels.sum())} positive), "
          f"test {len(test_labels)} ({int(test_labels.sum())} positive); VGG-16 forwards {describe_seconds:.0f} s")
    print(f"{'probe':<10} {'features':>8}  {'train acc':>9} {'bal acc':>7} {'AUC':>5}  "
          f"{'test acc':>8} {'bal acc':>7} {'AUC':>5}")
    for probe, result in results.items():
        train, test = result["train"], result["test"]
        print(f"{probe:<10} {result['features']:>8}  {train['accuracy']:>9.3f} {train['balanced_accuracy']:>7.3f} "
              f"{train['auc']:>5.3f}  {test['accuracy']:>8.3f} {test['balanced_accuracy']:>7.3f} {test['auc']:>5.3f}")
    print(f"wrote {path}")
    return report


if __name__ == "__main__":
    main_guard(main)
