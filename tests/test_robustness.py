"""Bad input, named and handled (issue 6, item 1): every case with a file the test makes.

Skipped with a warning and counted, the rest of the data still used: an image listed but missing, a corrupt or
truncated JPEG, an annotation that is missing or does not parse, broken objects inside an annotation (no
<bndbox>, non-numeric, reversed, zero area, outside the image). Used as they are: grayscale, RGBA, CMYK and 16-bit
images, a 2×2 image, objects of unknown classes, an image whose size differs from its <size>. A one-line error
(exit code 2, no traceback): a missing dataset folder or image-set file, an empty image set, nothing readable
left, a class that is not a VOC class, a VGG-16 weights file of the wrong format or shape.

Already tested elsewhere: a checkpoint that ``-n N`` asks for but does not exist
(test_image_zooms_end_to_end.py), a results file that is not one (test_visualization.py), each loader and parser
case on its own (test_image_helper.py, test_parse_xml_annotations.py).
"""
import json
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

import image_zooms_testing
import image_zooms_training
from runs.errors import UserError
from runs.runtime import main_guard
from synthetic_dataset import generate_synthetic_voc
from conftest import tiny_backbone

pytestmark = pytest.mark.usefixtures("small_q_network")   # plumbing, not the paper's width (conftest.py)

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--path_vgg", "random", "--buffer_experience_replay", "12", "--batch_size", "4", "--number_of_steps", "3",
        "--learning_rate", "1e-4"]


def tiny_features(settings):
    from features import ImageZoomsFeatures
    return ImageZoomsFeatures(backbone=tiny_backbone(), cache_mb=0)


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setattr(image_zooms_training, "make_features", tiny_features)
    monkeypatch.setattr(image_zooms_testing, "make_features", tiny_features)


@pytest.fixture(scope="module")
def clean_dataset(tmp_path_factory):
    return generate_synthetic_voc(tmp_path_factory.mktemp("voc"), num_trainval=8, num_test=6, seed=1,
                                  min_size=64, max_size=96)


def copy_dataset(clean_dataset, tmp_path):
    return Path(shutil.copytree(clean_dataset, tmp_path / "voc"))


def xml(width, height, objects):
    """A VOC annotation; ``objects``: (name, (xmin, ymin, xmax, ymax)) with any texts, or raw XML strings."""
    parts = []
    for item in objects:
        if isinstance(item, str):
            parts.append(item)
            continue
        name, box = item
        coordinates = "".join(f"<{tag}>{value}</{tag}>" for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), box))
        parts.append(f"<object><name>{name}</name><difficult>0</difficult><bndbox>{coordinates}</bndbox></object>")
    return (f"<annotation><size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
            f"{''.join(parts)}</annotation>")


