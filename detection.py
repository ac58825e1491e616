"""Run a trained agent on any image: no dataset, no annotations.

    from detection import detect
    boxes, scores, trajectory = detect("photo.jpg", "models_image_zooms/model0.weights.h5",
                                       path_vgg="vgg16_weights.h5")

The search is the test loop itself (``episodes.run_searches`` with the greedy ``TrainedAgent``) on a
``ZoomEnvironment`` that has no ground-truth boxes. Boxes are float ``[x0, y0, x1, y1)`` in pixels of the image;
a region's score is its trigger Q-value (the "sixth neuron"), as in testing. The Q-network may also come from
the authors' 2016 weights files (``load_q_network``).
"""
from __future__ import annotations

import hashlib
import os
import re
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from errors import UserError



class QNetworkPolicy:
    """Q-values of a Q-network in inference mode: what ``TrainedAgent`` needs, without an optimiser."""

    def __init__(self, model):
        self.model = model

    def q_values(self, states):
        from reinforcement import q_values
        return q_values(self.model, states)


def load_q_network(model, weights_order="auto", verbose=False):
    """A Q-network from a Keras model (returned as is) or a weights file: this project's checkpoints, or a Keras 1.x
    / 2.x ``save_weights`` file such as the authors' 2016 ``model_image_zooms_2`` (see :func:`read_q_network_weights`;
    ``weights_order`` is its setting). ``verbose``: print one line on a 2016 file's layout and row order."""
    from runtime import import_tensorflow
    import_tensorflow()             # TensorFlow's C++ start-up lines stay off a library user's terminal too
    import keras
    if isinstance(model, keras.Model):
        return model
    from reinforcement import build_q_network
    network = build_q_network()
    description = set_q_network_weights(network, model, weights_order)
    if verbose and not description.startswith(PROJECT_LAYOUT):
        print(f"Q-network weights {model}: {description}")
    return network


# ---------------------------------------------------------------------------------------------------------------
# Q-network weights files: this project's (Keras 3) and the 2016 release's (Keras 1.x / 2.x ``save_weights``)
#
# Layouts, told apart by the content, never by the name (the 2016 files are ``model<k>h5``, ``model_image_zooms``):
# - Keras 3 ``.weights.h5`` (this project): ``layers/dense/vars/0`` (kernel), ``.../1`` (bias), then ``dense_1``,
#   ``dense_2``; the dropout layers have empty ``vars``.
# - Keras 1.x and 2.x ``save_weights``: root attribute ``layer_names`` lists every layer in model order (dense_1,
#   activation_1, dropout_1, dense_2, ...; the numbers depend on what the process built before, so only the order
#   counts); each layer's group lists its datasets in the attribute ``weight_names``: ``dense_1_W``, ``dense_1_b``
#   in Keras 1, ``dense_1/kernel:0``, ``dense_1/bias:0`` (datasets ``dense_1/dense_1/kernel:0``) in Keras 2.
#   Full-model files keep the same under ``model_weights``. Keras 1.2 and 2.x write ``keras_version`` and
#   ``backend``; Keras 1.0/1.1 wrote neither.
# A Keras 1 Dense layer holds W as (input, output) on Theano and TensorFlow alike (``K.dot(x, W)``; only
# convolution kernels differ between the backends), as Keras 2 and 3 hold their kernels: no transposition. What
# differs is the input: the 2016 Image-Zooms descriptor is Theano's pool5 map flattened channels first, (512, 7, 7),
# ours is flattened channels last, (7, 7, 512), so the first kernel's 25,088 descriptor rows are reordered (the
# 24 history rows after them are the same in both).

PROJECT_LAYOUT = "Keras 3 weights file (this project)"
WEIGHTS_ORDERS = ("auto", "channels_first", "channels_last")


def check_weights_order(weights_order):
    if weights_order not in WEIGHTS_ORDERS:
        raise UserError(f"weights_order must be one of {', '.join(WEIGHTS_ORDERS)}, got {weights_order!r}")


def set_q_network_weights(network, path, weights_order="auto"):
    """Load the weights file ``path`` (any layout :func:`read_q_network_weights` reads) into ``network``; returns
    the file's description."""
    arrays, description = read_q_network_weights(path, weights_order)
    network.set_weights(arrays)
    return description


