"""The box-refinement stage (``refine 1``) and the score head (``score_head 1``), options beyond the paper: heads that
fit each detection to its object and score how well it fits.

The hierarchy can only report its own windows (four corners and a centre at ``scale_subregion`` of their parent,
always with the image's aspect ratio), which caps recall: many searches end near an object with a window of the
wrong shape. As R-CNN's bounding-box regression does on pool5 features, a linear head predicts from a window's
descriptor the box of the object it overlaps, in R-CNN's parameterisation: centre offsets relative to the window's
size, log width and height ratios (:func:`box_deltas`).

- Training (``refine 1`` in a training script): the windows the training searches visit anyway, with their
  descriptors taken from the replay memory (no extra VGG-16 forward), teach the head wherever they overlap an object
  of the class at IoU ≥ :data:`REFINE_IOU`. Distinct windows are kept in a :class:`WindowSample` of at most
  :data:`SAMPLE_SIZE` (a reservoir, with its own random generator: the agent's training is unchanged), and after
  every epoch the head is fitted afresh by ridge regression on it, the penalty chosen by leave-one-out error
  (:meth:`BoxRefiner.fit`). The head is saved beside each epoch's weights (:func:`refiner_path`); the sample is part
  of the resume state, so ``-n`` continues exactly.
- Testing (``refine 1`` in a testing script, ``detect(..., refiner=...)``): the search is unchanged (the same windows
  are visited, with the same scores); each analysed window is reported as its refined box. ``results.json`` keeps
  both (``box`` the refined one, ``window`` the hierarchy's).

The score head, a second option beyond the paper, is R-CNN's other half: the paper ranks a detection by the trigger's
Q-value, which estimates a discounted return, not whether the box holds an object; R-CNN scores each box by a
classifier on that box's own features. A linear head of the same kind (:class:`ScoreHead`) predicts from the reported
box's descriptor its IoU with the object of the class it overlaps most: the box pooled from the unpainted image's
pool4 and pool5 maps, as Fast R-CNN does (Pool45-Crops' descriptor: one VGG-16 forward an image), and for
Image-Zooms its window's own descriptor beside it (``features.ImageZoomsFeatures.score_descriptors``).

- Training (``score_head 1``): a :data:`SCORE_RATE` share of the distinct windows the searches visit, positives and
  negatives alike, is kept in a :class:`ScoreSample` (a reservoir like the refinement sample, its own random
  stream), each as the box testing would report — refined by the latest epoch's refinement head with ``refine 1``,
  else the window — described on the unpainted image. After every epoch the head is fitted on it by the same
  ridge regression to the boxes' IoUs and saved beside the weights (``scorer_model<k>….npz``); the sample is in the
  resume state.
- Testing (``score learned``): the searches are unchanged; each reported box is described so and ranked by the
  head's score; ``results.json`` keeps both scores (``scores``) and each one's AUC.

Boxes are float ``[x0, y0, x1, y1)`` in pixels, the project's one format.
"""
import hashlib
from pathlib import Path

import numpy as np

from runs.errors import UserError

REFINE_IOU = 0.3            # a visited window teaches the head where it overlaps an object at IoU ≥ this
SAMPLE_SIZE = 2000          # distinct windows kept (about 50 KB each, float16): 100 MB at most
MIN_WINDOWS = 10            # the head is fitted once the sample holds this many windows
RIDGE_GRID = np.logspace(-3, 2, 11)     # ridge penalties tried, relative to the mean squared descriptor norm
MAX_LOG_RATIO = np.log(4.0)             # a refined box is at most 4 times wider or taller than its window, or 1/4
SCORE_RATE = 0.5            # score_head 1: the share of distinct visited windows whose reported box is sampled


