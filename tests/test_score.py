"""The score head (``score_head 1`` in training, ``score learned`` in testing; beyond the paper): it learns to rank
boxes by how well they fit an object, and its sample and files go through training, resume, testing and detect()."""
import json
from types import SimpleNamespace

import numpy as np
import pytest

import image_zooms_testing
import image_zooms_training
from detection import detect
from metrics import iou_many, roc_auc
from refinement import MIN_WINDOWS, ScoreHead, ScoreSample, box_deltas, refiner_path, scorer_path
from runs.errors import UserError
from test_refinement import same_heads
from test_resume import TINY, same_weights, tiny_features

pytestmark = pytest.mark.usefixtures("small_q_network")


def test_roc_auc_counts_pairs_and_ties():
    assert roc_auc([0.9, 0.8, 0.1, 0.2], [True, True, False, False]) == 1.0
    assert roc_auc([0.1, 0.2, 0.9, 0.8], [True, True, False, False]) == 0.0
    assert roc_auc([0.5, 0.5, 0.5], [True, False, False]) == 0.5         # ties count half
    assert roc_auc([0.8, 0.5, 0.4, 0.3], [True, False, True, False]) == 0.75   # 3 of the 4 pairs in order
    assert roc_auc([0.3, 0.7], [True, True]) is None


def boxes_near_objects(seed, count):
    """Boxes about objects, from close fits to misses, each with a descriptor that shows (in a random 64-value code,
    with noise) how far its crop is from the object: what a box's own descriptor shows of the object in it."""
    rng = np.random.default_rng(seed)
    objects = np.concatenate([rng.uniform(0, 50, (count, 2)), np.zeros((count, 2))], axis=1)
    objects[:, 2:] = objects[:, :2] + rng.uniform(20, 60, (count, 2))
    size = objects[:, 2:] - objects[:, :2]
    centre = (objects[:, :2] + objects[:, 2:]) / 2 + rng.uniform(-0.35, 0.35, (count, 2)) * size
    box_size = size * np.exp(rng.uniform(-0.6, 0.6, (count, 2)))
    boxes = np.concatenate([centre - box_size / 2, centre + box_size / 2], axis=1)
    code = np.random.default_rng(98).standard_normal((4, 64))
    descriptors = np.abs(box_deltas(boxes, objects)) @ code + 0.1 * rng.standard_normal((count, 64))
    ious = np.array([iou_many(obj[None], box)[0] for box, obj in zip(boxes, objects)])
    return descriptors, boxes, objects, ious


def test_the_score_head_learns_to_rank_boxes_and_not_from_shuffled_targets():
    descriptors, boxes, objects, _ = boxes_near_objects(1, 300)
    sample = ScoreSample(64, capacity=500, seed=0)
    for descriptor, box, obj in zip(descriptors, boxes, objects):
        sample.store(descriptor, box, obj)
    test_descriptors, _, _, test_ious = boxes_near_objects(2, 200)
    positive = test_ious >= 0.5
    assert 0.1 < positive.mean() < 0.9                          # both kinds to rank
    auc = roc_auc(sample.fit().score(test_descriptors), positive)
    assert auc > 0.75 and auc > roc_auc(np.zeros(len(positive)), positive)     # a constant ranks at 0.5
    # its targets shuffled (each descriptor paired with another box's IoU), the head ranks no better than chance
    sample.descriptors[:len(sample)] = sample.descriptors[np.random.default_rng(3).permutation(len(sample))]
    assert roc_auc(sample.fit().score(test_descriptors), positive) < 0.65


