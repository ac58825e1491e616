"""The bfloat16 option of the VGG-16 backbone (``vgg_precision``): off by default, the same features to about 1%,
float32 out, plumbed through the scripts; ``auto`` picks it only on machines with native bfloat16 (a GPU of
compute capability 8.0 or newer, or a CPU with AMX / AVX-512 BF16) and says which; a bad value is a clear error."""
from types import SimpleNamespace

import keras
import numpy as np
import pytest

import features
import image_zooms_training
import pool45_crops_testing
from runs.errors import UserError
from features import ImageZoomsFeatures, Pool45CropsFeatures, build_vgg16
from reinforcement import QLearner, build_q_network
from synthetic_dataset import draw_scene
from conftest import STATE_SIZE


@pytest.fixture(scope="module")
def scene():
    pixels, _ = draw_scene(np.random.default_rng(11), 240, 200)
    return pixels.astype(np.float32)


def relative_error(approximate, exact):
    return np.abs(approximate - exact).mean() / np.abs(exact).mean()


def test_bfloat16_image_zooms_descriptors_are_close_and_float32(scene):
    regions = [np.array(r, dtype=float) for r in ([0, 0, 240, 200], [20, 10, 200, 160], [100, 80, 180, 150])]
    items = [(None, scene, region) for region in regions]
    exact = ImageZoomsFeatures("random").describe(items)
    fast = ImageZoomsFeatures("random", precision="bfloat16").describe(items)
    assert fast.dtype == np.float32 and fast.shape == exact.shape
    error = relative_error(fast, exact)
    assert 0 < error < 0.03, error                     # bfloat16 arithmetic (not float32), within a few percent
    learner = QLearner(build_q_network(STATE_SIZE, seed=0))
    histories = np.zeros((len(regions), 24), dtype=np.float32)
    q_exact = learner.q_values(np.concatenate([exact, histories], axis=1))
    q_fast = learner.q_values(np.concatenate([fast, histories], axis=1))
    assert np.abs(q_fast - q_exact).max() < 1e-2 * max(1.0, np.abs(q_exact).max())


def test_bfloat16_pool45_maps_are_close(scene):
    exact = Pool45CropsFeatures("random", map_cache_mb=0).feature_maps(scene)
    fast = Pool45CropsFeatures("random", map_cache_mb=0, precision="bfloat16").feature_maps(scene)
    for approximate, reference in zip(fast, exact):
        assert approximate.dtype == np.float32 and approximate.shape == reference.shape
        assert 0 < relative_error(approximate, reference) < 0.03


def test_the_default_is_float32_and_the_global_policy_is_left_alone():
    before = keras.config.dtype_policy().name
    fast = build_vgg16("random", (32, 32, 3), precision="bfloat16")
    assert keras.config.dtype_policy().name == before
    assert fast.get_layer("block1_conv1").compute_dtype == "bfloat16"
    assert fast.get_layer("block1_conv1").kernel.dtype == "float32"       # weights stay float32
    assert build_vgg16("random", (32, 32, 3)).get_layer("block5_conv3").compute_dtype == "float32"


def test_scripts_pass_the_precision_on():
    features = image_zooms_training.make_features(SimpleNamespace(path_vgg="random", cache_mb=0,
                                                                  vgg_precision="bfloat16"))
    assert features.backbone.get_layer("block3_conv1").compute_dtype == "bfloat16"
    features = pool45_crops_testing.make_features(SimpleNamespace(path_vgg="random", map_cache_mb=0,
                                                                  vgg_precision="float32"))
    assert features.backbone.get_layer("block3_conv1").compute_dtype == "float32"


def test_an_unknown_precision_is_a_clear_error():
    with pytest.raises(UserError, match="vgg_precision must be one of float32, bfloat16 or auto, got 'float16'"):
        build_vgg16("random", (32, 32, 3), precision="float16")


@pytest.mark.parametrize("native, chosen", [(True, "bfloat16"), (False, "float32")])
def test_auto_is_bfloat16_only_where_the_machine_has_it(monkeypatch, capsys, native, chosen):
    monkeypatch.setattr(features, "native_bfloat16", lambda: (native, "faked"))
    backbone = build_vgg16("random", (32, 32, 3), precision="auto")
    assert backbone.get_layer("block1_conv1").compute_dtype == chosen
    assert f"vgg_precision auto: {chosen}" in capsys.readouterr().out
    assert features.resolve_precision("float32") == "float32"          # explicit choices are kept as given


def fake_gpus(monkeypatch, devices):
    """TensorFlow's device description faked: ``devices`` is ``[(name, compute capability or None), …]``."""
    import tensorflow as tf
    physical = [SimpleNamespace(name=f"/physical_device:GPU:{index}", device_type="GPU")
                for index in range(len(devices))]
    details = {device.name: ({"device_name": name, "compute_capability": capability} if capability else {})
               for device, (name, capability) in zip(physical, devices)}
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: physical if kind in (None, "GPU") else [])
    monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda device: details[device.name])


@pytest.mark.parametrize("devices, chosen, said", [
    ([("NVIDIA H100 80GB HBM3", (9, 0))], "bfloat16", "NVIDIA H100 80GB HBM3 (9.0)"),
    ([("NVIDIA A100-SXM4-40GB", (8, 0))], "bfloat16", "NVIDIA A100-SXM4-40GB (8.0)"),
    ([("Tesla T4", (7, 5))], "float32", "GPU Tesla T4: compute capability 7.5, native bfloat16 needs 8.0"),
    ([("Tesla V100-SXM2-16GB", (7, 0))], "float32", "compute capability 7.0"),
    ([("NVIDIA A100-SXM4-40GB", (8, 0)), ("Tesla T4", (7, 5))], "float32", "Tesla T4"),    # every GPU must have it
    ([("a GPU without CUDA details", None)], "float32", "compute capability unknown"),
])
def test_auto_on_a_gpu_is_bfloat16_from_compute_capability_8(monkeypatch, capsys, devices, chosen, said):
    fake_gpus(monkeypatch, devices)
    assert features.resolve_precision("auto") == chosen
    line = capsys.readouterr().out
    assert f"vgg_precision auto: {chosen} (" in line and said in line
    assert features.native_bfloat16()[0] == (chosen == "bfloat16")


@pytest.mark.parametrize("cpuinfo, chosen", [("flags : fpu avx2 avx512_bf16", "bfloat16"),
                                             ("flags : fpu amx_bf16", "bfloat16"),
                                             ("flags : fpu sse2 avx2", "float32")])
def test_auto_without_a_gpu_reads_the_cpu_flags(monkeypatch, capsys, cpuinfo, chosen):
    fake_gpus(monkeypatch, [])
    real_read_text = features.Path.read_text
    monkeypatch.setattr(features.Path, "read_text",
                        lambda path, *args, **kwargs: cpuinfo if str(path) == "/proc/cpuinfo"
                        else real_read_text(path, *args, **kwargs))
    assert features.resolve_precision("auto") == chosen
    assert "no GPU" in capsys.readouterr().out


def test_bfloat16_on_a_gpu_without_it_warns(monkeypatch, capsys):
    fake_gpus(monkeypatch, [("Tesla T4", (7, 5))])
    features.resolve_precision("bfloat16")
    assert "warning: vgg_precision bfloat16 without native bfloat16 arithmetic (GPU Tesla T4" in capsys.readouterr().err