def box_deltas(windows, boxes):
    """R-CNN's regression values of ``boxes`` relative to ``windows`` (both ``(n, 4)``): ``((gx − wx) / ww,
    (gy − wy) / wh, log(gw / ww), log(gh / wh))`` with centres ``g·``, ``w·`` and sizes."""
    windows, boxes = np.asarray(windows, np.float64).reshape(-1, 4), np.asarray(boxes, np.float64).reshape(-1, 4)
    window_size = windows[:, 2:] - windows[:, :2]
    box_size = boxes[:, 2:] - boxes[:, :2]
    centre_shift = (boxes[:, :2] + box_size / 2) - (windows[:, :2] + window_size / 2)
    return np.concatenate([centre_shift / window_size, np.log(box_size / window_size)], axis=1)


def apply_deltas(windows, deltas, width=None, height=None):
    """The boxes that ``deltas`` (:func:`box_deltas`) make of ``windows``, clipped to the image when its size is
    given; size ratios are clipped to [1/4, 4]."""
    windows, deltas = np.asarray(windows, np.float64).reshape(-1, 4), np.asarray(deltas, np.float64).reshape(-1, 4)
    window_size = windows[:, 2:] - windows[:, :2]
    centre = windows[:, :2] + window_size / 2 + deltas[:, :2] * window_size
    size = window_size * np.exp(np.clip(deltas[:, 2:], -MAX_LOG_RATIO, MAX_LOG_RATIO))
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    return boxes if width is None else np.clip(boxes, 0.0, [width, height, width, height])


