"""The authors' 2016 models: Q-network weights written by Keras 1.x and 2.x ``save_weights``.

The files here are written with h5py in the two layouts, from a project Q-network with seeded random weights
(biases included, so that a swapped or misplaced array shows). A 2016 file came from Theano: the first layer's
25,088 descriptor rows are in (512, 7, 7) order there, (7, 7, 512) here; ``to_channels_first`` writes them the 2016
way. Loading must give back the very same weights, hence bit-identical Q-values.
"""
import json
import shutil

import h5py
import numpy as np
import pytest

import image_zooms_testing
import image_zooms_training
from conftest import tiny_backbone
from detection import detect, load_q_network, set_q_network_weights
from runs.q_network_files import descriptor_rows_channels_last
from runs.errors import UserError
from reinforcement import build_q_network
from conftest import DESCRIPTOR_SIZE, STATE_SIZE


@pytest.fixture(scope="module")
def network():
    """A project Q-network with seeded random weights and biases."""
    model = build_q_network(STATE_SIZE, seed=5)
    rng = np.random.default_rng(5)
    model.set_weights([rng.normal(0, 0.02, array.shape).astype(np.float32) for array in model.get_weights()])
    return model


def read_q_network_weights(path, weights_order="auto", into=None):
    """``(weights, description)`` of a file loaded into the paper's network."""
    network = into if into is not None else build_q_network(STATE_SIZE)
    description = set_q_network_weights(network, path, weights_order)
    return network.get_weights(), description


@pytest.fixture(scope="module")
def states():
    rng = np.random.default_rng(6)
    states = np.abs(rng.normal(0, 2, (16, STATE_SIZE))).astype(np.float32)
    states[:, DESCRIPTOR_SIZE:] = 0
    for row, actions in enumerate(rng.integers(0, 5, (16, 4))):        # one-hot histories
        states[row, DESCRIPTOR_SIZE + 6 * np.arange(4) + actions] = 1
    return states


def q_values(model, states):
    return np.asarray(model(states, training=False))


def to_channels_first(kernel):
    """Our first-layer kernel with its descriptor rows in the 2016 (Theano) order (512, 7, 7); history rows stay."""
    descriptor = kernel[:DESCRIPTOR_SIZE].reshape(7, 7, 512, -1).transpose(2, 0, 1, 3).reshape(DESCRIPTOR_SIZE, -1)
    return np.concatenate([descriptor, kernel[DESCRIPTOR_SIZE:]])


def write_keras1(path, arrays, channels_first=True, attributes=None, first_dense=4):
    """A Keras 1.x ``save_weights`` file of the 2016 Q-network (Dense, Activation, Dropout ×2, Dense, Activation).

    ``first_dense``: the number of its first Dense layer (4 in the 2016 testing script: VGG-16's Dense layers were
    built first in that process)."""
    arrays = list(arrays)
    if channels_first:
        arrays[0] = to_channels_first(arrays[0])
    numbers = [first_dense + i for i in range(3)]
    layer_names = []
    with h5py.File(path, "w") as handle:
        for index, number in enumerate(numbers):
            layer_names += [f"dense_{number}", f"activation_{number}"] + ([f"dropout_{number}"] if index < 2 else [])
            dense = handle.create_group(f"dense_{number}")
            dense.attrs["weight_names"] = [f"dense_{number}_W".encode(), f"dense_{number}_b".encode()]
            dense[f"dense_{number}_W"] = arrays[2 * index]
            dense[f"dense_{number}_b"] = arrays[2 * index + 1]
            for other in (f"activation_{number}", f"dropout_{number}"):
                if other in layer_names:
                    handle.create_group(other).attrs["weight_names"] = []
        handle.attrs["layer_names"] = [name.encode() for name in layer_names]
        for key, value in (attributes or {}).items():
            handle.attrs[key] = value.encode()
    return path


