"""The learning options (off by default): target network, double DQN, Huber loss, weight decay, flipped images, a
validation split that picks the epoch and descriptor standardisation. Each is checked to do what it says, to resume
exactly, and to leave the paper's update untouched when off."""
import json
from types import SimpleNamespace

import numpy as np
import pytest

import image_zooms_testing
import image_zooms_training
import run_folder
from errors import UserError
from test_resume import TINY, same_weights, tiny_features

from reinforcement import NUM_ACTIONS, STATE_SIZE, QLearner, build_q_network, q_targets

pytestmark = pytest.mark.usefixtures("small_q_network")   # plumbing, not the paper's width (conftest.py)


def batch(seed=0, size=8, reward_scale=1.0):
    rng = np.random.default_rng(seed)
    return (rng.random((size, STATE_SIZE), dtype=np.float32), rng.integers(NUM_ACTIONS, size=size),
            (reward_scale * rng.standard_normal(size)).astype(np.float32),
            rng.random((size, STATE_SIZE), dtype=np.float32), (rng.random(size) < 0.3).astype(np.float32))


def test_double_dqn_targets_take_the_online_argmax_valued_by_the_target_network():
    q_states = np.zeros((2, NUM_ACTIONS), dtype=np.float32)
    target_next = np.array([[1, 9, 0, 0, 0, 0], [5, 0, 0, 0, 0, 7]], dtype=np.float32)
    online_next = np.array([[3, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1]], dtype=np.float32)
    actions, rewards, terminals = np.array([0, 2]), np.array([1.0, 0.0], np.float32), np.zeros(2, np.float32)
    plain = np.asarray(q_targets(q_states, target_next, actions, rewards, terminals, 0.5))
    double = np.asarray(q_targets(q_states, target_next, actions, rewards, terminals, 0.5, online_next))
    assert plain[0, 0] == pytest.approx(1 + 0.5 * 9) and plain[1, 2] == pytest.approx(0.5 * 7)
    assert double[0, 0] == pytest.approx(1 + 0.5 * 1) and double[1, 2] == pytest.approx(0.5 * 7)
    assert np.count_nonzero(double) == 2          # the other actions keep Q(s) = 0


def test_target_network_is_a_copy_taken_every_n_updates():
    model = build_q_network(seed=0)
    initial = [w.copy() for w in model.get_weights()]
    learner = QLearner(model, 0.9, 1e-3, target_update=2)
    target_weights = lambda: learner.target_model.get_weights()     # noqa: E731
    learner.update(batch())                   # update 0: copied first (still the initial weights), then a step
    assert all(np.array_equal(a, b) for a, b in zip(target_weights(), initial))
    after_one = [w.copy() for w in model.get_weights()]
    learner.update(batch(1))                  # update 1: no copy
    assert all(np.array_equal(a, b) for a, b in zip(target_weights(), initial))
    learner.update(batch(2))                  # update 2: copy of the weights after two steps
    assert not all(np.array_equal(a, b) for a, b in zip(target_weights(), after_one))
    assert not all(np.array_equal(a, b) for a, b in zip(target_weights(), model.get_weights()))  # one step since
    # the targets of s′ come from the target network, not the online one
    states, actions, rewards, next_states, terminals = batch(3)
    expected = q_targets(learner.q_values(states), np.asarray(learner.target_model(next_states, training=False)),
                         actions, rewards, terminals, 0.9)
    assert np.allclose(learner.targets((states, actions, rewards, next_states, terminals)), expected, atol=1e-6)


def test_huber_loss_grows_linearly_with_large_errors():
    losses = {}
    for loss in ("mse", "huber"):
        learner = QLearner(build_q_network(seed=0), 0.9, 1e-6, loss=loss)
        losses[loss] = learner.update(batch(reward_scale=100.0))
    assert np.isfinite(losses["huber"]) and losses["huber"] < 0.1 * losses["mse"]
    assert losses["huber"] > 1.0           # |error| ≈ 100 on one action in six: about (100 − 0.5) / 6 on average