def read_q_network_weights(path, weights_order="auto"):
    """``(arrays, description)``: the six arrays of a Q-network weights file (kernel and bias of its three Dense
    layers, float32, descriptor rows in this project's (7, 7, 512) order) and one line saying what the file is.

    ``weights_order``: the order of the file's 25,088 descriptor rows. 'auto': channels first for a Keras 1.x / 2.x
    file whose ``backend`` attribute is 'theano' or absent (the 2016 release: Theano, channels first), channels last
    for any other backend and for this project's files; 'channels_first' or 'channels_last' say it outright.
    A missing file, a file that is not HDF5, an unknown layout or wrong shapes raise ``UserError``.
    """
    import h5py

    from reinforcement import DESCRIPTOR_SIZE, HIDDEN_UNITS, NUM_ACTIONS, STATE_SIZE
    check_weights_order(weights_order)
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Q-network weights file not found: {path}")
    try:
        handle = h5py.File(path, "r")
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: not a Q-network weights file (not HDF5: {error})") from None
    with handle:
        root = handle["model_weights"] if isinstance(handle.get("model_weights"), h5py.Group) else handle
        if "layer_names" in root.attrs:
            layers, layout, backend = _legacy_layers(path, root, handle)
            file_order = "channels_first" if backend in (None, "theano") else "channels_last"
            backend_note = f"backend {backend}" if backend else "no backend attribute"
            layout = f"{layout} save_weights file, {backend_note}"
        elif isinstance(root.get("layers"), h5py.Group):
            layers, layout, file_order = _keras3_layers(root["layers"]), PROJECT_LAYOUT, "channels_last"
        else:
            raise UserError(f"{path}: not a Q-network weights file (an HDF5 file with neither Keras 1/2 "
                            f"'layer_names' nor Keras 3 'layers')")
    hidden = HIDDEN_UNITS
    expected = [(STATE_SIZE, hidden), (hidden,), (hidden, hidden), (hidden,), (hidden, NUM_ACTIONS), (NUM_ACTIONS,)]
    if len(layers) != 3:
        raise UserError(f"{path}: {len(layers)} layers with weights, the Q-network has 3 Dense layers "
                        f"({STATE_SIZE:,} -> {hidden} -> {hidden} -> {NUM_ACTIONS})")
    arrays = []
    for number, (name, weights) in enumerate(layers, start=1):
        kernels = [array for array in weights if array.ndim == 2]
        biases = [array for array in weights if array.ndim == 1]
        if len(weights) != 2 or len(kernels) != 1 or len(biases) != 1:
            raise UserError(f"{path}: layer {name} holds {len(weights)} arrays of shapes "
                            f"{[array.shape for array in weights]}, a Dense layer holds a kernel and a bias")
        kernel_shape, bias_shape = expected[2 * number - 2], expected[2 * number - 1]
        if kernels[0].shape != kernel_shape or biases[0].shape != bias_shape:
            raise UserError(f"{path}: layer {name} has kernel {kernels[0].shape} and bias {biases[0].shape}, "
                            f"the Q-network's Dense layer {number} needs {kernel_shape} and {bias_shape}")
        if not (np.all(np.isfinite(kernels[0])) and np.all(np.isfinite(biases[0]))):
            raise UserError(f"{path}: layer {name} holds a value that is not finite (NaN or infinity): a damaged "
                            f"file, or a training that diverged")
        arrays += [kernels[0].astype(np.float32), biases[0].astype(np.float32)]
    order = file_order if weights_order == "auto" else weights_order
    if order == "channels_first":
        arrays[0] = descriptor_rows_channels_last(arrays[0], DESCRIPTOR_SIZE)
    how = "set by weights_order" if weights_order != "auto" else "from the file"
    rows = "descriptor rows reordered from channels first (512, 7, 7)" if order == "channels_first" else \
        "descriptor rows channels last (7, 7, 512), as they are"
    return arrays, f"{layout}: {rows} ({how})"


