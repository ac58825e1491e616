"""What several test files share: the tiny synthetic dataset, the VOC 2007 test annotations the repository carries
(unpacked once per session), a tiny stand-in for VGG-16 and a narrow stand-in for the Q-network."""
import gc

import numpy as np
import pytest

from parse_xml_annotations import ensure_voc2007_test_annotations
from reinforcement import state_size
from synthetic_dataset import generate_synthetic_voc

DESCRIPTOR_SIZE = 7 * 7 * 512           # VGG-16's pool5, the paper's descriptor (features.py reads it from VGG-16)
STATE_SIZE = state_size(DESCRIPTOR_SIZE)    # 25,112


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """8 trainval + 6 test synthetic VOC images of 64–96 px (one per test module)."""
    return generate_synthetic_voc(tmp_path_factory.mktemp("voc"), num_trainval=8, num_test=6, seed=1,
                                  min_size=64, max_size=96)


@pytest.fixture(scope="session")
def voc2007_test(tmp_path_factory):
    """The real PASCAL VOC 2007 test annotations (4,952 images, no pixels) in the VOC layout."""
    return ensure_voc2007_test_annotations(tmp_path_factory.mktemp("voc2007") / "VOC2007_test_annotations")


def tiny_backbone():
    """224×224×3 → 7×7×512 with fixed weights: stands in for VGG-16 where the features do not matter."""
    import keras
    import numpy
    inputs = keras.Input((224, 224, 3))
    maps = keras.layers.Conv2D(512, 1, use_bias=False)(keras.layers.AveragePooling2D(32)(inputs))
    backbone = keras.Model(inputs, maps)
    backbone.layers[-1].set_weights([numpy.random.default_rng(0).normal(0, 0.01, (1, 1, 3, 512)).astype("float32")])
    return backbone


SMALL_HIDDEN_UNITS = 32


@pytest.fixture(scope="module")
def small_q_network():
    """Q-networks 25,112 → 32 → 32 → 6 instead of the paper's 1024-wide ones, for test modules of what does not
    depend on the width (checkpoints, resume, folders, options, scripts): building, updating and saving the paper's
    26 M weights is most of such a test's time. Tests of the paper's network itself (its shapes, the 2016 files, the
    learning test) do not use it; a subprocess does not see it (a launcher sets ``reinforcement.HIDDEN_UNITS``), so
    several classes train in this process (``classes_run.CLASSES_APART`` off)."""
    from runs import classes_run
    import reinforcement
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reinforcement, "HIDDEN_UNITS", SMALL_HIDDEN_UNITS)
        patch.setattr(classes_run, "CLASSES_APART", False)     # a class's own process would build the paper's
        yield SMALL_HIDDEN_UNITS


@pytest.fixture(autouse=True)
def release_models():
    """A test's Q-networks (100 MB each, three times that with Adam's state) sit in reference cycles that Python's
    collector may not reach for many tests: collect them when the test ends (tests/test_run_folder.py alone peaks
    at 4 GB with it, 7.6 GB without)."""
    yield
    gc.collect()


def apply_action(region, action, scale):
    """The region after ``action``: a child for a movement, the same region for the trigger."""
    from reinforcement import TRIGGER, child_regions
    if action == TRIGGER:
        return np.asarray(region, dtype=float).copy()
    return child_regions(region, scale)[action]


def learner_regression_values(learner, batch):
    """What ``learner`` (a ``reinforcement.QLearner``) regresses Q(s) to on ``batch``, computed outside its compiled
    update from the same networks and options."""
    from reinforcement import regression_values
    trigger_values, _ = learner._carried(batch)
    states, next_states = batch.states, batch.next_states
    q_both = np.asarray(learner.model(np.concatenate([states, next_states]), training=False))
    q_states, q_next = q_both[:len(states)], q_both[len(states):]
    return np.asarray(regression_values(q_states, q_next, batch.actions, batch.rewards, batch.terminals,
                                        learner.gamma, trigger_values))


def iou(box_a, box_b):
    """Intersection over union of two ``[x0, y0, x1, y1)`` boxes, one at a time in plain floats; 0 when the union is
    empty: the obvious reference for ``metrics.iou_many``."""
    from metrics import box_area
    ax0, ay0, ax1, ay1 = (float(value) for value in box_a)
    bx0, by0, bx1, by1 = (float(value) for value in box_b)
    intersection = max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))
    union = box_area(box_a) + box_area(box_b) - intersection
    return intersection / union if union > 0 else 0.0
