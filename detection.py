"""Run a trained agent on any image: no dataset, no annotations.

    from detection import detect
    boxes, scores, trajectory = detect("photo.jpg", "models_image_zooms/model0.weights.h5",
                                       path_vgg="vgg16_weights.h5")

The search is the test loop itself (``episodes.run_searches`` with the greedy ``TrainedAgent``) on a
``ZoomEnvironment`` that has no ground-truth boxes. Boxes are float ``[x0, y0, x1, y1)`` in pixels of the image;
a region's score is its trigger Q-value (the "sixth neuron"), as in testing. The Q-network may also come from
the authors' 2016 weights files (``load_q_network``).
"""
import hashlib
import os
import re
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from reinforcement import QNetworkPolicy, ZoomEnvironment, state_size
from runs.errors import UserError
from runs.q_network_files import load_q_network, set_q_network_weights  # noqa: F401 (part of the API)


def as_rgb_image(image, max_pixels=None) -> np.ndarray:
    """Float32 ``(H, W, 3)`` RGB 0..255 from a path (any format Pillow reads, at most ``max_pixels`` pixels:
    ``image_helper.MAX_PIXELS`` when None, checked before decoding) or an array: ``(H, W)`` gray, ``(H, W, 1)``,
    ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA (alpha dropped), uint8 or float in 0..255."""
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
    """``(boxes (n, 4), scores (n,))`` of a search trajectory, best score first; ``detections`` and ``duplicates``
    as in :func:`detect` ('visited' is the paper's evaluation protocol; repeats: :func:`metrics.mark_duplicates`)."""
    from metrics import mark_duplicates
    steps = [step for step in trajectory if detections == "visited" or step["triggered"]]
    steps.sort(key=lambda step: -step["score"])
    if duplicates == "demote":
        repeated = mark_duplicates([{"image": "", "box": step.get("refined", step["region"]), "score": step["score"]}
                                    for step in steps])
        steps = [step for step, _ in sorted(zip(steps, repeated), key=lambda pair: pair[1])]   # stable: repeats last
    boxes = np.array([step.get("refined", step["region"]) for step in steps], dtype=np.float64).reshape(-1, 4)
    return boxes, np.array([step["score"] for step in steps], dtype=np.float64)


def head_argument(name, head, kind, descriptor_size):
    """``refiner`` or ``scorer`` as :func:`detect` takes it (None, a ``kind`` or the path of a saved one), loaded."""
    option, filled, without = (("refine 1", "overlapped an object", "reports the hierarchy's windows") if name ==
                               "refiner" else ("score_head 1", "been sampled", "ranks by the trigger's Q-value"))
    if isinstance(head, (str, os.PathLike)):
        if not Path(head).is_file():
            raise UserError(f"{name} {os.fspath(head)!r}: no such file (a training with {option} writes "
                            f"{name}_model<k>.npz beside each weights file once enough visited windows have "
                            f"{filled}); {name}=None {without}")
        return kind.load(head, descriptor_size)
    if head is not None and not isinstance(head, kind):
        raise UserError(f"{name} must be None, a refinement.{kind.__name__} or the path of a saved one, got "
                        f"{type(head).__name__}")
    return head


def detect_many(images, model, path_vgg="./vgg16_weights.h5", features=None, scale_subregion=0.75,
                number_of_steps=10, only_first_object=False, detections="triggered", vgg_precision="float32",
                weights_order="auto", max_pixels=None, refiner=None, duplicates="keep", scorer=None):
    """``detect`` for several images at once (their searches advance in lockstep, regions described in batches);
    returns one ``(boxes, scores, trajectory)`` per image."""
    from episodes import TrainedAgent, run_searches
    from refinement import BoxRefiner, ScoreHead
    from settings import check_settings     # the scripts' rules for the same settings
    check_settings(SimpleNamespace(scale_subregion=scale_subregion, number_of_steps=number_of_steps,
                                   detections=detections, vgg_precision=vgg_precision, weights_order=weights_order,
                                   duplicates=duplicates, **({} if max_pixels is None else {"max_pixels": max_pixels})))
    refiner = head_argument("refiner", refiner, BoxRefiner, features and features.descriptor_size)
    scorer = head_argument("scorer", scorer, ScoreHead, features and features.score_descriptor_size)
    arrays = [as_rgb_image(image, max_pixels) for image in images]
    trained_here = re.fullmatch(r"model(\d+)(_epoch_\d+)?\.weights\.h5", Path(str(model)).name)
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
    trajectories = run_searches(environments, agent, features, int(number_of_steps), bool(only_first_object), refiner,
                                scorer)
    return [(*select_detections(trajectory, detections, duplicates), trajectory) for trajectory in trajectories]


def detect(image, model, path_vgg="./vgg16_weights.h5", features=None, scale_subregion=0.75, number_of_steps=10,
           only_first_object=False, detections="triggered", vgg_precision="float32", weights_order="auto",
           max_pixels=None, refiner=None, duplicates="keep", scorer=None):
    """Search ``image`` with a trained agent; returns ``(boxes, scores, trajectory)``.

    image: a file path or an RGB array (see :func:`as_rgb_image`). model: a Q-network weights file written by training
    (``model<k>.weights.h5`` or ``model<k>_epoch_<i>.weights.h5``), a Keras 1.x / 2.x ``save_weights`` file of the 2016
    release (``model<k>h5``, ``model_image_zooms_2``; ``weights_order``: see :func:`set_q_network_weights`), or a Keras
    model. features: a region describer (``ImageZoomsFeatures``, ``Pool45CropsFeatures``; build it once to search many
    images), else Image-Zooms features with VGG-16 weights ``path_vgg`` (the weights training used) in ``vgg_precision``
    (``float32``, or the ``bfloat16`` option). ``scale_subregion`` must be the training's. At most ``number_of_steps``
    regions are analysed; after a trigger the region is painted with the mean colour and a new search starts from the
    whole image, unless ``only_first_object``. An image file of more than ``max_pixels`` pixels
    (``image_helper.MAX_PIXELS`` when None; read from its header, before decoding), a decompression bomb or a file
    Pillow cannot read is a UserError naming it. ``refiner`` (the ``refine`` option, beyond the paper): a
    ``refinement.BoxRefiner`` or the path of one a training with refine 1 saved (``refiner_model<k>….npz``); the boxes
    are then the refined ones, each step has ``refined`` too. ``duplicates='demote'`` (beyond the paper): a box
    repeating a better one (IoU ≥ 0.5) comes after all others. ``scorer`` (the ``score learned`` option, beyond the
    paper): a ``refinement.ScoreHead`` or the path of one a training with score_head 1 saved
    (``scorer_model<k>….npz``); the scores are then its predicted IoUs of the reported boxes, each step's ``scores``
    holding both.

    boxes: float ``(n, 4)`` ``[x0, y0, x1, y1)`` in pixels of the image, best score first: the triggered regions,
    or every analysed region with ``detections='visited'``. scores: their trigger Q-values (or ``scorer``'s).
    trajectory: every analysed region in order, as dicts ``{'region', 'score', 'action', 'q_values', 'search', 'step',
    'triggered'}`` (the format of ``results.json`` and ``visualization.draw_search``).
    """
    return detect_many([image], model, path_vgg, features, scale_subregion, number_of_steps, only_first_object,
                       detections, vgg_precision, weights_order, max_pixels, refiner, duplicates, scorer)[0]