def descriptor_rows_channels_last(kernel, descriptor_size=25088, channels=512):
    """The first layer's kernel with its descriptor rows moved from a channels-first flattening (c, y, x), as
    Theano's 2016 VGG-16 gave, to ours (y, x, c); the history rows after them stay."""
    side = int(round((descriptor_size // channels) ** 0.5))
    descriptor = kernel[:descriptor_size].reshape(channels, side, side, kernel.shape[1])
    reordered = descriptor.transpose(1, 2, 0, 3).reshape(descriptor_size, kernel.shape[1])
    return np.ascontiguousarray(np.concatenate([reordered, kernel[descriptor_size:]]))


def _text(value):
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _legacy_layers(path, root, handle):
    """``([(layer name, [arrays])], 'Keras 1.x' | 'Keras 2.x', backend or None)`` of a Keras 1/2 ``save_weights``
    file: the layers with weights in the file's model order."""
    import h5py
    layers, keras_2_names = [], False
    for layer_name in (_text(name) for name in root.attrs["layer_names"]):
        group = root.get(layer_name)
        if not isinstance(group, h5py.Group):
            raise UserError(f"{path}: layer {layer_name} is listed in 'layer_names' but has no group")
        weight_names = [_text(name) for name in group.attrs.get("weight_names", [])]
        if not weight_names:
            continue                    # activation and dropout layers
        weights = []
        for weight_name in weight_names:
            dataset = group.get(weight_name)
            if not isinstance(dataset, h5py.Dataset):
                raise UserError(f"{path}: layer {layer_name} lists weight {weight_name} but has no such dataset")
            weights.append(np.asarray(dataset))
            keras_2_names = keras_2_names or "/" in weight_name or weight_name.endswith(":0")
        layers.append((layer_name, weights))
    attributes = {**handle.attrs, **root.attrs}
    version = _text(attributes["keras_version"]) if "keras_version" in attributes else None
    generation = f"Keras {version}" if version else "Keras 2.x" if keras_2_names else "Keras 1.x"
    backend = _text(attributes["backend"]).lower() if "backend" in attributes else None
    return layers, generation, backend


def _keras3_layers(layers_group):
    """``[(layer name, [arrays])]`` of a Keras 3 weights file, the layers with variables in model order (Keras names
    them by class: dense, dense_1, dense_2)."""
    def model_order(name):
        suffix = name.rsplit("_", 1)[-1]
        return (name.rsplit("_", 1)[0] if suffix.isdigit() else name, int(suffix) if suffix.isdigit() else 0)
    layers = []
    for name in sorted(layers_group.keys(), key=model_order):
        variables = layers_group[name].get("vars")
        if variables is not None and len(variables):
            layers.append((name, [np.asarray(variables[key]) for key in sorted(variables.keys(), key=int)]))
    return layers


def as_rgb_image(image, max_pixels=None) -> np.ndarray:
    """Float32 ``(H, W, 3)`` RGB 0..255 from a path (any format Pillow reads, at most ``max_pixels`` pixels:
    ``image_helper.MAX_PIXELS`` when None, checked before decoding) or an array.

    Arrays: ``(H, W)`` gray, ``(H, W, 1)``, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA (alpha dropped), uint8 or
    float in 0..255.
    """
    from image_helper import load_image
    if isinstance(image, (str, os.PathLike)):
        return load_image(image, max_pixels)
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] in (1, 3, 4):
        array = array[:, :, :3] if array.shape[2] != 1 else array[:, :, 0]
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3 or array.shape[0] < 1 or array.shape[1] < 1:
        raise UserError(f"image array of shape {np.shape(image)}: expected (H, W), (H, W, 3) or (H, W, 4)")
    if array.dtype.kind not in "biuf":
        raise UserError(f"image array of dtype {array.dtype}: expected numbers in 0..255")
    floats = array.astype(np.float32)
    if not np.all(np.isfinite(floats)) or floats.min() < 0 or floats.max() > 255:
        raise UserError(f"image array values must lie in 0..255, found {floats.min():g}..{floats.max():g}")
    if array.dtype.kind == "f" and 0 < floats.max() <= 1.0:
        warnings.warn("image array values all lie in 0..1; expected 0..255 (multiply by 255)", UserWarning,
                      stacklevel=3)
    return np.ascontiguousarray(floats)


def content_key(image: np.ndarray) -> str:
    """An id from the pixels themselves, so a descriptor cache never confuses two images given as arrays."""
    digest = hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16)
    digest.update(str(image.shape).encode())
    return f"pixels:{digest.hexdigest()}"


def select_detections(trajectory, detections="triggered", duplicates="keep"):
    """``(boxes (n, 4), scores (n,))`` of a search trajectory, best score first.

    ``detections``: 'triggered' (the regions the agent triggered on) or 'visited' (every analysed region, the
    paper's evaluation protocol). ``duplicates='demote'`` (beyond the paper): a box that repeats a better one
    (:func:`metrics.mark_duplicates`) comes after all the others.
    """
    from metrics import mark_duplicates
    steps = [step for step in trajectory if detections == "visited" or step["triggered"]]
    steps.sort(key=lambda step: -step["score"])
    if duplicates == "demote":
        repeated = mark_duplicates([{"image": "", "box": step.get("refined", step["region"]), "score": step["score"]}
                                    for step in steps])
        steps = [step for step, duplicate in zip(steps, repeated) if not duplicate] + \
            [step for step, duplicate in zip(steps, repeated) if duplicate]
    boxes = np.array([step.get("refined", step["region"]) for step in steps], dtype=np.float64).reshape(-1, 4)
    return boxes, np.array([step["score"] for step in steps], dtype=np.float64)


def detect_many(images, model, path_vgg="./vgg16_weights.h5", features=None, scale_subregion=0.75,
                number_of_steps=10, only_first_object=False, detections="triggered", vgg_precision="float32",
                weights_order="auto", max_pixels=None, refiner=None, duplicates="keep"):
    """``detect`` for several images at once (their searches advance in lockstep, regions described in batches);
    returns one ``(boxes, scores, trajectory)`` per image."""
    from episodes import TrainedAgent, run_searches
    from refinement import BoxRefiner
    from reinforcement import ZoomEnvironment
    from settings import check_settings     # the scripts' rules for the same settings
    check_settings(SimpleNamespace(scale_subregion=scale_subregion, number_of_steps=number_of_steps,
                                   detections=detections, vgg_precision=vgg_precision, weights_order=weights_order,
                                   duplicates=duplicates, **({} if max_pixels is None else {"max_pixels": max_pixels})))
    if isinstance(refiner, (str, os.PathLike)):
        if not Path(refiner).is_file():
            raise UserError(f"refiner {os.fspath(refiner)!r}: no such file (a training with refine 1 writes "
                            f"refiner_model<k>.npz beside each weights file once enough visited windows have "
                            f"overlapped an object); refiner=None reports the hierarchy's windows")
        refiner = BoxRefiner.load(refiner)
    elif refiner is not None and not isinstance(refiner, BoxRefiner):
        raise UserError(f"refiner must be None, a refinement.BoxRefiner or the path of a saved one, got "
                        f"{type(refiner).__name__}")
    arrays = [as_rgb_image(image, max_pixels) for image in images]
    agent = TrainedAgent(QNetworkPolicy(load_q_network(model, weights_order)))
    trained_here = re.fullmatch(r"model(\d+)(_epoch_\d+|_best)?\.weights\.h5", Path(str(model)).name)
    if features is None and isinstance(model, (str, os.PathLike)) and trained_here:
        from run_folder import check_trained_features       # a training run's file: its features_model<k>.json
        check_trained_features(Path(model).parent, int(trained_here.group(1)), path_vgg, scale_subregion,
                               what="detect()")
    if features is None:
        from features import ImageZoomsFeatures
        features = ImageZoomsFeatures(path_vgg, precision=vgg_precision)
    environments = [ZoomEnvironment(array.shape[1], array.shape[0], np.zeros((0, 4)), scale_subregion, image=array,
                                    image_id=content_key(array)) for array in arrays]
    trajectories = run_searches(environments, agent, features, int(number_of_steps), bool(only_first_object),
                                refiner)
    return [(*select_detections(trajectory, detections, duplicates), trajectory) for trajectory in trajectories]


def detect(image, model, path_vgg="./vgg16_weights.h5", features=None, scale_subregion=0.75, number_of_steps=10,
           only_first_object=False, detections="triggered", vgg_precision="float32", weights_order="auto",
           max_pixels=None, refiner=None, duplicates="keep"):
    """Search ``image`` with a trained agent; returns ``(boxes, scores, trajectory)``.

    image: a file path or an RGB array (see :func:`as_rgb_image`). model: a Q-network weights file written by
    training (``model<k>.weights.h5`` or ``model<k>_epoch_<i>.weights.h5``), a Keras 1.x / 2.x ``save_weights``
    file of the 2016 release (``model<k>h5``, ``model_image_zooms_2``; ``weights_order``: see
    :func:`read_q_network_weights`), or a Keras model. features: a region
    describer (``ImageZoomsFeatures``, ``Pool45CropsFeatures``; build it once to search many images), else
    Image-Zooms features with VGG-16 weights ``path_vgg`` (the weights training used) in ``vgg_precision``
    (``float32``, or the ``bfloat16`` option). ``scale_subregion`` must be
    the training's. At most ``number_of_steps`` regions are analysed; after a trigger the region is painted with the
    mean colour and a new search starts from the whole image, unless ``only_first_object``.
    An image file of more than ``max_pixels`` pixels (``image_helper.MAX_PIXELS`` when None; read from its header,
    before decoding), a decompression bomb or a file Pillow cannot read is a UserError naming it. ``refiner`` (the
    ``refine`` option, beyond the paper): a ``refinement.BoxRefiner`` or the path of one a training with refine 1
    saved (``refiner_model<k>….npz``); the boxes are then the refined ones, each step has ``refined`` too.
    ``duplicates='demote'`` (beyond the paper): a box repeating a better one (IoU ≥ 0.5) comes after all others.

    boxes: float ``(n, 4)`` ``[x0, y0, x1, y1)`` in pixels of the image, best score first: the triggered regions,
    or every analysed region with ``detections='visited'``. scores: their trigger Q-values. trajectory: every
    analysed region in order, as dicts ``{'region', 'score', 'action', 'q_values', 'search', 'step',
    'triggered'}`` (the format of ``results.json`` and ``visualization.draw_search``).
    """
    return detect_many([image], model, path_vgg=path_vgg, features=features, scale_subregion=scale_subregion,
                       number_of_steps=number_of_steps, only_first_object=only_first_object,
                       detections=detections, vgg_precision=vgg_precision, weights_order=weights_order,
                       max_pixels=max_pixels, refiner=refiner, duplicates=duplicates)[0]