def write_keras2(path, arrays, backend="tensorflow", channels_first=False, whole_model=False):
    """A Keras 2.x ``save_weights`` file (or, ``whole_model``, the ``model_weights`` group of ``model.save``)."""
    arrays = list(arrays)
    if channels_first:
        arrays[0] = to_channels_first(arrays[0])
    with h5py.File(path, "w") as handle:
        root = handle.create_group("model_weights") if whole_model else handle
        root.attrs["layer_names"] = [b"dense_1", b"dropout_1", b"dense_2", b"dropout_2", b"dense_3"]
        for index in range(3):
            name = f"dense_{index + 1}"
            group = root.create_group(name)
            group.attrs["weight_names"] = [f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()]
            group[f"{name}/kernel:0"] = arrays[2 * index]
            group[f"{name}/bias:0"] = arrays[2 * index + 1]
        for name in ("dropout_1", "dropout_2"):
            root.create_group(name).attrs["weight_names"] = []
        handle.attrs["backend"] = backend.encode()
        handle.attrs["keras_version"] = b"2.1.6"
    return path


def loads_identical(path, network, states, weights_order="auto"):
    loaded = load_q_network(path, STATE_SIZE, weights_order)
    assert all(np.array_equal(a, b) for a, b in zip(loaded.get_weights(), network.get_weights()))
    np.testing.assert_array_equal(q_values(loaded, states), q_values(network, states))


# ---------------------------------------------------------------------------------------------------------------
# the layouts

def test_this_projects_file_under_any_name(network, states, tmp_path):
    network.save_weights(tmp_path / "model0.weights.h5")
    shutil.copy(tmp_path / "model0.weights.h5", tmp_path / "model0h5")
    for name in ("model0.weights.h5", "model0h5"):
        loads_identical(tmp_path / name, network, states)
        assert read_q_network_weights(tmp_path / name)[1].startswith("Keras 3 weights file (this project)")


def test_keras1_theano_file_without_backend_is_reordered(network, states, tmp_path):
    path = write_keras1(tmp_path / "model0h5", network.get_weights())
    loads_identical(path, network, states)
    description = read_q_network_weights(path)[1]
    assert "Keras 1.x" in description and "no backend attribute" in description and "reordered" in description


def test_keras1_2_file_with_theano_backend_is_reordered(network, states, tmp_path):
    path = write_keras1(tmp_path / "model_image_zooms", network.get_weights(),
                        attributes={"keras_version": "1.2.2", "backend": "theano"})
    loads_identical(path, network, states)
    assert "Keras 1.2.2" in read_q_network_weights(path)[1]


def test_keras2_tensorflow_file_is_not_reordered(network, states, tmp_path):
    path = write_keras2(tmp_path / "model0_epoch_3h5", network.get_weights())
    loads_identical(path, network, states)
    assert "as they are" in read_q_network_weights(path)[1]
    loads_identical(write_keras2(tmp_path / "whole", network.get_weights(), whole_model=True), network, states)


def test_keras2_theano_file_is_reordered(network, states, tmp_path):
    path = write_keras2(tmp_path / "model0h5", network.get_weights(), backend="theano", channels_first=True)
    loads_identical(path, network, states)


def test_weights_order_overrides_the_file(network, states, tmp_path):
    # a Keras 1 file without backend whose rows are channels last anyway, and a TensorFlow file written channels first
    keras1 = write_keras1(tmp_path / "keras1", network.get_weights(), channels_first=False)
    loads_identical(keras1, network, states, weights_order="channels_last")
    assert not np.array_equal(q_values(load_q_network(keras1, STATE_SIZE), states), q_values(network, states))
    keras2 = write_keras2(tmp_path / "keras2", network.get_weights(), channels_first=True)
    loads_identical(keras2, network, states, weights_order="channels_first")
    assert "set by weights_order" in read_q_network_weights(keras2, "channels_first")[1]
    with pytest.raises(UserError, match="weights_order must be one of auto, channels_first, channels_last"):
        load_q_network(keras2, STATE_SIZE, "theano")


def test_descriptor_rows_against_index_arithmetic():
    """Row c·49 + y·7 + x of the 2016 kernel (channels first) is row y·7·512 + x·512 + c of ours."""
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(STATE_SIZE, 3)).astype(np.float32)
    reordered = descriptor_rows_channels_last(kernel)
    for c, y, x in list(zip(rng.integers(0, 512, 50), rng.integers(0, 7, 50), rng.integers(0, 7, 50))) + \
            [(0, 0, 0), (511, 6, 6), (1, 0, 0), (0, 0, 1)]:
        np.testing.assert_array_equal(reordered[y * 7 * 512 + x * 512 + c], kernel[c * 49 + y * 7 + x])
    np.testing.assert_array_equal(reordered[DESCRIPTOR_SIZE:], kernel[DESCRIPTOR_SIZE:])     # history rows stay
    np.testing.assert_array_equal(to_channels_first(reordered), kernel)


