"""The box-refinement stage (``refine``, beyond the paper): R-CNN's box parameterisation, a head that learns to fit
windows to their objects, its sample and files through training, resume and testing."""
import json

import numpy as np
import pytest

import image_zooms_testing
import image_zooms_training
import refinement
from runs.errors import UserError
from metrics import iou_many
from refinement import BoxRefiner, WindowSample, apply_deltas, box_deltas, refiner_path
from conftest import DESCRIPTOR_SIZE
from test_resume import TINY, same_weights, tiny_features

pytestmark = pytest.mark.usefixtures("small_q_network")


def test_deltas_by_hand_and_their_round_trip():
    window, box = np.array([[0.0, 0, 10, 20]]), np.array([[5.0, 0, 25, 10]])
    # centres (5, 10) and (15, 5): shifts 10 / 10 = 1, −5 / 20 = −0.25; sizes 20 / 10 and 10 / 20
    np.testing.assert_allclose(box_deltas(window, box), [[1.0, -0.25, np.log(2), np.log(0.5)]])
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 100, (50, 2))
    windows = np.concatenate([corners, corners + rng.uniform(10, 60, (50, 2))], axis=1)
    boxes = windows + rng.uniform(-2, 2, (50, 4))
    np.testing.assert_allclose(apply_deltas(windows, box_deltas(windows, boxes)), boxes, atol=1e-9)
    clipped = apply_deltas(window, [[0, 0, 5.0, -5.0]], width=12, height=30)
    assert clipped.min() >= 0 and clipped[0, 2] <= 12 and clipped[0, 3] - clipped[0, 1] == pytest.approx(5)


def tiny_problem(seed, count):
    """Windows around objects whose descriptors hold (in a random 64-value code, with noise) where the object is
    in the window: what a region descriptor shows of an object that the window crops off-centre."""
    rng = np.random.default_rng(seed)
    boxes = np.concatenate([rng.uniform(0, 50, (count, 2)), np.zeros((count, 2))], axis=1)
    boxes[:, 2:] = boxes[:, :2] + rng.uniform(20, 60, (count, 2))
    size = boxes[:, 2:] - boxes[:, :2]
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2 + rng.uniform(-0.3, 0.3, (count, 2)) * size
    window_size = size * np.exp(rng.uniform(-0.5, 0.5, (count, 2)))
    windows = np.concatenate([centre - window_size / 2, centre + window_size / 2], axis=1)
    code = np.random.default_rng(99).standard_normal((4, 64))
    descriptors = box_deltas(windows, boxes) @ code + 0.05 * rng.standard_normal((count, 64))
    return descriptors, windows, boxes


def mean_iou(boxes, objects):
    return float(np.mean([iou_many(obj[None], box)[0] for box, obj in zip(boxes, objects)]))


def test_the_head_learns_to_fit_windows_to_their_objects(monkeypatch):
    descriptors, windows, boxes = tiny_problem(1, 300)
    sample = WindowSample(64, capacity=500, seed=0)
    for descriptor, window, box in zip(descriptors, windows, boxes):
        sample.add(descriptor, window, box)
    head = sample.fit()
    test_descriptors, test_windows, test_boxes = tiny_problem(2, 100)
    refined = head.refine(test_descriptors, test_windows)
    before, after = mean_iou(test_windows, test_boxes), mean_iou(refined, test_boxes)
    assert after > before + 0.15 and after > 0.85
    # with broken regression values (the centre shift's sign flipped) the head does not help
    monkeypatch.setattr(refinement, "box_deltas", lambda w, b: box_deltas(w, b) * [-1, -1, 1, 1])
    broken = sample.fit().refine(test_descriptors, test_windows)
    assert mean_iou(broken, test_boxes) < before