def test_weight_decay_shrinks_the_weights_and_zero_is_the_paper_update():
    norms = {}
    for decay in (0.0, 100.0):
        model = build_q_network(seed=0)
        learner = QLearner(model, 0.9, 1e-3, weight_decay=decay)
        assert bool(learner.options) == (decay > 0)
        for step in range(3):
            learner.update(batch(step))
        norms[decay] = float(np.linalg.norm(model.get_weights()[0]))
    assert norms[100.0] < 0.8 * norms[0.0]       # each update multiplies the weights by 1 − 0.1


def test_bad_option_values_are_refused(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(image_zooms_training, "make_features", tiny_features)
    for flags, message in ((["--double_dqn", "1"], "double_dqn 1 needs a target network"),
                           (["--loss", "l1"], "loss takes mse or huber"),
                           (["--target_update", "-1"], "target_update must be 0"),
                           (["--weight_decay", "-0.1"], "weight_decay cannot be negative"),
                           (["--flip", "2"], "flip takes 0 or 1"),
                           (["--update_every", "0"], "update_every must be a whole number of steps, 1 or more"),
                           (["--images_per_epoch", "-1"], "images_per_epoch must be a whole number of images"),
                           (["--validation_images", "4"], "validation_images 4: only 4 training images")):
        with pytest.raises(UserError, match=message):
            image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(tmp_path / "m"), *TINY,
                                       "--epochs", "1", *flags])


def test_mirrored_environment_flips_the_image_and_its_boxes():
    from episodes import make_environment, mirror_boxes
    from parse_xml_annotations import Annotation, ImageRecord, VocObject
    image = np.arange(4 * 10 * 3, dtype=np.uint8).reshape(4, 10, 3)
    record = ImageRecord("root", "001", Annotation("001", 10, 4, [VocObject("aeroplane", np.array([1.0, 0, 4, 2]),
                                                                            False)]))
    plain = make_environment(record, "aeroplane", 0.75, image)
    mirrored = make_environment(record, "aeroplane", 0.75, image, mirror=True)
    assert np.array_equal(mirrored.image, image[:, ::-1]) and mirrored.image_key != plain.image_key
    assert np.array_equal(mirrored.boxes, [[6, 0, 9, 2]])
    assert np.array_equal(mirror_boxes(mirror_boxes(plain.boxes, 10), 10), plain.boxes)
    region = np.array([0.0, 0, 5, 4])
    assert np.allclose(plain.ious(region), mirrored.ious(mirror_boxes(region, 10)[0]))


def train_straight_and_resumed(dataset, tmp_path, options):
    """3 epochs straight, and 2 then ``-n 2`` to 3, with ``options``: the same last weights and loss (an exact
    resume). Returns the straight run's folder and log."""
    def train(folder, *extra):
        image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(tmp_path / folder), *TINY,
                                   *options, *extra])

    train("straight", "--epochs", "3")
    train("resumed", "--epochs", "2")
    train("resumed", "--epochs", "3", "-n", "2")
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert same_weights(straight / "model0.weights.h5", resumed / "model0.weights.h5")
    log = run_folder.read_log(straight / "training_log_model0.csv")
    assert run_folder.read_log(resumed / "training_log_model0.csv")[-1]["mean_loss"] == log[-1]["mean_loss"]
    return straight, log