# ---------------------------------------------------------------------------------------------------------------
# broken files

def test_broken_files_give_one_line_user_errors(network, tmp_path):
    arrays = network.get_weights()
    (tmp_path / "text").write_text("not weights")
    with h5py.File(tmp_path / "empty.h5", "w") as handle:
        handle["something"] = np.zeros(3)
    vgg_like = [arrays[0][:DESCRIPTOR_SIZE], *arrays[1:]]                   # no history rows
    write_keras1(tmp_path / "no_history", vgg_like)
    write_keras2(tmp_path / "transposed", [arrays[0], arrays[1], arrays[2], arrays[3], arrays[4].T, arrays[5]])
    write_keras1(tmp_path / "two_layers", arrays)
    with h5py.File(tmp_path / "two_layers", "a") as handle:
        del handle["dense_6"]["dense_6_W"], handle["dense_6"]["dense_6_b"]
        handle["dense_6"].attrs["weight_names"] = []
    write_keras1(tmp_path / "missing_dataset", arrays)
    with h5py.File(tmp_path / "missing_dataset", "a") as handle:
        del handle["dense_5"]["dense_5_b"]
    write_keras1(tmp_path / "diverged", [arrays[0], arrays[1] * np.nan, *arrays[2:]])
    cases = [("absent", "Q-network weights file not found"), ("text", "not HDF5"),
             ("diverged", "layer dense_4 holds a value that is not finite"),
             ("empty.h5", "neither Keras 1/2 'layer_names' nor Keras 3 'layers'"),
             ("no_history", r"layer dense_4 has kernel \(25088, 1024\) .* needs \(25112, 1024\)"),
             ("transposed", r"layer dense_3 has kernel \(6, 1024\)"),
             ("two_layers", "2 layers with weights, the Q-network has 3"),
             ("missing_dataset", "layer dense_5 lists weight dense_5_b but has no such dataset")]
    for name, message in cases:
        with pytest.raises(UserError, match=message) as error:
            read_q_network_weights(tmp_path / name)
        assert str(tmp_path / name) in str(error.value) and "\n" not in str(error.value)


# ---------------------------------------------------------------------------------------------------------------
# detect(), the testing scripts and fine-tuning

@pytest.fixture(scope="module")
def features():
    from features import ImageZoomsFeatures
    return ImageZoomsFeatures(backbone=tiny_backbone(), cache_mb=0)


def test_detect_takes_a_2016_file(network, features, tmp_path):
    image = np.random.default_rng(3).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    path = write_keras1(tmp_path / "model_image_zooms_2", network.get_weights())
    expected = detect(image, network, features=features, number_of_steps=6, detections="visited")
    found = detect(image, path, features=features, number_of_steps=6, detections="visited")
    assert found[2] == expected[2]
    np.testing.assert_array_equal(found[0], expected[0])
    np.testing.assert_array_equal(found[1], expected[1])


TINY = ["--path_vgg", "random", "--buffer_experience_replay", "12", "--batch_size", "4", "--number_of_steps", "3",
        "--learning_rate", "1e-4", "--max_images", "3", "--cache_mb", "0"]


def tiny_features(settings):
    from features import ImageZoomsFeatures
    return ImageZoomsFeatures(backbone=tiny_backbone(), cache_mb=0)


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    """A checkpoint of a tiny training run (one epoch on three synthetic images, the tiny backbone)."""
    models = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(image_zooms_training, "make_features", tiny_features)
        image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(models), "--epochs", "1", *TINY])
    return models


def run_test(dataset, out, *extra):
    image_zooms_testing.main(["--path_voc_test", str(dataset), "--path_testing_folder", str(out),
                              "--number_of_steps", "5", "--path_vgg", "random", *extra])
    return json.loads((out / "results.json").read_text())