def test_the_sample_keeps_distinct_windows_up_to_its_size_and_survives_a_resume_state():
    descriptors, windows, boxes = tiny_problem(3, 40)
    sample = WindowSample(64, capacity=16, seed=4)
    for _ in range(2):                  # each window twice: kept once
        for descriptor, window, box in zip(descriptors, windows, boxes):
            sample.add(descriptor, window, box)
    assert sample.seen == 40 and len(sample) == 16
    restored = WindowSample(64, capacity=16, seed=5)
    restored.load_state_dict(sample.state_dict())
    more, more_windows, more_boxes = tiny_problem(4, 20)
    for one in (sample, restored):      # the same replacements after a resume
        for descriptor, window, box in zip(more, more_windows, more_boxes):
            one.add(descriptor, window, box)
    assert restored.seen == sample.seen and np.array_equal(restored.descriptors, sample.descriptors)
    damaged = dict(sample.state_dict(), windows=sample.state_dict()["windows"].copy())
    damaged["windows"][0, 0] = np.nan   # a damaged resume state: refused, not a head fitted to NaN
    with pytest.raises(ValueError, match="its windows are not 16 rows of finite numbers"):
        WindowSample(64, capacity=16).load_state_dict(damaged)
    with pytest.raises(ValueError, match="its boxes are not 16 rows"):
        WindowSample(64, capacity=16).load_state_dict(dict(sample.state_dict(),
                                                                          boxes=np.zeros((16, 3))))


def same_heads(path_a, path_b):
    a, b = np.load(path_a), np.load(path_b)
    return a.files == b.files and all(np.array_equal(a[key], b[key]) for key in a.files)


def test_refine_trains_resumes_exactly_and_tests_with_both_boxes(dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(image_zooms_training, "make_features", tiny_features)
    monkeypatch.setattr(image_zooms_testing, "make_features", tiny_features)

    def train(folder, *extra):
        image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(tmp_path / folder), *TINY,
                                   "--refine", "1", *extra])
    train("straight", "--epochs", "3")
    assert "learning options (not the paper's method): refine 1" in capsys.readouterr().out
    train("resumed", "--epochs", "2")
    train("resumed", "--epochs", "3", "-n", "2")
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    for name in ("model0.weights.h5", "model0_epoch_2.weights.h5"):
        assert same_weights(straight / name, resumed / name)
        assert same_heads(refiner_path(straight / name), refiner_path(resumed / name))
    # the agent is the one trained without refine
    image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(tmp_path / "plain"), *TINY,
                               "--epochs", "3"])
    assert same_weights(straight / "model0.weights.h5", tmp_path / "plain" / "model0.weights.h5")
    assert not refiner_path(tmp_path / "plain" / "model0.weights.h5").exists()

    def test(folder, *extra):
        image_zooms_testing.main(["--path_voc_test", str(dataset), "--path_model", str(straight), "--path_vgg",
                                  "random", "--path_testing_folder", str(tmp_path / folder), *extra])
        return json.loads((tmp_path / folder / "results.json").read_text())
    plain, refined = test("plain"), test("refined", "--refine", "1")
    assert refined["refine"] and not plain["refine"]
    assert [d["window"] for d in refined["detections"]] == [d["box"] for d in plain["detections"]]
    assert [d["score"] for d in refined["detections"]] == [d["score"] for d in plain["detections"]]
    assert any(d["box"] != d["window"] for d in refined["detections"])
    demoted = test("demoted", "--refine", "1", "--duplicates", "demote")   # the ranking only: the same boxes
    assert [d["box"] for d in demoted["detections"]] == [d["box"] for d in refined["detections"]]
    assert demoted["duplicates"] == "demote" and refined["duplicates"] == "keep"
    assert demoted["max_recall"] == refined["max_recall"]
    assert all(isinstance(d["duplicate"], bool) for d in demoted["detections"])
    upper = test("upper", "--refine", "1", "--agent", "upper_bound")     # the ceiling refined by the same head
    assert all("window" in d for d in upper["detections"])
    upper_windows = test("upper_windows", "--agent", "upper_bound")     # the same search, scored by its windows
    assert [d["window"] for d in upper["detections"]] == [d["box"] for d in upper_windows["detections"]]
    assert any(a["score"] != b["score"] for a, b in zip(upper["detections"], upper_windows["detections"]))
    with pytest.raises(UserError, match="no refinement head"):
        image_zooms_testing.main(["--path_voc_test", str(dataset), "--path_model", str(tmp_path / "plain"),
                                  "--path_vgg", "random", "--refine", "1"])