def test_options_on_resume_exactly_and_validation_picks_the_testing_epoch(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(image_zooms_training, "make_features", tiny_features)
    monkeypatch.setattr(image_zooms_testing, "make_features", lambda _: tiny_features(SimpleNamespace(cache_mb=16)))
    options = ["--target_update", "3", "--double_dqn", "1", "--loss", "huber", "--weight_decay", "0.5",
               "--flip", "1", "--validation_images", "1"]
    straight, log = train_straight_and_resumed(dataset, tmp_path, options)
    assert all(row["images"] == 3 and 0 <= row["validation_ap"] <= 1 for row in log)    # 4 images, 1 held out
    assert sum(row["updates"] for row in log) > 3       # the target network was copied more than once

    best = run_folder.best_epoch(log)
    assert same_weights(straight / "model0_best.weights.h5", straight / f"model0_epoch_{best}.weights.h5")
    image_zooms_testing.main(["--path_voc_test", str(dataset), "--path_model", str(straight),
                                        "--path_testing_folder", str(tmp_path / "test"), "--path_vgg", "random",
                                        "--epoch", "best", "--max_images", "2"])
    results = json.loads((tmp_path / "test" / "results.json").read_text())
    assert results["epoch"] == best and results["weights"].endswith("model0_best.weights.h5")
    (tmp_path / "no_validation").mkdir()
    with pytest.raises(UserError, match="--epoch best: no"):
        image_zooms_testing.main(["--path_voc_test", str(dataset), "--path_model", str(tmp_path / "no_validation"),
                                  "--path_vgg", "random", "--epoch", "best"])


def test_update_every_takes_a_step_after_every_kth_agent_step_and_resumes_exactly(dataset, tmp_path, monkeypatch,
                                                                                 capsys):
    monkeypatch.setattr(image_zooms_training, "make_features", tiny_features)
    straight, log = train_straight_and_resumed(dataset, tmp_path, ["--update_every", "3"])
    assert "learning options (not the paper's method): update_every 3" in capsys.readouterr().out
    # the memory (12 transitions) is full from epoch 1 on: steps 3, 6, 9, … of each epoch take a minibatch step
    assert all(row["updates"] == row["steps"] // 3 for row in log[1:]) and log[1]["steps"] >= 3
    assert log[0]["updates"] <= log[0]["steps"] // 3


def test_images_per_epoch_draws_that_many_images_afresh_each_epoch_and_resumes_exactly(dataset, tmp_path,
                                                                                        monkeypatch, capsys):
    import training_run
    monkeypatch.setattr(image_zooms_training, "make_features", tiny_features)
    searched = []
    load = training_run.load_record_image
    monkeypatch.setattr(training_run, "load_record_image",
                        lambda record, report: searched.append(record.image_id) or load(record, report))
    straight, log = train_straight_and_resumed(dataset, tmp_path, ["--images_per_epoch", "2"])
    assert "learning options (not the paper's method): images_per_epoch 2" in capsys.readouterr().out
    assert [row["images"] for row in log] == [2, 2, 2]
    first_run = searched[:6]                              # the straight run's 3 epochs of 2 images
    assert len(set(first_run)) > 2                        # not the same 2 images every epoch
    # every image every epoch takes the same draws as the paper's loop: the same weights as without the option
    image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(tmp_path / "all"), *TINY,
                               "--epochs", "2", "--images_per_epoch", "4"])
    image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(tmp_path / "off"), *TINY,
                               "--epochs", "2"])
    assert same_weights(tmp_path / "all" / "model0.weights.h5", tmp_path / "off" / "model0.weights.h5")
    assert "only 4 training images, so every epoch searches all of them" in capsys.readouterr().out


def test_options_off_leave_the_log_as_it_was(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(image_zooms_training, "make_features", tiny_features)
    image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(tmp_path), *TINY, "--epochs", "1"])
    header = (tmp_path / "training_log_model0.csv").read_text().splitlines()[0]
    assert header == ",".join(run_folder.LOG_FIELDS)
    assert not (tmp_path / "model0_best.weights.h5").exists()