def test_score_head_trains_resumes_exactly_and_ranks_the_same_detections(dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(image_zooms_training, "make_features", tiny_features)
    monkeypatch.setattr(image_zooms_testing, "make_features", tiny_features)

    def train(folder, *extra):
        image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(tmp_path / folder), *TINY,
                                   "--max_images", "6", "--refine", "1", "--score_head", "1", *extra])
    train("straight", "--epochs", "3")
    assert "refine 1, score_head 1" in capsys.readouterr().out
    train("resumed", "--epochs", "2")
    train("resumed", "--epochs", "3", "-n", "2")
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert all(same_weights(straight / name, resumed / name) and same_heads(scorer_path(straight / name),
                                                                             scorer_path(resumed / name))
               for name in ("model0.weights.h5", "model0_epoch_2.weights.h5"))
    assert ScoreHead.load(scorer_path(straight / "model0.weights.h5")).samples >= MIN_WINDOWS
    # the agent and its refinement head are those trained without the score head
    image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(tmp_path / "plain"), *TINY,
                               "--max_images", "6", "--refine", "1", "--epochs", "3"])
    assert same_weights(straight / "model0.weights.h5", tmp_path / "plain" / "model0.weights.h5")
    plain = tmp_path / "plain" / "model0.weights.h5"
    assert same_heads(refiner_path(straight / "model0.weights.h5"), refiner_path(plain))
    assert not scorer_path(plain).exists()

    def test(folder, *extra, model=straight):
        image_zooms_testing.main(["--path_voc_test", str(dataset), "--path_model", str(model), "--path_vgg",
                                  "random", "--refine", "1", "--path_testing_folder", str(tmp_path / folder), *extra])
        return json.loads((tmp_path / folder / "results.json").read_text())
    trigger, learned = test("trigger"), test("learned", "--score", "learned")
    assert trigger["score"] == "trigger" and learned["score"] == "learned" and "scores" not in trigger["detections"][0]
    assert [d["box"] for d in learned["detections"]] == [d["box"] for d in trigger["detections"]]    # the same search
    assert [d["scores"]["trigger"] for d in learned["detections"]] == [d["score"] for d in trigger["detections"]]
    assert [d["score"] for d in learned["detections"]] == [d["scores"]["learned"] for d in learned["detections"]]
    assert set(learned["score_auc"]) == {"trigger", "learned"} and set(trigger["score_auc"]) == {"score"}
    assert learned["score_auc"]["trigger"] == trigger["score_auc"]["score"]
    with pytest.raises(UserError, match="score learned: no score head scorer_model0.npz beside model0.weights.h5"):
        test("none", "--score", "learned", model=tmp_path / "plain")
    # detect() ranks by the head given, the trigger's Q-value kept beside
    from PIL import Image
    image = np.asarray(Image.open(next((dataset / "JPEGImages").glob("*.jpg"))))
    features = tiny_features(SimpleNamespace(cache_mb=0))
    boxes, scores, trajectory = detect(image, straight / "model0.weights.h5", features=features, detections="visited",
                                       refiner=refiner_path(straight / "model0.weights.h5"),
                                       scorer=scorer_path(straight / "model0.weights.h5"))
    assert list(scores) == sorted((step["scores"]["learned"] for step in trajectory), reverse=True)
    assert all(step["score"] == step["scores"]["learned"] for step in trajectory)
    with pytest.raises(UserError, match="scorer must be None, a refinement.ScoreHead or the path of a saved one"):
        detect(image, straight / "model0.weights.h5", features=features, scorer=5)


def test_a_demo_without_a_score_head_ranks_by_the_trigger_and_says_so(tmp_path, monkeypatch):
    from runs.testing_run import check_score_head
    monkeypatch.setattr("runs.testing_run.trained_weights", lambda *args: tmp_path / "model0.weights.h5")
    settings = SimpleNamespace(agent="trained", explicit=set(), demo=True, score="learned", path_model=str(tmp_path),
                               epoch=-1, model_name="")
    with pytest.warns(UserWarning, match="--demo: no score head scorer_model0.npz"):
        check_score_head(settings, 0, "image_zooms")
    assert settings.score == "trigger" and "no score head" in settings.score_missing
    # a 2016 weights file (model_name) never has one; asked for on the command line, it is one error
    monkeypatch.setattr("runs.testing_run.trained_weights", lambda *args: tmp_path / "model_image_zooms_2")
    settings = SimpleNamespace(agent="trained", explicit={"score"}, demo=True, score="learned",
                               path_model=str(tmp_path), epoch=-1, model_name="model_image_zooms_2")
    with pytest.raises(UserError, match="score learned: model_name 'model_image_zooms_2' is a weights file without a "
                                        "score head .*--score trigger"):
        check_score_head(settings, 0, "image_zooms")
    baseline = SimpleNamespace(agent="random", explicit={"score"}, score="learned")
    check_score_head(baseline, 0, "image_zooms")      # the baselines keep their own scores
    assert baseline.score == "trigger"