def test_an_epoch_without_a_head_says_so_and_keeps_no_earlier_head(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(image_zooms_training, "make_features", tiny_features)
    folder = tmp_path / "m"
    folder.mkdir()
    earlier = refiner_path(folder / "model0.weights.h5")         # another run's head, for other weights
    BoxRefiner(np.zeros(3), 1.0, np.zeros((3, 4)), np.zeros(4)).save(earlier)
    monkeypatch.setattr("runs.training_run.MIN_WINDOWS", 10 ** 6)
    monkeypatch.setattr("refinement.MIN_WINDOWS", 10 ** 6)
    with pytest.warns(UserWarning, match="fewer than the 1000000 the refinement head needs; epoch 0 is saved "
                                         "without one"):
        image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(folder), *TINY, "--epochs", "1",
                                   "--refine", "1"])
    assert (folder / "model0.weights.h5").is_file() and not earlier.exists()
    plain = tmp_path / "plain"              # and a run without refine leaves no earlier head beside its weights
    plain.mkdir()
    BoxRefiner(np.zeros(3), 1.0, np.zeros((3, 4)), np.zeros(4)).save(refiner_path(plain / "model0.weights.h5"))
    image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(plain), *TINY, "--epochs", "1"])
    assert not list(plain.glob("refiner_*"))


@pytest.mark.parametrize("damage, problem", [
    (lambda head: None, None),
    (lambda head: head.update(bias=head["bias"] * np.nan), "bias holds a value that is not finite"),
    (lambda head: head.update(bias=np.zeros(7)), r"bias has shape \(7,\), not \(4,\)"),
    (lambda head: head.update(mean=head["mean"][:5], weights=head["weights"][:5]), "mean has shape"),
    (lambda head: head.update(scale=np.array(0.0)), "scale is 0.0, not a positive number"),
    (lambda head: head.update(scale=np.zeros(3)), "not a refinement head"),
    (lambda head: head.pop("ridge"), "not a refinement head"),
])
def test_a_damaged_head_file_is_one_line(tmp_path, damage, problem):
    path = tmp_path / "refiner_model0.npz"
    descriptors, windows, boxes = tiny_problem(0, 40)
    descriptors = np.pad(descriptors, ((0, 0), (0, DESCRIPTOR_SIZE - descriptors.shape[1])))   # a VGG-16 descriptor's
    BoxRefiner.fit(descriptors, box_deltas(windows, boxes)).save(path)
    with np.load(path) as arrays:
        head = dict(arrays)
    damage(head)
    with open(path, "wb") as handle:
        np.savez(handle, **head)
    if problem is None:
        assert BoxRefiner.load(path, DESCRIPTOR_SIZE).weights.shape == (DESCRIPTOR_SIZE, 4)
        return
    with pytest.raises(UserError, match=problem) as caught:
        BoxRefiner.load(path, DESCRIPTOR_SIZE)
    assert str(caught.value).startswith(str(path)) and "\n" not in str(caught.value)
    path.write_bytes(b"not numpy")
    with pytest.raises(UserError, match="not a refinement head"):
        BoxRefiner.load(path, DESCRIPTOR_SIZE)


def test_the_refinement_benchmark_keeps_earlier_runs_rows_and_commands(tmp_path):
    from types import SimpleNamespace
    from experiments.refinement_benchmark import earlier_rows
    report = tmp_path / "refinement.json"
    rows = [{"dataset": dataset, "model": "image_zooms", "seed": 0} for dataset in ("synthetic", "plain")]
    report.write_text(json.dumps({"command": "python experiments/refinement_benchmark.py --datasets synthetic,plain",
                                  "rows": rows}))
    again = SimpleNamespace(datasets=["plain"], models=["image_zooms"], seed_list=[0])
    kept, commands = earlier_rows(report, again)
    assert kept == rows[:1] and commands == ["python experiments/refinement_benchmark.py --datasets synthetic,plain"]
    report.write_text(json.dumps({"rows": "not rows"}))
    with pytest.raises(UserError, match="not a refinement benchmark report"):
        earlier_rows(report, again)