def test_standardization_folds_into_the_first_layer_and_unfolds_back():
    from features import DescriptorStandardization
    from reinforcement import DESCRIPTOR_SIZE
    rng = np.random.default_rng(3)
    sample = np.maximum(rng.normal(0, 1, (40, DESCRIPTOR_SIZE)) * rng.gamma(1, 30, DESCRIPTOR_SIZE), 0)
    sample[:, :100] = 0.0                                   # entries that never fire in the sample
    standardization = DescriptorStandardization.fit(sample)
    floor = np.sqrt(np.mean(sample.std(axis=0) ** 2))
    assert np.allclose(standardization.scale[:100], floor) and np.all(standardization.scale >= floor * (1 - 1e-6))
    standardized = standardization.apply(sample)
    assert np.allclose(standardized.mean(axis=0), 0, atol=1e-4)
    # a near-constant entry stays near 0 instead of being blown up to unit spread
    assert np.abs(standardized[:, :100]).max() == 0 and standardized.std(axis=0).max() < 1

    model, folded = build_q_network(seed=0), build_q_network(seed=1)
    kernel, bias = model.layers[0].get_weights()
    folded.set_weights(model.get_weights())
    folded.layers[0].set_weights(list(standardization.fold(kernel, bias)))
    raw = np.concatenate([sample[:8], rng.random((8, STATE_SIZE - DESCRIPTOR_SIZE))], axis=1).astype(np.float32)
    states = np.concatenate([standardization.apply(raw[:, :DESCRIPTOR_SIZE]), raw[:, DESCRIPTOR_SIZE:]], axis=1)
    expected = np.asarray(model(states, training=False))
    assert np.allclose(np.asarray(folded(raw, training=False)), expected, rtol=1e-3, atol=1e-5)
    assert not np.allclose(np.asarray(model(raw, training=False)), expected, rtol=1e-3, atol=1e-5)
    back_kernel, back_bias = standardization.unfold(*standardization.fold(kernel, bias))
    assert np.allclose(back_kernel, kernel, rtol=1e-5, atol=1e-8) and np.allclose(back_bias, bias, atol=1e-4)
    with pytest.raises(UserError, match="all have the same descriptor"):
        DescriptorStandardization.fit(np.ones((3, DESCRIPTOR_SIZE)))


def test_standardize_resumes_exactly_and_its_checkpoint_is_the_network_on_raw_descriptors(dataset, tmp_path,
                                                                                         monkeypatch):
    from features import DescriptorStandardization
    from reinforcement import DESCRIPTOR_SIZE
    monkeypatch.setattr(image_zooms_training, "make_features", tiny_features)
    straight, _ = train_straight_and_resumed(dataset, tmp_path, ["--standardize", "1"])

    # the checkpoint on raw descriptors gives the Q-values the trained network gives on standardised ones
    state = run_folder.read_resume_state(straight / "resume_model0_epoch_2.h5", 2)["standardization"]
    standardization = DescriptorStandardization(state["mean"], state["scale"])
    checkpoint, trained = build_q_network(), build_q_network()
    checkpoint.load_weights(straight / "model0.weights.h5")
    trained.set_weights(checkpoint.get_weights())
    trained.layers[0].set_weights([state["kernel"], state["bias"]])
    assert not np.allclose(checkpoint.layers[0].get_weights()[0], state["kernel"])
    features = tiny_features(SimpleNamespace(cache_mb=0))
    image = np.random.default_rng(0).integers(0, 255, (80, 96, 3)).astype(np.uint8)
    raw = features.describe([(None, image, np.array([0.0, 0, 96, 80])), (None, image, np.array([8.0, 4, 60, 50]))])
    history = np.zeros((2, STATE_SIZE - DESCRIPTOR_SIZE), dtype=np.float32)
    expected = np.asarray(trained(np.concatenate([standardization.apply(raw), history], axis=1), training=False))
    got = np.asarray(checkpoint(np.concatenate([raw, history], axis=1), training=False))
    assert np.allclose(got, expected, rtol=1e-3, atol=1e-5)

    image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(tmp_path / "plain"), *TINY,
                               "--epochs", "1"])
    with pytest.raises(UserError, match="holds no descriptor standardisation"):
        image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(tmp_path / "plain"), *TINY,
                                   "--epochs", "2", "-n", "1", "--standardize", "1"])