def pixels(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


PLANE = ("aeroplane", (10, 8, 50, 40))
BROKEN_OBJECTS = [
    "<object><name>aeroplane</name></object>",                                      # no <bndbox>
    ("aeroplane", (5, "five", 30, 30)),                                            # non-numeric
    ("aeroplane", (40, 5, 10, 30)),                                                # reversed
    ("aeroplane", (200, 5, 230, 30)),                                              # outside the image: zero area
    ("aeroplane", (-20, -20, 0, 0)),                                               # zero area after clipping
]


def damage(root):
    """Add damaged and unusual images to the dataset; returns (listed ids, the ones that must be skipped)."""
    images, annotations = root / "JPEGImages", root / "Annotations"

    def add(image_id, image=None, annotation=None, image_format="JPEG"):
        if image is not None:
            if isinstance(image, bytes):
                (images / f"{image_id}.jpg").write_bytes(image)
            else:
                image.save(images / f"{image_id}.jpg", format=image_format)
        if annotation is not None:
            (annotations / f"{image_id}.xml").write_text(annotation)

    rgb = Image.fromarray(pixels(60, 64))
    add("missing_image", None, xml(64, 60, [PLANE]))
    add("corrupt_jpeg", b"\xff\xd8\xff\xe0 this is not really a JPEG", xml(64, 60, [PLANE]))
    whole = (images / "000001.jpg").read_bytes()
    add("truncated_jpeg", whole[:len(whole) // 2], xml(64, 87, [PLANE]))
    add("unparsable_xml", rgb, "<annotation><size><width>64</width>")
    add("missing_xml", rgb)
    add("grayscale", rgb.convert("L"), xml(64, 60, [PLANE]))
    add("cmyk", rgb.convert("CMYK"), xml(64, 60, [PLANE]))
    add("rgba", rgb.convert("RGBA"), xml(64, 60, [PLANE]), image_format="PNG")        # PNG content, .jpg name
    add("gray16", Image.fromarray((pixels(60, 64)[:, :, 0].astype(np.uint16) * 257)), xml(64, 60, [PLANE]),
        image_format="PNG")
    add("two_by_two", Image.fromarray(pixels(2, 2)), xml(2, 2, [("aeroplane", (1, 1, 2, 2))]))
    add("broken_objects", rgb, xml(64, 60, [PLANE, ("spaceship", (1, 1, 20, 20)), *BROKEN_OBJECTS,
                                            ("aeroplane", (30, 30, 90, 90))]))       # partly outside: clipped
    add("size_mismatch", rgb, xml(128, 120, [("aeroplane", (20, 16, 100, 80))]))
    listed = ["000001", "000003", "missing_image", "corrupt_jpeg", "truncated_jpeg", "unparsable_xml", "missing_xml",
              "grayscale", "cmyk", "rgba", "gray16", "two_by_two", "broken_objects", "size_mismatch"]
    for set_name in ("trainval", "test"):
        (root / "ImageSets" / "Main" / f"aeroplane_{set_name}.txt").write_text("".join(f"{i}  1\n" for i in listed))
    return listed, ["missing_image", "corrupt_jpeg", "truncated_jpeg", "unparsable_xml", "missing_xml"]


def test_damaged_dataset_trains_and_tests_with_the_bad_files_skipped(clean_dataset, tmp_path, tiny, capsys):
    root = copy_dataset(clean_dataset, tmp_path)
    listed, skipped = damage(root)
    usable = len(listed) - len(skipped)
    models, out = tmp_path / "models", tmp_path / "out"

    with pytest.warns(UserWarning) as caught:
        image_zooms_training.main(["--path_voc", str(root), "--path_model", str(models), "--epochs", "2", *TINY])
    messages = [str(warning.message) for warning in caught]
    for image_id in skipped:                                  # each named once, though met in both epochs
        assert sum(image_id in message for message in messages) == 1, image_id
    assert sum("broken_objects.xml" in message for message in messages) == len(BROKEN_OBJECTS)
    assert any("size_mismatch.jpg is 64 x 60" in message for message in messages)
    output = capsys.readouterr().out
    assert f"skipped {len(skipped)} images and {len(BROKEN_OBJECTS)} broken objects" in output
    rows = [line.split(",") for line in (models / "training_log_model0.csv").read_text().splitlines()[1:]]
    assert [int(row[2]) for row in rows] == [usable, usable]           # images used per epoch

    with pytest.warns(UserWarning):
        image_zooms_testing.main(["--path_voc_test", str(root), "--path_model", str(models), "--path_vgg", "random",
                                  "--path_testing_folder", str(out), "--number_of_steps", "4", "--bool_draw", "1"])
    results = json.loads((out / "results.json").read_text())
    assert results["num_images"] == usable and results["skipped_images"] == len(skipped)
    assert results["skipped_objects"] == len(BROKEN_OBJECTS)
    assert sorted(Path(item["image"]).name for item in results["skipped"]) == sorted(skipped)
    assert set(results["trajectories"]) == set(listed) - set(skipped)
    assert len(list((out / "searches").glob("*.png"))) == usable
    # the 2×2 image: regions shrink below a pixel, every crop is at least one pixel
    from image_helper import crop, load_image
    tiny_image = load_image(root / "JPEGImages" / "two_by_two.jpg")
    for step in results["trajectories"]["two_by_two"]:
        assert min(crop(tiny_image, step["region"]).shape[:2]) >= 1


def test_images_of_every_mode_load_as_rgb(clean_dataset, tmp_path):
    from image_helper import load_image
    root = copy_dataset(clean_dataset, tmp_path)
    damage(root)
    for image_id, shape in (("grayscale", (60, 64, 3)), ("cmyk", (60, 64, 3)), ("rgba", (60, 64, 3)),
                            ("gray16", (60, 64, 3)), ("two_by_two", (2, 2, 3))):
        image = load_image(root / "JPEGImages" / f"{image_id}.jpg")
        assert image.shape == shape and image.dtype == np.float32 and 0 <= image.min() and image.max() <= 255
    gray = load_image(root / "JPEGImages" / "grayscale.jpg")
    assert np.array_equal(gray[:, :, 0], gray[:, :, 2])


def run_guarded(main, args, capsys):
    """A script's main under main_guard: returns (exit code, stderr)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main_guard(lambda: main(args))
    error = capsys.readouterr().err
    assert "Traceback" not in error
    return exit_info.value.code, error


def test_unusable_data_is_a_one_line_error(clean_dataset, tmp_path, tiny, capsys):
    train = image_zooms_training.main
    models = ["--path_model", str(tmp_path / "models"), *TINY]
    root = copy_dataset(clean_dataset, tmp_path)
    main_folder = root / "ImageSets" / "Main"

    code, error = run_guarded(train, ["--path_voc", str(tmp_path / "nowhere"), *models], capsys)
    assert code == 2 and f"dataset folder not found: {tmp_path / 'nowhere'}" in error

    code, error = run_guarded(train, ["--path_voc", str(root), "--class_object", "spaceship", *models], capsys)
    assert code == 2 and "class_object 'spaceship' is not a VOC class" in error and "1=aeroplane" in error

    (main_folder / "bird_trainval.txt").unlink()
    code, error = run_guarded(train, ["--path_voc", str(root), "--class_object", "bird", *models], capsys)
    assert code == 2 and "image set file not found" in error and "bird_trainval.txt" in error

    (main_folder / "aeroplane_trainval.txt").write_text("000001 -1\n000002 -1\n")
    code, error = run_guarded(train, ["--path_voc", str(root), *models], capsys)
    assert code == 2 and "no images with label 1" in error and "aeroplane_trainval.txt" in error

    (main_folder / "aeroplane_trainval.txt").write_text("")
    code, error = run_guarded(train, ["--path_voc", str(root), *models], capsys)
    assert code == 2 and "aeroplane_trainval.txt" in error

    (main_folder / "aeroplane_trainval.txt").write_text("000001 1\n000003 1\n")
    for image_id in ("000001", "000003"):
        (root / "Annotations" / f"{image_id}.xml").write_text("<annotation>")
    code, error = run_guarded(train, ["--path_voc", str(root), *models], capsys)
    assert code == 2 and "none of the 2 images of aeroplane_trainval.txt has a usable annotation" in error
    # main_guard prints warnings as one line each, before the error
    assert error.splitlines()[0].startswith("warning: cannot parse annotation file") and "000001.xml" in error

    shutil.copy(clean_dataset / "Annotations" / "000001.xml", root / "Annotations")
    shutil.copy(clean_dataset / "Annotations" / "000003.xml", root / "Annotations")
    for image_id in ("000001", "000003"):
        (root / "JPEGImages" / f"{image_id}.jpg").write_bytes(b"garbage")
    code, error = run_guarded(train, ["--path_voc", str(root), *models], capsys)
    assert code == 2 and "none of the 2 training images could be read" in error and "000001.jpg" in error
    assert not (tmp_path / "models" / "model0_epoch_0.weights.h5").exists()

    (main_folder / "aeroplane_test.txt").write_text("000001 1\n")
    code, error = run_guarded(image_zooms_testing.main, ["--path_voc_test", str(root), "--agent", "random",
                                                         "--bool_draw", "1", "--path_testing_folder",
                                                         str(tmp_path / "out")], capsys)
    assert code == 2 and "none of the 1 test images could be read" in error


def test_unknown_class_names_in_annotations_are_ignored(tmp_path):
    from parse_xml_annotations import parse_annotation
    path = tmp_path / "custom.xml"
    path.write_text(xml(64, 60, [PLANE, ("spaceship", (1, 1, 20, 20)), ("Drone", (5, 5, 9, 9))]))
    annotation = parse_annotation(path)
    assert [obj.name for obj in annotation.objects] == ["aeroplane", "spaceship", "drone"]
    assert annotation.boxes_of("aeroplane").tolist() == [[9, 7, 50, 40]] and annotation.skipped_objects == 0


# ---------------------------------------------------------------------------------------------------------------
# VGG-16 weights files

VGG_LAYERS = ("block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2", "block3_conv1", "block3_conv2",
              "block3_conv3", "block4_conv1", "block4_conv2", "block4_conv3", "block5_conv1", "block5_conv2",
              "block5_conv3")
VGG_CHANNELS = (3, 64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)


def vgg_kernels(seed=0):
    """Keras-layout (3, 3, in, out) kernels and biases of the 13 VGG-16 conv layers."""
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((3, 3, n_in, n_out), dtype=np.float32) * 0.05,
             rng.standard_normal(n_out, dtype=np.float32))
            for n_in, n_out in zip(VGG_CHANNELS[:-1], VGG_CHANNELS[1:])]


def write_2016_file(path, pairs):
    """The 2016 release's channels-first Theano file: ``layer_<k>/param_<p>``, kernels (out, in, h, w) for true
    convolution (flipped), with the parameterless layers (zero padding, pooling) and the dense top in between."""
    with h5py.File(path, "w") as handle:
        index = 0
        for block in np.split(np.arange(13), np.cumsum((2, 2, 3, 3))):
            for layer in block[block < len(pairs)]:
                handle.create_group(f"layer_{index}")                               # ZeroPadding2D
                kernel, bias = pairs[layer]
                group = handle.create_group(f"layer_{index + 1}")
                group["param_0"] = kernel.transpose(3, 2, 0, 1)[:, :, ::-1, ::-1]
                group["param_1"] = bias
                index += 2
            handle.create_group(f"layer_{index}")                                   # MaxPooling2D
            index += 1
        handle.create_group(f"layer_{index}")                                       # Flatten
        handle[f"layer_{index + 1}/param_0"] = np.zeros((8, 4), np.float32)         # a (small) dense layer
        handle[f"layer_{index + 1}/param_1"] = np.zeros(4, np.float32)
        handle.attrs["nb_layers"] = index + 2


def test_2016_channels_first_weights_are_converted(tmp_path):
    from features import build_vgg16
    pairs = vgg_kernels()
    write_2016_file(tmp_path / "vgg16_weights.h5", pairs)
    backbone = build_vgg16(tmp_path / "vgg16_weights.h5", input_shape=(32, 32, 3))
    for name, (kernel, bias) in zip(VGG_LAYERS, pairs):
        loaded_kernel, loaded_bias = backbone.get_layer(name).get_weights()
        np.testing.assert_array_equal(loaded_kernel, kernel)
        np.testing.assert_array_equal(loaded_bias, bias)
    # and the first layer computes the 2016 true convolution: sum over u, v of W[o, i, u, v] x[y - u + 1, x - v + 1]
    theano_kernel = pairs[0][0].transpose(3, 2, 0, 1)[:, :, ::-1, ::-1]
    image = np.random.default_rng(1).standard_normal((6, 7, 3)).astype(np.float32)
    padded = np.pad(image, ((1, 1), (1, 1), (0, 0)))
    expected = np.zeros((6, 7, 64), np.float32)
    for u in range(3):
        for v in range(3):
            window = padded[2 - u:2 - u + 6, 2 - v:2 - v + 7]                     # x[y - u + 1, x - v + 1]
            expected += np.einsum("yxi,oi->yxo", window, theano_kernel[:, :, u, v])
    expected = np.maximum(expected + pairs[0][1], 0)                                # ReLU
    layer = backbone.get_layer("block1_conv1")
    np.testing.assert_allclose(np.asarray(layer(image[None]))[0], expected, rtol=1e-4, atol=1e-4)


def test_wrong_vgg_weights_files_are_one_line_errors(tmp_path):
    from features import build_vgg16
    (tmp_path / "text.h5").write_text("not HDF5")
    with pytest.raises(UserError, match="text.h5: not a readable HDF5 weights file"):
        build_vgg16(tmp_path / "text.h5", input_shape=(32, 32, 3))
    with h5py.File(tmp_path / "other.h5", "w") as handle:
        handle["dense/kernel"] = np.zeros((4, 4), np.float32)
    with pytest.raises(UserError, match="other.h5: no VGG-16 convolution layers found"):
        build_vgg16(tmp_path / "other.h5", input_shape=(32, 32, 3))
    with h5py.File(tmp_path / "wrong_shape.h5", "w") as handle:           # Keras layout, first kernel transposed
        for name, (kernel, bias) in zip(VGG_LAYERS, vgg_kernels()):
            handle[f"{name}/kernel"] = kernel.transpose(3, 2, 0, 1) if name == "block1_conv1" else kernel
            handle[f"{name}/bias"] = bias
    with pytest.raises(UserError, match=r"wrong_shape.h5: layer block1_conv1 has kernel \(64, 3, 3, 3\), VGG-16 "
                                        r"needs \(3, 3, 3, 64\)"):
        build_vgg16(tmp_path / "wrong_shape.h5", input_shape=(32, 32, 3))
    pairs = vgg_kernels()
    write_2016_file(tmp_path / "short_2016.h5", pairs[:12])
    with pytest.raises(UserError, match="short_2016.h5: found 12 convolution layers, VGG-16 has 13"):
        build_vgg16(tmp_path / "short_2016.h5", input_shape=(32, 32, 3))
    with pytest.raises(UserError, match="no such file"):
        build_vgg16(tmp_path / "absent.h5", input_shape=(32, 32, 3))


def test_keras3_weights_file_of_vgg16_loads(tmp_path):
    """``save_weights`` of this backbone (Keras 3: ``layers/conv2d``, ``conv2d_1``, … ``conv2d_12``) loads back."""
    from features import build_vgg16
    saved = build_vgg16("random", input_shape=(32, 32, 3))
    saved.save_weights(tmp_path / "vgg16.weights.h5")
    loaded = build_vgg16(tmp_path / "vgg16.weights.h5", input_shape=(32, 32, 3))
    for name in VGG_LAYERS:
        for ours, theirs in zip(loaded.get_layer(name).get_weights(), saved.get_layer(name).get_weights()):
            np.testing.assert_array_equal(ours, theirs)