def best_objects(windows, boxes):
    """For each window, the index of the object box it overlaps most and that IoU (−1 and 0 without objects)."""
    from metrics import iou_many
    windows = np.asarray(windows, np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return np.full(len(windows), -1), np.zeros(len(windows))
    ious = np.stack([iou_many(np.asarray(boxes, np.float64).reshape(-1, 4), window) for window in windows])
    return ious.argmax(axis=1), ious.max(axis=1)


class WindowSample:
    """Distinct visited windows that overlap an object (descriptor, window, object box), at most ``capacity``: once
    full, the n-th window seen replaces a random one with probability capacity / n (a uniform sample of all seen)."""

    STREAM = 7                  # its random generator's stream: the agent's draws are untouched

    def __init__(self, descriptor_size, capacity=SAMPLE_SIZE, seed=0):
        self.capacity = int(capacity)
        self.descriptors = np.zeros((self.capacity, descriptor_size), np.float16)
        self.windows, self.boxes = np.zeros((self.capacity, 4)), np.zeros((self.capacity, 4))
        self.seen, self.keys = 0, set()
        self.rng = np.random.default_rng([int(seed), self.STREAM])

    def __len__(self):
        return min(self.seen, self.capacity)

    def add_search_steps(self, steps, memory, boxes):
        """The windows of a training image's ``steps`` (as ``episodes.train_image`` returns them, the last transitions
        stored in ``memory``), each with its descriptor from the memory, where it overlaps one of ``boxes``."""
        count = min(len(steps), memory.capacity)
        positions = (memory.pos - count + np.arange(count)) % memory.capacity
        windows = np.array([step["region"] for step in steps[len(steps) - count:]]).reshape(-1, 4)
        objects, ious = best_objects(windows, boxes)
        for position, window, index, iou in zip(positions, windows, objects, ious):
            if iou >= REFINE_IOU:
                self.add(memory.states[position, :self.descriptors.shape[1]], window, np.asarray(boxes)[index])

    def add(self, descriptor, window, box):
        if not self.seen_before(descriptor, window):
            self.store(descriptor, window, box)

    def seen_before(self, descriptor, window):
        """Whether this window of this image (its descriptor says which) was offered before; remembers it."""
        key = hashlib.blake2b(np.asarray(descriptor, np.float16).tobytes() + np.asarray(window, np.float64).tobytes(),
                              digest_size=16).digest()
        if key in self.keys:            # the same window of the same image, visited again
            return True
        self.keys.add(key)
        return False

    def store(self, descriptor, window, box, slot=None):
        slot = self.draw_slot() if slot is None else slot
        if slot < self.capacity:
            self.descriptors[slot], self.windows[slot], self.boxes[slot] = descriptor, window, box

    def draw_slot(self):
        """Where the next window offered goes: the next free row, then a random one (none: ≥ capacity)."""
        self.seen += 1
        return self.seen - 1 if self.seen <= self.capacity else int(self.rng.integers(self.seen))

    def state_dict(self):
        return {"descriptors": self.descriptors[:len(self)], "windows": self.windows[:len(self)],
                "boxes": self.boxes[:len(self)], "seen": np.array(self.seen),
                "keys": np.frombuffer(b"".join(sorted(self.keys)), np.uint8),
                "rng": np.frombuffer(repr(self.rng.bit_generator.state).encode(), np.uint8)}

    def load_state_dict(self, arrays):
        import ast
        count = len(arrays["windows"])
        if count > self.capacity or arrays["descriptors"].shape[1:] != self.descriptors.shape[1:]:
            raise ValueError(f"a window sample of {count} windows of {arrays['descriptors'].shape[1:]} values does "
                             f"not fit this one")
        for name, shape in (("descriptors", (count, *self.descriptors.shape[1:])), ("windows", (count, 4)),
                            ("boxes", (count, 4))):
            if arrays[name].shape != shape or not np.all(np.isfinite(arrays[name])):
                raise ValueError(f"its {name} are not {count} rows of finite numbers")
        if int(arrays["seen"]) < count or len(arrays["keys"]) % 16:
            raise ValueError("its counts do not fit its windows")
        self.descriptors[:count], self.windows[:count], self.boxes[:count] = (
            arrays["descriptors"], arrays["windows"], arrays["boxes"])
        self.seen = int(arrays["seen"])
        keys = bytes(np.asarray(arrays["keys"], np.uint8))
        self.keys = {keys[start:start + 16] for start in range(0, len(keys), 16)}
        self.rng.bit_generator.state = ast.literal_eval(bytes(np.asarray(arrays["rng"], np.uint8)).decode())

    def fit(self):
        """The head fitted on the sample (None while it holds fewer than :data:`MIN_WINDOWS` windows)."""
        count = len(self)
        if count < MIN_WINDOWS:
            return None
        return BoxRefiner.fit(self.descriptors[:count], box_deltas(self.windows[:count], self.boxes[:count]))


class ScoreSample(WindowSample):
    """The score option's sample (``score_head 1``): reported boxes of visited windows, positives and negatives
    alike — each the window refined by the latest refinement head (the window itself without one) — with the box's
    descriptor (:func:`reported_boxes`) and the object it overlaps most (zeros if none). A :data:`SCORE_RATE` share
    of the distinct windows is taken (only those the reservoir keeps are described: once full, a share
    capacity / seen)."""

    STREAM = 8

    def add_search_steps(self, steps, memory, env, image, describer, refiner=None):
        """The reported boxes of a training image's ``steps`` (as :meth:`WindowSample.add_search_steps` takes them),
        each described on the unpainted ``image`` (as testing scores them); ``env`` holds the image's objects."""
        count, size = min(len(steps), memory.capacity), describer.descriptor_size       # the windows' descriptors
        positions = (memory.pos - count + np.arange(count)) % memory.capacity
        windows = np.array([step["region"] for step in steps[len(steps) - count:]]).reshape(-1, 4)
        taken = [index for index, (position, window) in enumerate(zip(positions, windows))
                 if not self.seen_before(memory.states[position, :size], window) and self.rng.random() < SCORE_RATE]
        slots = {index: self.draw_slot() for index in taken}     # a full reservoir keeps few: only those described
        if not (kept := [index for index in taken if slots[index] < self.capacity]):
            return
        boxes, descriptors = reported_boxes(windows[kept], memory.states[positions[kept], :size],
                                            [env] * len(kept), [image] * len(kept), describer, refiner)
        objects, _ = best_objects(boxes, env.boxes)
        for descriptor, box, found, slot in zip(descriptors, boxes, objects, [slots[index] for index in kept]):
            self.store(descriptor, box, env.boxes[found] if found >= 0 else np.zeros(4), slot)

    def fit(self):
        """The score head fitted on the sample: each box's IoU with the object it overlaps most."""
        from metrics import iou_many
        count = len(self)
        if count < MIN_WINDOWS:
            return None
        ious = [iou_many(object_box[None], box)[0] for box, object_box in zip(self.windows[:count], self.boxes[:count])]
        return ScoreHead.fit(self.descriptors[:count], np.array(ious)[:, None])


def reported_boxes(windows, descriptors, environments, images, describer, refiner=None):
    """The boxes reported for ``windows`` (refined by ``refiner`` from the windows' ``descriptors``, clipped to their
    image; else the windows) and the score head's descriptors of them (``describer.score_descriptors``, on the
    unpainted ``images``); ``environments`` and ``images``: one per window. Their cache keys are apart from the
    agent's, so the agent never reads a descriptor computed here."""
    boxes = np.asarray(windows, np.float64).reshape(-1, 4)
    if refiner is not None:
        sizes = np.array([[env.width, env.height] * 2 for env in environments])
        boxes = np.clip(refiner.refine(descriptors, windows), 0, sizes)
    return boxes, describer.score_descriptors(descriptors, [(((env.image_id, "reported box"), ()), image, box)
                                                            for env, image, box in zip(environments, images, boxes)])


class LinearHead:
    """A linear head on standardised descriptors: ``((d − mean) / scale) · weights + bias``, fitted by ridge
    regression (:meth:`fit`); :class:`BoxRefiner` and :class:`ScoreHead` say what its outputs mean."""

    FIELDS = ("mean", "scale", "weights", "bias", "ridge", "samples")     # saved, in the constructor's order
    OUTPUTS, WHAT, OPTION, PREFIX = 4, "refinement head", "refine 1", "refiner"     # PREFIX: its file's name

    def __init__(self, mean, scale, weights, bias, ridge=0.0, samples=0):
        self.mean, self.scale = np.asarray(mean, np.float32), float(scale)
        self.weights, self.bias = np.asarray(weights, np.float32), np.asarray(bias, np.float32)
        self.ridge, self.samples = float(ridge), int(samples)

    @classmethod
    def fit(cls, descriptors, targets):
        """Ridge regression in its dual form (n windows ≪ descriptor values), the penalty chosen from
        :data:`RIDGE_GRID` by the exact leave-one-out error, which needs one eigendecomposition of the n × n kernel."""
        features = np.asarray(descriptors, np.float64)
        mean = features.mean(axis=0)
        centred = features - mean
        scale = float(np.sqrt((centred ** 2).sum(axis=1).mean())) or 1.0
        centred /= scale                                   # unit mean squared norm: the grid is relative to it
        targets = np.asarray(targets, np.float64)
        bias = targets.mean(axis=0)
        eigenvalues, eigenvectors = np.linalg.eigh(centred @ centred.T)
        projected = eigenvectors.T @ (targets - bias)

        def leave_one_out_error(ridge):
            shrink = eigenvalues / (eigenvalues + ridge)
            fitted = eigenvectors @ (shrink[:, None] * projected)
            leverage = (eigenvectors ** 2) @ shrink
            return float((((targets - bias - fitted) / (1.0 - leverage)[:, None]) ** 2).mean())
        ridge = min(RIDGE_GRID, key=leave_one_out_error)        # min keeps the first of equal errors
        dual = eigenvectors @ (projected / (eigenvalues + ridge)[:, None])
        return cls(mean, scale, centred.T @ dual, bias, ridge, len(features))

    def predict(self, descriptors):
        """The head's outputs for descriptors ``(n, descriptor_size)`` (a state's first values)."""
        descriptors = np.asarray(descriptors, np.float32)
        if descriptors.shape[-1] != self.mean.shape[0]:
            raise UserError(f"the {self.WHAT} was fitted on descriptors of {self.mean.shape[0]:,} values, these "
                            f"have {descriptors.shape[-1]:,} (another backbone or feature model than its training's)")
        return ((descriptors - self.mean) / self.scale) @ self.weights + self.bias

    def save(self, path):
        with open(path, "wb") as handle:    # a file handle: np.savez would add .npz to a temporary name
            np.savez(handle, **{name: getattr(self, name) for name in self.FIELDS})

    @classmethod
    def load(cls, path, descriptor_size=None):
        """The head saved in ``path``, for descriptors of ``descriptor_size`` values (the describer's; None: any); a
        UserError naming the file if it cannot be read or fits other descriptors."""
        try:
            with np.load(path) as arrays:
                head = cls(*(arrays[name] for name in cls.FIELDS))
        except Exception as error:      # a missing, truncated or foreign file
            raise UserError(f"{path}: not a {cls.WHAT} of this project ({type(error).__name__}: {error})") from None
        size = descriptor_size or (head.weights.shape[0] if head.weights.ndim == 2 else -1)
        for name, expected in {"mean": (size,), "weights": (size, cls.OUTPUTS), "bias": (cls.OUTPUTS,)}.items():
            if getattr(head, name).shape != expected:
                raise UserError(f"{path}: {name} has shape {getattr(head, name).shape}, not {expected}; not a "
                                f"{cls.WHAT} of this project")
            if not np.all(np.isfinite(getattr(head, name))):
                raise UserError(f"{path}: {name} holds a value that is not finite; the head is damaged")
        if not (np.isfinite(head.scale) and head.scale > 0):
            raise UserError(f"{path}: scale is {head.scale}, not a positive number; the head is damaged")
        return head


class BoxRefiner(LinearHead):
    """The refinement head: from a window's descriptor, the :func:`box_deltas` of the object it overlaps."""

    def refine(self, descriptors, windows):
        """The refined boxes of ``windows`` (``(n, 4)``) from their descriptors, not clipped to the image (its
        caller clips each box)."""
        return apply_deltas(windows, self.predict(descriptors))


class ScoreHead(LinearHead):
    """The score head (``score_head 1``, beyond the paper): from a reported box's own descriptor, its predicted IoU
    with the object of the class it overlaps most; ``score learned`` ranks the detections by it."""

    OUTPUTS, WHAT, OPTION, PREFIX = 1, "score head", "score_head 1", "scorer"

    def score(self, descriptors):
        return self.predict(descriptors)[:, 0]


def refiner_path(weights_path, prefix="refiner"):
    """A head's file beside Q-network weights: ``model0_epoch_3.weights.h5`` → ``refiner_model0_epoch_3.npz`` (the
    score head's: ``prefix`` ``scorer``)."""
    weights_path = Path(weights_path)
    return weights_path.with_name(f"{prefix}_" + weights_path.name.replace(".weights.h5", "") + ".npz")


def scorer_path(weights_path):
    return refiner_path(weights_path, ScoreHead.PREFIX)


def load_refiner(weights_path, descriptor_size, head=BoxRefiner):
    """The head trained beside ``weights_path`` (``head``: its class), or a UserError saying how to get one."""
    path = refiner_path(weights_path, head.PREFIX)
    if not path.is_file():
        raise UserError(f"{head.OPTION}: no {head.WHAT} {path} beside {Path(weights_path).name}; it is written by a "
                        f"training run with {head.OPTION} once {MIN_WINDOWS} visited windows have "
                        f"{'overlapped an object' if head is BoxRefiner else 'been sampled'} (the agent is the same "
                        f"with it: retrain with --{head.OPTION})")
    return head.load(path, descriptor_size)
