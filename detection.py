"""Run a trained agent on any image: no dataset, no annotations.

    from detection import detect
    boxes, scores, trajectory = detect("photo.jpg", "models_image_zooms/model0.weights.h5",
                                       path_vgg="vgg16_weights.h5")

The search is the test loop itself (``episodes.run_searches`` with the greedy ``TrainedAgent``) on a
``ZoomEnvironment`` that has no ground-truth boxes. Boxes are float ``[x0, y0, x1, y1)`` in pixels of the image;
a region's score is its trigger Q-value (the "sixth neuron"), as in testing.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np

from errors import UserError

DETECTION_PROTOCOLS = ("triggered", "visited")


class QNetworkPolicy:
    """Q-values of a Q-network in inference mode: what ``TrainedAgent`` needs, without an optimiser."""

    def __init__(self, model):
        self.model = model

    def q_values(self, states):
        return np.asarray(self.model(np.asarray(states, dtype=np.float32), training=False))


def load_q_network(model):
    """A Q-network from a Keras model (returned as is) or a weights file written by training."""
    import keras

    from reinforcement import build_q_network
    if isinstance(model, keras.Model):
        return model
    path = Path(model)
    if not path.is_file():
        raise UserError(f"Q-network weights file not found: {path}")
    network = build_q_network()
    try:
        network.load_weights(path)
    except Exception as error:      # h5py, Keras and TensorFlow raise several types for a wrong file
        raise UserError(f"{path}: not a Q-network weights file of this project ({error})") from None
    return network


def as_rgb_image(image) -> np.ndarray:
    """Float32 ``(H, W, 3)`` RGB 0..255 from a path (any format Pillow reads) or an array.

    Arrays: ``(H, W)`` gray, ``(H, W, 1)``, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA (alpha dropped), uint8 or
    float in 0..255.
    """
    from image_helper import load_image
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
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


def select_detections(trajectory, detections="triggered"):
    """``(boxes (n, 4), scores (n,))`` of a search trajectory, best score first.

    ``detections``: 'triggered' (the regions the agent triggered on) or 'visited' (every analysed region, the
    paper's evaluation protocol).
    """
    steps = [step for step in trajectory if detections == "visited" or step["triggered"]]
    steps.sort(key=lambda step: -step["score"])
    boxes = np.array([step["region"] for step in steps], dtype=np.float64).reshape(-1, 4)
    return boxes, np.array([step["score"] for step in steps], dtype=np.float64)


def detect_many(images, model, path_vgg="./vgg16_weights.h5", features=None, scale_subregion=0.75,
                number_of_steps=10, only_first_object=False, detections="triggered", vgg_precision="float32"):
    """``detect`` for several images at once (their searches advance in lockstep, regions described in batches);
    returns one ``(boxes, scores, trajectory)`` per image."""
    from episodes import TrainedAgent, run_searches
    from reinforcement import ZoomEnvironment
    if not 0.0 < float(scale_subregion) < 1.0:
        raise UserError(f"scale_subregion must be between 0 and 1, got {scale_subregion}")
    if int(number_of_steps) < 1:
        raise UserError(f"number_of_steps must be at least 1, got {number_of_steps}")
    if detections not in DETECTION_PROTOCOLS:
        raise UserError(f"detections must be one of {DETECTION_PROTOCOLS}, got {detections!r}")
    arrays = [as_rgb_image(image) for image in images]
    agent = TrainedAgent(QNetworkPolicy(load_q_network(model)))
    if features is None:
        from features import ImageZoomsFeatures
        features = ImageZoomsFeatures(path_vgg, precision=vgg_precision)
    environments = [ZoomEnvironment(array.shape[1], array.shape[0], np.zeros((0, 4)), scale_subregion, image=array,
                                    image_id=content_key(array)) for array in arrays]
    trajectories = run_searches(environments, agent, features, int(number_of_steps), bool(only_first_object))
    return [(*select_detections(trajectory, detections), trajectory) for trajectory in trajectories]


def detect(image, model, path_vgg="./vgg16_weights.h5", features=None, scale_subregion=0.75, number_of_steps=10,
           only_first_object=False, detections="triggered", vgg_precision="float32"):
    """Search ``image`` with a trained agent; returns ``(boxes, scores, trajectory)``.

    image: a file path or an RGB array (see :func:`as_rgb_image`). model: a Q-network weights file written by
    training (``model<k>.weights.h5`` or ``model<k>_epoch_<i>.weights.h5``) or a Keras model. features: a region
    describer (``ImageZoomsFeatures``, ``Pool45CropsFeatures``; build it once to search many images), else
    Image-Zooms features with VGG-16 weights ``path_vgg`` (the weights training used) in ``vgg_precision``
    (``float32``, or the ``bfloat16`` option). ``scale_subregion`` must be
    the training's. At most ``number_of_steps`` regions are analysed; after a trigger the region is painted with the
    mean colour and a new search starts from the whole image, unless ``only_first_object``.

    boxes: float ``(n, 4)`` ``[x0, y0, x1, y1)`` in pixels of the image, best score first: the triggered regions,
    or every analysed region with ``detections='visited'``. scores: their trigger Q-values. trajectory: every
    analysed region in order, as dicts ``{'region', 'score', 'action', 'q_values', 'search', 'step',
    'triggered'}`` (the format of ``results.json`` and ``visualization.draw_search``).
    """
    return detect_many([image], model, path_vgg=path_vgg, features=features, scale_subregion=scale_subregion,
                       number_of_steps=number_of_steps, only_first_object=only_first_object,
                       detections=detections, vgg_precision=vgg_precision)[0]
