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

from runs.errors import UserError



class QNetworkPolicy:
    """Q-values of a Q-network in inference mode: what ``TrainedAgent`` needs, without an optimiser."""

    def __init__(self, model):
        self.model = model

    def q_values(self, states):
        from reinforcement import q_values
        return q_values(self.model, states)


def load_q_network(model, state_size, weights_order="auto", verbose=False):
    """A Q-network from a Keras model (returned as is) or a weights file, into the network
    ``reinforcement.build_q_network(state_size)`` builds (``state_size``: ``reinforcement.state_size`` of the
    describer's ``descriptor_size``): this project's checkpoints, or a Keras 1.x / 2.x ``save_weights`` file such as
    the authors' 2016 ``model_image_zooms_2`` (see :func:`set_q_network_weights`; ``weights_order`` is its setting).
    ``verbose``: print one line on a 2016 file's layout and row order."""
    from runs.runtime import import_tensorflow
    import_tensorflow()             # TensorFlow's C++ start-up lines stay off a library user's terminal too
    import keras
    if isinstance(model, keras.Model):
        return model
    from reinforcement import build_q_network
    network = build_q_network(state_size)
    description = set_q_network_weights(network, model, weights_order)
    if verbose and not description.startswith(PROJECT_LAYOUT):
        print(f"Q-network weights {model}: {description}")
    return network


# ---------------------------------------------------------------------------------------------------------------
# Q-network weights files: this project's (Keras 3) and the 2016 release's (Keras 1.x / 2.x ``save_weights``)
#
# Layouts, told apart by the content, never by the name (the 2016 files are ``model<k>h5``, ``model_image_zooms``):
# - Keras 3 ``.weights.h5`` (this project): ``layers/<layer>/vars/<i>``, read by Keras into the network
#   ``build_q_network`` builds, whatever it is.
# - Keras 1.x and 2.x ``save_weights`` (the paper's Q-network, three Dense layers): root attribute ``layer_names``
#   lists every layer in model order (dense_1, activation_1, dropout_1, dense_2, ...; the numbers depend on what the
#   process built before, so only the order counts); each layer's group lists its datasets in the attribute
#   ``weight_names``: ``dense_1_W``, ``dense_1_b`` in Keras 1, ``dense_1/kernel:0``, ``dense_1/bias:0`` (datasets
#   ``dense_1/dense_1/kernel:0``) in Keras 2. Full-model files keep the same under ``model_weights``. Keras 1.2 and
#   2.x write ``keras_version`` and ``backend``; Keras 1.0/1.1 wrote neither.
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
    """Load the weights file ``path`` into ``network``; returns one line saying what the file is.

    ``weights_order``: the order of the first kernel's descriptor rows in the file. 'auto': channels first for a
    Keras 1.x / 2.x file whose ``backend`` attribute is 'theano' or absent (the 2016 release: Theano, channels
    first), channels last for any other backend and for this project's files; 'channels_first' or
    'channels_last' say it outright. A missing file, a file that is not HDF5, an unknown layout, weights that do not
    fit ``network`` or are not finite raise ``UserError`` naming the file.
    """
    import h5py
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
            layout = f"{layout} save_weights file, {f'backend {backend}' if backend else 'no backend attribute'}"
        elif isinstance(root.get("layers"), h5py.Group):
            layers, layout, file_order = None, PROJECT_LAYOUT, "channels_last"
        else:
            raise UserError(f"{path}: not a Q-network weights file (an HDF5 file with neither Keras 1/2 "
                            f"'layer_names' nor Keras 3 'layers')")
    weighted = [layer for layer in network.layers if layer.weights]
    if layers is None:
        _load_keras3_weights(network, path)
        layers = [(layer.name, [np.asarray(weight) for weight in layer.weights]) for layer in weighted]
    elif len(layers) != len(weighted):
        raise UserError(f"{path}: {len(layers)} layers with weights, the Q-network has {len(weighted)} "
                        f"({network_summary(network)})")
    arrays = []
    for number, ((name, weights), layer) in enumerate(zip(layers, weighted), start=1):
        expected = [tuple(weight.shape) for weight in layer.weights]
        if len(weights) == 2 == len(expected) and weights[0].ndim < weights[1].ndim:
            weights = weights[::-1]                         # a kernel listed after its bias
        if [array.shape for array in weights] != expected:
            shapes = " and ".join(f"{kind} {array.shape}" for kind, array in zip(("kernel", "bias"), weights)) \
                if len(weights) == 2 else f"{len(weights)} arrays of shapes {[array.shape for array in weights]}"
            raise UserError(f"{path}: layer {name} has {shapes}, the Q-network's layer {number} ({layer.name}) "
                            f"needs {' and '.join(map(str, expected))}")
        if not all(np.all(np.isfinite(array)) for array in weights):
            raise UserError(f"{path}: layer {name} holds a value that is not finite (NaN or infinity): a damaged "
                            f"file, or a training that diverged")
        arrays += [array.astype(np.float32) for array in weights]
    order = file_order if weights_order == "auto" else weights_order
    if order == "channels_first":
        arrays[0] = descriptor_rows_channels_last(arrays[0], arrays[0].shape[0] - HISTORY_ROWS)
    network.set_weights(arrays)
    how = "set by weights_order" if weights_order != "auto" else "from the file"
    rows = "descriptor rows reordered from channels first (512, 7, 7)" if order == "channels_first" else \
        "descriptor rows channels last (7, 7, 512), as they are"
    return f"{layout}: {rows} ({how})"


HISTORY_ROWS = 24       # the 2016 state's last rows: four one-hot actions of six


def network_summary(network):
    """``25,112 -> 1024 -> 1024 -> 6`` for a chain of Dense layers, else the layers with weights by name."""
    from reinforcement import NUM_ACTIONS
    dense = [layer for layer in network.layers if layer.weights]
    if all(hasattr(layer, "units") for layer in dense):
        return " -> ".join([f"{network.inputs[0].shape[-1]:,}"] + [str(layer.units) for layer in dense])
    return f"{', '.join(layer.name for layer in dense)} -> {NUM_ACTIONS}"


def _load_keras3_weights(network, path):
    """Keras' own reader on a Keras 3 weights file of any name (Keras reads only names ending in .weights.h5)."""
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        named = Path(folder) / "q_network.weights.h5"
        named.symlink_to(path.resolve())
        try:
            network.load_weights(named)
        except Exception as error:      # Keras raises ValueError and others for weights of another network
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise UserError(f"{path}: its weights do not fit the Q-network build_q_network builds "
                            f"({network_summary(network)}): {first[:300]}") from None


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
    from reinforcement import ZoomEnvironment, state_size
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
    trained_here = re.fullmatch(r"model(\d+)(_epoch_\d+|_best)?\.weights\.h5", Path(str(model)).name)
    if isinstance(model, (str, os.PathLike)) and trained_here:
        from runs.run_folder import check_trained_features       # a training run's file: its features_model<k>.json
        check_trained_features(Path(model).parent, int(trained_here.group(1)), path_vgg if features is None else None,
                               scale_subregion, what="detect()",
                               model="image_zooms" if features is None else getattr(features, "name", None))
    if features is None:
        from features import ImageZoomsFeatures
        features = ImageZoomsFeatures(path_vgg, precision=vgg_precision)
    agent = TrainedAgent(QNetworkPolicy(load_q_network(model, state_size(features.descriptor_size), weights_order)))
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