def test_a_checkpoint_rewritten_in_the_2016_layouts_gives_the_same_detections(trained, dataset, tmp_path,
                                                                               monkeypatch, capsys):
    """The acceptance check: ``--path_model DIR --model_name model0h5`` with nothing else in DIR."""
    monkeypatch.setattr(image_zooms_testing, "make_features", tiny_features)
    expected = run_test(dataset, tmp_path / "checkpoint", "--path_model", str(trained))
    assert expected["detections"] and expected["num_images"] > 0
    arrays = load_q_network(trained / "model0.weights.h5", STATE_SIZE).get_weights()
    for layout, write in (("keras1", write_keras1), ("keras2", write_keras2)):
        folder = tmp_path / layout
        folder.mkdir()
        write(folder / "model0h5", arrays)
        capsys.readouterr()
        results = run_test(dataset, tmp_path / f"out_{layout}", "--path_model", str(folder), "--model_name", "model0h5")
        assert [path.name for path in folder.iterdir()] == ["model0h5"]
        assert results["detections"] == expected["detections"]          # boxes, scores, steps, true positives
        assert results["trajectories"] == expected["trajectories"]
        assert (results["ap"], results["max_recall"]) == (expected["ap"], expected["max_recall"])
        assert results["weights"] == str(folder / "model0h5") and results["epoch"] is None
        output = capsys.readouterr().out
        assert ("reordered from channels first" if layout == "keras1" else "as they are") in output


def test_own_images_with_a_2016_file(trained, tmp_path, monkeypatch):
    from PIL import Image
    monkeypatch.setattr(image_zooms_testing, "make_features", tiny_features)
    Image.fromarray(np.random.default_rng(8).integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    write_keras1(tmp_path / "model0h5", load_q_network(trained / "model0.weights.h5", STATE_SIZE).get_weights())
    summaries = []
    for out, args in (("checkpoint", ["--path_model", str(trained)]),
                      ("keras1", ["--path_model", str(tmp_path), "--model_name", "model0h5"])):
        image_zooms_testing.main(["--image", str(tmp_path / "a.png"), "--path_testing_folder", str(tmp_path / out),
                                  "--number_of_steps", "5", "--detections", "visited", "--path_vgg", "random",
                                  *args])
        summaries.append(json.loads((tmp_path / out / "detections.json").read_text()))
    (checkpoint,), (keras1,) = (summary["images"] for summary in summaries)
    assert keras1["trajectory"] == checkpoint["trajectory"] and keras1["scores"] == checkpoint["scores"]
    assert summaries[1]["weights"] == str(tmp_path / "model0h5")


def test_model_name_errors(trained, dataset, tmp_path, capsys):
    from runs.runtime import main_guard
    cases = [(["--path_model", str(tmp_path), "--model_name", "model0h5"], "no file"),
             (["--path_model", str(trained), "--model_name", "model0.weights.h5", "--epoch", "0"], "give one of them"),
             (["--path_model", str(trained), "--weights_order", "theano"], "weights_order must be auto, channels_first or channels_last")]
    for args, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            main_guard(lambda: run_test(dataset, tmp_path / "out", *args))
        error = capsys.readouterr().err
        assert exit_info.value.code == 2 and message in error and "Traceback" not in error, error


def test_fine_tuning_starts_from_a_2016_file_and_resumes_exactly(network, dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(image_zooms_training, "make_features", tiny_features)
    start = write_keras1(tmp_path / "model0h5", network.get_weights())

    def train(models, *extra):
        image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(tmp_path / models), *TINY,
                                   "--initial_weights", str(start), *extra])
        return load_q_network(tmp_path / models / "model0.weights.h5", STATE_SIZE).get_weights()

    # learning rate 0: the checkpoint of epoch 0 is the initial weights themselves
    frozen = train("frozen", "--epochs", "1", "--learning_rate", "0")
    assert all(np.array_equal(a, b) for a, b in zip(frozen, network.get_weights()))
    straight = train("straight", "--epochs", "2")
    assert not all(np.array_equal(a, b) for a, b in zip(straight, network.get_weights()))
    train("resumed", "--epochs", "1")
    resumed = train("resumed", "--epochs", "2", "-n", "1")
    assert all(np.array_equal(a, b) for a, b in zip(straight, resumed))


def test_initial_weights_errors(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(image_zooms_training, "make_features", tiny_features)
    (tmp_path / "text").write_text("x")
    for value, message in ((tmp_path / "absent", "initial_weights: no file"), (tmp_path / "text", "not HDF5")):
        with pytest.raises(UserError, match=message):
            image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(tmp_path / "models"), *TINY,
                                       "--epochs", "1", "--initial_weights", str(value)])