def test_a_full_score_sample_describes_only_the_boxes_it_keeps():
    """Once the reservoir is full a new box replaces a row with probability capacity / seen: its slot is drawn first,
    and only the boxes that get one are described (the describer stands in for the image's maps here)."""
    described = []

    class Describer:        # a box's "descriptor" is its coordinates: each kept row must hold its own box's
        descriptor_size = 4

        def score_descriptors(self, windows, items):
            described.extend(box for _, _, box in items)
            return np.array([np.asarray(box, np.float32) for _, _, box in items])

    class Shift:            # a refinement head that moves every window 1 pixel right
        def refine(self, descriptors, windows):
            return np.asarray(windows) + [1, 0, 1, 0]
    env = SimpleNamespace(width=100, height=100, image_id="a", boxes=np.array([[10.0, 10, 50, 50]]))
    sample = ScoreSample(4, capacity=8, seed=1)
    for image in range(30):
        windows = np.array([[x, image, x + 20, image + 20] for x in range(10)], np.float64)
        memory = SimpleNamespace(capacity=10, pos=0, states=np.concatenate([windows, np.zeros((10, 1))], axis=1))
        sample.add_search_steps([{"region": window} for window in windows], memory, env, None, Describer(), Shift())
    assert sample.seen > 60 and len(sample) == 8           # about half of 300 distinct windows taken, 8 kept
    assert len(described) < sample.seen / 2                 # the dropped ones were never described
    assert np.array_equal(sample.descriptors.astype(np.float64), sample.windows)   # each row its own box's
    assert all(window[0] + 19 == window[2] - 1 for window in sample.windows)      # the shifted (reported) boxes


def test_image_zooms_scores_a_box_by_its_window_and_the_box_pooled_from_the_unpainted_image():
    """Image-Zooms' score descriptor: the window's own (no forward) beside Pool45-Crops' descriptor of the box on the
    same VGG-16 weights (one forward an image, whatever the number of boxes), each at unit RMS."""
    from features import ImageZoomsFeatures, Pool45CropsFeatures
    image = np.random.default_rng(3).uniform(0, 255, (96, 128, 3)).astype(np.float32)
    boxes = [[0, 0, 128, 96], [10, 20, 60, 70], [64, 0, 128, 40]]
    features = ImageZoomsFeatures("random")
    windows = np.random.default_rng(4).uniform(0, 3, (3, features.descriptor_size)).astype(np.float32)
    described = features.score_descriptors(windows, [(("a", "reported box"), image, box) for box in boxes])
    assert isinstance(features.box_describer, Pool45CropsFeatures) and features.box_describer.forward_count == 1
    assert described.shape == (3, features.score_descriptor_size) and features.forward_count == 0
    pooled = Pool45CropsFeatures("random").describe([(None, image, box) for box in boxes])
    window_part, box_part = np.split(described, [features.descriptor_size], axis=1)
    assert np.allclose(window_part * np.sqrt((windows ** 2).mean(axis=1, keepdims=True)), windows, rtol=1e-5)
    assert np.allclose(box_part * np.sqrt((pooled ** 2).mean(axis=1, keepdims=True)), pooled, rtol=1e-5)
    assert np.allclose((box_part ** 2).mean(axis=1), 1, rtol=1e-4)
    assert tiny_features(SimpleNamespace(cache_mb=0)).box_describer.name == "image_zooms"   # no pool4: its crops
