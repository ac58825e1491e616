"""Q-network weights files: this project's (Keras 3, any network ``reinforcement.build_q_network`` builds) and the
2016 release's (Keras 1.x / 2.x ``save_weights`` of the paper's network), read into the network the builder builds.
``detection.load_q_network`` is the entry point users know."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from runs.errors import UserError


def load_q_network(model, state_size, weights_order="auto", verbose=False):
    """A Q-network from a Keras model (returned as is) or a weights file, loaded into the network
    ``reinforcement.build_q_network(state_size)`` builds: this project's checkpoints, or a Keras 1.x / 2.x
    ``save_weights`` file such as the authors' 2016 ``model_image_zooms_2`` (:func:`set_q_network_weights`, which
    takes ``weights_order``). ``verbose``: print one line on a 2016 file's layout and row order."""
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


# ---- weights file layouts, told apart by content, never by name (2016 files: ``model<k>h5``, ``model_image_zooms``)
# - Keras 3 ``.weights.h5`` (this project): ``layers/<layer>/vars/<i>``, read by Keras into whatever network
#   ``build_q_network`` builds.
# - Keras 1.x / 2.x ``save_weights`` (the paper's three Dense layers): root attribute ``layer_names`` lists the layers
#   in model order (their numbers vary; only the order counts); each layer group's attribute ``weight_names`` lists
#   ``dense_1_W``, ``dense_1_b`` (Keras 1) or ``dense_1/kernel:0``, ``dense_1/bias:0`` (Keras 2). Full-model files
#   keep the same under ``model_weights``. Keras 1.2 and 2.x write ``keras_version`` and ``backend``; 1.0/1.1 neither.
# Keras 1 Dense kernels are (input, output) on Theano and TensorFlow alike, as in Keras 2 and 3: no transposition. But
# the 2016 descriptor is Theano's pool5 map flattened channels first, (512, 7, 7), ours channels last, (7, 7, 512), so
# the first kernel's 25,088 descriptor rows are reordered (the 24 history rows after them are the same in both).

PROJECT_LAYOUT = "Keras 3 weights file (this project)"
WEIGHTS_ORDERS = ("auto", "channels_first", "channels_last")


def set_q_network_weights(network, path, weights_order="auto"):
    """Load the weights file ``path`` into ``network``; returns one line saying what the file is. ``weights_order``:
    the order of the first kernel's descriptor rows in the file; 'auto' is channels first for a Keras 1.x / 2.x file
    whose ``backend`` is 'theano' or absent (the 2016 release), else channels last. A missing or non-HDF5 file, an
    unknown layout, weights that do not fit ``network`` or are not finite raise ``UserError`` naming the file."""
    import h5py
    if weights_order not in WEIGHTS_ORDERS:
        raise UserError(f"weights_order must be one of {', '.join(WEIGHTS_ORDERS)}, got {weights_order!r}")
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
            layers, layout, file_order = _legacy_layers(path, root, handle)
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
    rows = "descriptor rows reordered from channels first (512, 7, 7)" if order == "channels_first" else \
        "descriptor rows channels last (7, 7, 512), as they are"
    return f"{layout}: {rows} ({'set by weights_order' if weights_order != 'auto' else 'from the file'})"


HISTORY_ROWS = 24       # the 2016 state's last rows: four one-hot actions of six


def network_summary(network):
    """``25,112 -> 1024 -> 1024 -> 6`` for a chain of Dense layers, else the layers with weights by name."""
    from reinforcement import NUM_ACTIONS
    dense = [layer for layer in network.layers if layer.weights]
    inputs = getattr(network, "inputs", None)
    if inputs and all(hasattr(layer, "units") for layer in dense):
        return " -> ".join([f"{inputs[0].shape[-1]:,}"] + [str(layer.units) for layer in dense])
    return f"{', '.join(layer.name for layer in dense)} -> {NUM_ACTIONS}"


def _load_keras3_weights(network, path):
    """Keras' own reader on a Keras 3 weights file of any name (Keras reads only names ending in .weights.h5)."""
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        named = Path(folder) / "q_network.weights.h5"
        try:
            named.symlink_to(path.resolve())
        except OSError:                 # a file system or system without links: a copy
            import shutil
            shutil.copyfile(path, named)
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
    """``([(layer name, [arrays])], layout, row order)`` of a Keras 1/2 ``save_weights`` file: its weighted layers in
    model order, the layout in words, and the descriptor row order its ``backend`` implies."""
    import h5py
    layers, all_weight_names = [], []
    for layer_name in (_text(name) for name in root.attrs["layer_names"]):
        group = root.get(layer_name)
        if not isinstance(group, h5py.Group):
            raise UserError(f"{path}: layer {layer_name} is listed in 'layer_names' but has no group")
        weight_names = [_text(name) for name in group.attrs.get("weight_names", [])]
        missing = [name for name in weight_names if not isinstance(group.get(name), h5py.Dataset)]
        if missing:
            raise UserError(f"{path}: layer {layer_name} lists weight {missing[0]} but has no such dataset")
        if weight_names:                # not the activation and dropout layers
            layers.append((layer_name, [np.asarray(group[name]) for name in weight_names]))
        all_weight_names += weight_names
    attributes = {**handle.attrs, **root.attrs}
    keras_2_names = any("/" in name or name.endswith(":0") for name in all_weight_names)
    version = _text(attributes["keras_version"]) if "keras_version" in attributes else None
    generation = f"Keras {version}" if version else "Keras 2.x" if keras_2_names else "Keras 1.x"
    backend = _text(attributes["backend"]).lower() if "backend" in attributes else None
    layout = f"{generation} save_weights file, {f'backend {backend}' if backend else 'no backend attribute'}"
    return layers, layout, "channels_first" if backend in (None, "theano") else "channels_last"
