"""How fast the project trains and tests, measured against the 2016 pattern and against arithmetic floors.

    python experiments/benchmark.py --quick          # 3-10 minutes on a 2-core CPU (AVX-512 to AVX2)
    python experiments/benchmark.py                  # larger samples (about 12 minutes on a 2-core CPU)

Runs on the synthetic dataset with the demo's VGG-16 weights, prints a table and writes ``benchmark.json``. Every
figure is measured in this run, the baseline and the project side by side on the same machine:

- ``update_speedup_vs_2016``: one replay update as the 2016 code did it (``model.predict`` per sample for Q(s) and
  Q(s′), then one ``model.fit`` step on the minibatch) over ``QLearner.update``, same network, same minibatches.
- ``update_over_floor``: ``QLearner.update`` over its floor (``update_floor_s``): its floating-point operations
  (``update_flops``) at this machine's float32 matrix-multiply rate plus Adam's memory traffic (``adam_bytes``) at
  the bandwidth of an element-wise pass, both timed right before each update.
- ``train_speedup_vs_2016``: agent steps per second of the Image-Zooms training loop (``episodes.train_image``,
  ``QLearner``, descriptor cache) over the same loop with the 2016 update and no cache: replay memory full, same
  starting weights, images, seed and number of steps.
- ``train_step_over_floor``: seconds per agent step of the project's training loop (that measurement) over the
  step's floor, timed through the loop beside every third description (its time left out): one bare batch-1
  VGG-16 forward (a step describes its next region; a search's first region is described too, and cache hits skip
  forwards) plus the update's floor (``update_floor_s``). Above 1 by
  what the loop adds: search starts, cropping and resizing, the Q-values of greedy steps, the replay memory, Python;
  below 1 when the cache serves regions.
- ``overlap_speedup`` (no target): a batch-1 VGG-16 forward and an update (minibatch ``batch_size``) one after
  the other, as a training step does them, over the same two at once in two threads: above 1 by what overlapping
  the update with the next region's forward could save on this machine (1: the two already share its cores).
- ``vgg_forwards_later_epoch_ratio``: VGG-16 forward passes in the last training epoch over those in the first
  (the demo's training settings, ε from 1.0 down to 0.1, the default cache limit): a count, not a time.
- ``test_region_over_floor``: test time per region analysed (``episodes.run_searches``, the trained agent, many
  images in lockstep) over the time per image of a bare VGG-16 forward at batch 32, timed during the test.
- ``training_peak_rss_mb``, ``testing_peak_rss_mb``: peak resident memory (VmHWM) of the training epochs and of
  the test, each phase in its own process.
- ``vgg_bfloat16_speedup_batch_1``, ``vgg_bfloat16_speedup_batch_32``: the ``vgg_precision bfloat16`` option (no
  target): a bare VGG-16 forward in float32 over the same in bfloat16, alternating, at the training's batch (1) and
  the test's (32).
- ``option_<name>_step_cost`` (no target), one per learning option (docs/method.md §9): the seconds the option adds
  to a training step over the seconds of the project's training step (that measurement; 0.05: 5% slower): its
  learner's update (``QLearner`` with the option, or the ``OracleLearner``'s regression step) minus the paper's
  ``QLearner.update``, alternating on the same minibatches, plus one computation of each field its transitions
  carry (``learner.carries``: ``trigger_values``, ``expert_actions``, ``upper_bound_values``), which the training
  search makes on every step.
- ``option_refine_step_cost`` (no target): what the ``refine`` option (docs/method.md §9) adds to a training step
  over the seconds of the project's training step: keeping a step's window in the window sample, plus the head's
  fit on a full sample (:data:`refinement.SAMPLE_SIZE` windows) once per epoch, shared by the steps of one of the
  demo's epochs (``max_images`` × ``number_of_steps``).
- ``option_refine_region_cost`` (no target): what ``refine 1`` adds to a test region over the test time per region
  (that measurement): the head applied to a chunk of regions' descriptors, per region.
- ``option_score_step_cost`` (no target): what ``score_head 1`` adds to a training step over the project's step: a
  box pooled from the unpainted image's maps for :data:`refinement.SCORE_RATE` of the steps (an upper bound: only
  those the reservoir keeps are), the image's forward to pool4 and pool5 once a run (its maps kept), shared by the
  demo's epochs × ``number_of_steps`` steps an image, and the score head's fit on a full sample once per demo epoch.
- ``option_score_region_cost`` (no target): what ``score learned`` adds to a test region over the test time per
  region: the unpainted image's forward to pool4 and pool5, shared by its regions, a box pooled, the head applied.

Every setting below can be given as a flag of the same name (``--training_images 40``).
"""
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the top-level modules

from reinforcement import state_size  # noqa: E402

DESCRIPTOR_SIZE = 7 * 7 * 512           # VGG-16's pool5: the paper's descriptor, the benchmark's backbone
STATE_SIZE = state_size(DESCRIPTOR_SIZE)

# data and models
path_voc = "data/synthetic_voc"         # generated if absent (synthetic_dataset.ensure_synthetic_voc)
path_vgg = "hed"                        # the demo's (image_zooms_training.DEMO): the agent's searches, and so
                                        # the descriptor cache's hits, depend on the weights; a step's cost does not
class_object = 1                        # aeroplane
scale_subregion = 3.0 / 4
number_of_steps = 10
seed = 0
# training epochs: the demo's settings (image_zooms_training.DEMO, 10 epochs): ε reaches its floor 0.1 in epoch 9
training_images = 30
training_epochs = 10
cache_mb = 1024                         # image_zooms_training.py's default descriptor cache limit
epochs_learning_rate = 1e-5              # the demo's (image_zooms_training.DEMO); 0 freezes the policy: what the cache
                                        # saves when the agent never changes its mind
# the paper's update, for the update and training-speed figures
batch_size = 100
gamma = 0.90
learning_rate = 1e-6
timed_steps = 60                        # agent steps timed in each run of the project's training loop
timed_steps_2016 = 6                    # and in the 2016 loop (a step takes seconds there)
update_repeats = 5                      # QLearner.update timed this many times on each 2016 minibatch
# testing
test_images = 64                        # images searched together in lockstep
floor_repeats = 5                       # bare VGG-16 forwards at batch 32 timed during the test (median counts)
output = "benchmark.json"

# --quick: smaller samples, the same measurements
QUICK = dict(training_images=6, timed_steps=30, timed_steps_2016=3, update_repeats=8, test_images=32, floor_repeats=3)

TARGETS = {"update_speedup_vs_2016": (">=", 40), "update_over_floor": ("<=", 2),
           "train_speedup_vs_2016": (">=", 20), "train_step_over_floor": ("<=", 1.3),
           "vgg_forwards_later_epoch_ratio": ("<=", 0.3),
           "test_region_over_floor": ("<=", 1.3)}
FLOOR_BATCH = 32
MATMUL_SIZE = 2048


# ---------------------------------------------------------------------------------------------------------------
# measuring

def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def peak_rss_mb():
    """Peak resident memory of this process (VmHWM), MiB."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024         # kB on Linux


def update_flops(batch, sizes=None):
    """Floating-point operations of one ``QLearner.update`` on a minibatch of ``batch`` (a multiply-add is 2).

    Counted: the matrix products of the three Dense layers 25,112 → 1,024 → 1,024 → 6 — forward of 2·batch states
    (Q(s) and Q(s′) for the targets), forward of batch states in training mode after the first layer (dropout comes
    after it: s's first-layer product serves both passes, as XLA computes it once), and backward: the weight
    gradients (as many operations as a whole forward) plus the input gradients of layers 2 and 3 (not layer 1's).
    Not counted: biases, ReLU, dropout, the loss, and Adam's element-wise update of the 26.8 M parameters (about
    0.3 GFLOP, bound by memory traffic, not arithmetic: :func:`adam_bytes`).
    """
    sizes = sizes or q_network_sizes()
    pairs = list(zip(sizes[:-1], sizes[1:]))
    macs = sum(a * b for a, b in pairs)                        # one sample through the network
    input_gradient_macs = sum(a * b for a, b in pairs[1:])
    forward_targets = 2 * (2 * batch) * macs
    forward_training = 2 * batch * (macs - pairs[0][0] * pairs[0][1])
    backward = 2 * batch * macs + 2 * batch * input_gradient_macs
    return forward_targets + forward_training + backward


def q_network_sizes():
    """The layer sizes of ``reinforcement.build_q_network`` on the benchmark's states: 25,112 → 1,024 → 1,024 → 6."""
    from reinforcement import HIDDEN_UNITS, NUM_ACTIONS
    return STATE_SIZE, HIDDEN_UNITS, HIDDEN_UNITS, NUM_ACTIONS


def q_network_parameters(sizes=None):
    """Weights and biases of the Q-network of layer ``sizes`` (default: :func:`q_network_sizes`, 26.8 million)."""
    sizes = sizes or q_network_sizes()
    return sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))


def adam_bytes(sizes=None):
    """Memory traffic of Adam's element-wise step in float32: it reads each parameter, its gradient and two moments
    and writes the parameter and the moments back (7 × 4 bytes a parameter; about 0.75 GB for the paper's network)."""
    return 7 * 4 * q_network_parameters(sizes)


class MatmulTimer:
    """One large float32 matrix product in TensorFlow: the machine's matrix-multiply rate, taken again beside
    each measurement it is compared with (the machine is shared: its speed drifts); and an element-wise pass over
    arrays as large as the Q-network (reading three, writing two, as Adam does, compiled by XLA): the memory
    bandwidth that bounds Adam's step (:meth:`floor`)."""

    def __init__(self, size=MATMUL_SIZE, parameters=None):
        import tensorflow as tf
        self.size = size
        self.a = tf.random.normal((size, size), seed=1)
        self.b = tf.random.normal((size, size), seed=2)
        self.product = tf.function(lambda x, y: tf.reduce_sum(tf.matmul(x, y)))
        self.product(self.a, self.b).numpy()
        self.arrays = [tf.Variable(tf.fill((parameters or q_network_parameters(),), 0.5)) for _ in range(3)]

        def stream(a, b, c):
            a.assign(a * 0.999 + b)
            c.assign(c * 0.999 + b * b)
            return a[0]
        self.stream = tf.function(stream, jit_compile=True)
        self.stream(*self.arrays).numpy()

    def bandwidth(self):
        """Bytes/s of the element-wise pass (5 arrays' bytes moved), the faster of two."""
        best = float("inf")
        for _ in range(2):
            started = time.perf_counter()
            self.stream(*self.arrays).numpy()
            best = min(best, time.perf_counter() - started)
        return 5 * 4 * int(self.arrays[0].shape[0]) / best

    def floor(self, batch, repeats=2):
        """``(seconds, rate)``: the update's floor now (``update_floor_s``) and the matrix-multiply rate in it."""
        rate = self.rate(repeats)
        return update_floor_s(batch, rate, self.bandwidth()), rate

    def rate(self, repeats=2):
        """FLOP/s, the fastest of ``repeats`` products."""
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            self.product(self.a, self.b).numpy()
            best = min(best, time.perf_counter() - started)
        return 2 * self.size ** 3 / best


def update_floor_s(batch, rate, bandwidth, sizes=None):
    """``QLearner.update``'s floor in seconds: ``update_flops`` at the matrix-multiply ``rate`` (FLOP/s) plus
    ``adam_bytes`` at the element-wise ``bandwidth`` (bytes/s)."""
    return update_flops(batch, sizes) / rate + adam_bytes(sizes) / bandwidth


class BudgetReached(Exception):
    pass


class StepBudget(dict):
    """Training counters (``episodes.new_training_stats``) that stop the loop once ``limit`` gradient steps are
    done (``train_image`` has no step limit of its own)."""

    def __init__(self, limit):
        from episodes import new_training_stats
        super().__init__(new_training_stats())
        self.limit = limit

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        if key == "updates" and value >= self.limit:
            raise BudgetReached


def regression_values_reference(model, batch, gamma):
    """The 2016 pattern, kept as a slow obvious reference: one ``predict`` per sample for Q(s) and Q(s′)."""
    values = []
    for state, action, reward, next_state, terminal in zip(batch.states, batch.actions, batch.rewards,
                                                           batch.next_states, batch.terminals):
        old_q = model.predict(state[None], verbose=0)[0]
        new_q = model.predict(next_state[None], verbose=0)[0]
        y = old_q.copy()
        y[action] = reward if terminal else reward + gamma * np.max(new_q)
        values.append(y)
    return np.array(values, dtype=np.float32)


class Learner2016:
    """The 2016 update: ``model.predict`` per sample for Q(s) and Q(s′) (``regression_values_reference``), then one
    ``model.fit`` epoch on the minibatch, the model compiled with Adam and MSE; greedy actions by ``model.predict``.
    A learner as ``episodes.train_search`` takes it (the paper's: its transitions carry nothing). Records each
    minibatch and the seconds its update took."""

    carries = ()

    def __init__(self, model, gamma, learning_rate, batch_size):
        import keras
        self.model = model
        self.gamma = gamma
        self.batch_size = batch_size
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss="mse")
        self.updates = []

    def update(self, batch):
        started = time.perf_counter()
        values = regression_values_reference(self.model, batch, self.gamma)
        history = self.model.fit(batch.states, values, batch_size=len(values), epochs=1, verbose=0)
        self.updates.append((batch, time.perf_counter() - started))
        return float(history.history["loss"][-1])

    def act(self, state, carried):
        values = self.q_values(state[None])[0]
        return int(np.argmax(values)), values

    def q_values(self, states):
        return self.model.predict(np.asarray(states, dtype=np.float32), verbose=0)

    def warm_up(self, batch):
        """Build the predict and train functions (a 2016 run paid this once)."""
        self.q_values(batch.states[:1])
        self.model.fit(batch.states, np.zeros((len(batch.states), 6), np.float32), batch_size=len(batch.states),
                       epochs=1, verbose=0)


def project_learner(model, gamma, learning_rate, batch_size):
    """The project's ``QLearner``, with a ``warm_up`` (the XLA compilation, once per run) like ``Learner2016``'s."""
    from reinforcement import QLearner
    learner = QLearner(model, gamma, learning_rate, batch_size)
    learner.warm_up = learner.update
    return learner


class FloorBeside:
    """The test's region descriptor, which also times a bare VGG-16 forward at batch 32 after every ``every``-th
    batch it describes: the floor is measured under the same load as the test, and its time is kept apart."""

    def __init__(self, features, every):
        import tensorflow as tf
        from image_helper import vgg_preprocess
        self.features, self.every = features, every
        crops = np.random.default_rng(0).uniform(0, 255, (FLOOR_BATCH, 224, 224, 3)).astype(np.float32)
        self.batch = tf.constant(vgg_preprocess(crops))      # preprocessed and in memory: the backbone alone
        self.forward = tf.function(lambda x: features.backbone(x, training=False))
        self.forward(self.batch).numpy()
        self.calls, self.floor_times, self.floor_seconds = 0, [], 0.0

    def describe(self, items):
        descriptors = self.features.describe(items)
        if self.calls % self.every == 0:
            started = time.perf_counter()
            self.forward(self.batch).numpy()
            seconds = time.perf_counter() - started
            self.floor_times.append(seconds / FLOOR_BATCH)
            self.floor_seconds += seconds
        self.calls += 1
        return descriptors


class StepFloorBeside:
    """The training loop's region descriptor (``features``, whose other attributes it passes on), which also times a
    training step's floor after every ``every``-th description: a bare batch-1 VGG-16 forward of a 224×224 crop, and
    the update's floor (:meth:`MatmulTimer.floor`). The floor is measured under
    the load the loop meets, through the whole loop; its time is kept apart (``seconds``)."""

    def __init__(self, features, timer, every, batch_size):
        self.features, self.timer, self.every, self.batch_size = features, timer, every, batch_size
        self.crop = np.random.default_rng(0).uniform(0, 255, (1, 224, 224, 3)).astype(np.float32)
        self.calls, self.forward_times, self.update_floors, self.seconds = 0, [], [], 0.0

    def __getattr__(self, name):
        return getattr(self.features, name)

    def describe(self, items):
        descriptors = self.features.describe(items)
        if self.calls % self.every == 0:
            started = time.perf_counter()
            self.features.forward(self.crop)
            self.forward_times.append(time.perf_counter() - started)
            self.update_floors.append(self.timer.floor(self.batch_size, repeats=1)[0])
            self.seconds += time.perf_counter() - started
        self.calls += 1
        return descriptors

    def floor(self):
        """The step's floor from the medians of what was timed: ``{vgg_batch_1_s, update_floor_s, step_s}``."""
        vgg, update = float(np.median(self.forward_times)), float(np.median(self.update_floors))
        return {"vgg_batch_1_s": vgg, "update_floor_s": update, "step_s": vgg + update,
                "samples": len(self.update_floors)}


# ---------------------------------------------------------------------------------------------------------------
# phase 1 (own process): training epochs, then the update and training-speed figures

class TrainingData:
    """The training images: the first ``training_images`` for the epochs, the rest (never cached) for timing."""

    def __init__(self, settings):
        from parse_xml_annotations import class_name, load_records
        self.name = class_name(settings.class_object)
        self.scale = settings.scale_subregion
        records = load_records([settings.path_voc], self.name, "trainval")
        self.epoch_records = records[:settings.training_images]
        self.timing_records = records[settings.training_images:]

    def environment(self, record):
        from episodes import make_environment
        from image_helper import image_path, load_image
        return make_environment(record, self.name, self.scale, load_image(image_path(record.path_voc,
                                                                                     record.image_id)))


class RegionLedger:
    """The training's region descriptor, which also notes the regions (any mask) described so far: a forward for
    a region never described before is one no cache could have saved."""

    def __init__(self, features):
        self.features, self.seen, self.new_region_forwards = features, set(), 0

    def describe(self, items):
        forwards = self.features.forward_count
        descriptors = self.features.describe(items)
        regions = {(image_key[0], tuple(np.round(region, 6))) for image_key, _, region in items}
        if self.features.forward_count > forwards:
            self.new_region_forwards += min(len(regions - self.seen), self.features.forward_count - forwards)
        self.seen |= regions
        return descriptors


def train_epochs(settings, data, features, learner, memory, rng):
    """episodes.train's loop (without checkpoints); returns one row per epoch with its VGG-16 forwards."""
    from episodes import new_training_stats, train_image
    from reinforcement import epsilon_for_epoch
    ledger = RegionLedger(features)
    rows = []
    for epoch in range(settings.training_epochs):
        epsilon = epsilon_for_epoch(epoch)
        stats = new_training_stats()
        forwards, hits, new = features.forward_count, features.cache.hits, ledger.new_region_forwards
        started = time.perf_counter()
        for index in rng.permutation(len(data.epoch_records)):
            train_image(data.environment(data.epoch_records[index]), ledger, learner, memory, rng, epsilon,
                        settings.number_of_steps, stats)
        rows.append({"epoch": epoch, "epsilon": round(epsilon, 3), "searches": stats["searches"],
                     "steps": stats["steps"], "triggers": stats["triggers"], "updates": stats["updates"],
                     "vgg_forwards": features.forward_count - forwards, "cache_hits": features.cache.hits - hits,
                     "new_region_forwards": ledger.new_region_forwards - new,
                     "seconds": round(time.perf_counter() - started, 2)})
        log(f"  epoch {epoch}  eps {epsilon:.1f}  steps {stats['steps']}  vgg forwards {rows[-1]['vgg_forwards']} "
            f"({rows[-1]['new_region_forwards']} of never seen regions)  cache hits {rows[-1]['cache_hits']}")
    return rows


def timed_training_loop(settings, data, backbone, start, make_learner, loop_cache_mb, steps, floor_timer=None):
    """``steps`` agent steps of ``train_image`` from the state ``start`` (weights, full replay memory) on the timing
    images, after a warm-up; returns (measures, learner). With ``floor_timer`` (a :class:`MatmulTimer`) the step's
    floor is timed through the loop (:class:`StepFloorBeside`, every third description) and its time left out."""
    from episodes import train_image
    from features import ImageZoomsFeatures
    from reinforcement import ReplayMemory, build_q_network
    model = build_q_network(STATE_SIZE)
    model.set_weights(start["weights"])
    learner = make_learner(model)
    memory = ReplayMemory(len(start["replay"]["actions"]), STATE_SIZE, fields=learner.carries)
    memory.load_state_dict(start["replay"])
    features = ImageZoomsFeatures(backbone=backbone, cache_mb=loop_cache_mb)
    # warm-up (compilation, tracing: once per run), then back to the common starting point
    learner.warm_up(memory.sample(settings.batch_size, np.random.default_rng(settings.seed + 1)))
    features.describe([(None, np.zeros((8, 8, 3), np.float32), np.array([0.0, 0.0, 8.0, 8.0]))])
    model.set_weights(start["weights"])

    rng = np.random.default_rng(settings.seed)
    stats = StepBudget(steps)
    forwards = features.forward_count
    if floor_timer is not None:
        features = StepFloorBeside(features, floor_timer, every=3, batch_size=settings.batch_size)
    started = time.perf_counter()
    try:
        for record in data.timing_records:
            train_image(data.environment(record), features, learner, memory, rng, start["epsilon"],
                        settings.number_of_steps, stats)
    except BudgetReached:
        pass
    seconds = time.perf_counter() - started
    if stats["updates"] < steps:
        raise RuntimeError(f"{stats['updates']} steps only: too few images after the first {settings.training_images}")
    measured = {"seconds": seconds, "steps": stats["steps"], "vgg_forwards": features.forward_count - forwards,
                "cache_hits": features.cache.hits}
    if floor_timer is not None:
        measured.update(seconds=seconds - features.seconds, floor=features.floor(),
                        vgg_forwards=measured["vgg_forwards"] - len(features.forward_times))
    return measured | {"steps_per_s": measured["steps"] / measured["seconds"]}, learner


def learner_from(settings, start, oracle=False, **options):
    """A ``QLearner`` (with learning ``options``), or with ``oracle`` the ``OracleLearner``, on a fresh Q-network
    holding the weights of ``start`` (its minibatch is the one given to ``update``)."""
    from reinforcement import OracleLearner, QLearner, build_q_network
    model = build_q_network(STATE_SIZE)
    model.set_weights(start["weights"])
    if oracle:
        return OracleLearner(model, settings.gamma, settings.learning_rate)
    return QLearner(model, settings.gamma, settings.learning_rate, **options)


def time_updates(settings, start, batches):
    """``QLearner.update`` on ``batches``, each time right after its floor is measured under the same load
    (:meth:`MatmulTimer.floor`); returns (update seconds, floors in seconds, matrix-multiply rates in FLOP/s)."""
    learner = learner_from(settings, start)
    learner.update(batches[0])                                  # XLA compilation
    timer = MatmulTimer()
    seconds, floors, rates = [], [], []
    for batch in batches:
        for _ in range(settings.update_repeats):
            floor, rate = timer.floor(settings.batch_size)
            floors.append(floor)
            rates.append(rate)
            started = time.perf_counter()
            learner.update(batch)
            seconds.append(time.perf_counter() - started)
    return seconds, floors, rates


# the learning options whose learner differs from the paper's (docs/method.md §9), as learner_from takes them
OPTION_LEARNERS = {"trigger_targets": dict(trigger_targets=True), "expert_margin": dict(expert_margin=0.8),
                   "oracle": dict(oracle=True)}


def option_batch(learner, batch, rng):
    """``batch`` as ``learner`` takes it: with made-up values of the fields its transitions carry (actions for an
    integer field, numbers in [−3, 3] for the others); the values do not change the time."""
    import dataclasses
    from reinforcement import NUM_ACTIONS
    size = len(batch.actions)
    carried = {field.name: (rng.integers(0, NUM_ACTIONS, (size, *field.shape)) if np.issubdtype(field.dtype, np.integer)
                            else rng.uniform(-3, 3, (size, *field.shape))).astype(field.dtype)
               for field in learner.carries}
    return dataclasses.replace(batch, carried=carried)


def time_option_updates(settings, start, batches, names=tuple(OPTION_LEARNERS)):
    """Each option's update (the ``oracle``'s regression step) and the paper's ``QLearner.update``, alternating on
    the same minibatches ``settings.update_repeats`` times each, after a warm-up of both; medians in seconds, and
    the fields the option's transitions carry: ``{name: {"option_s", "paper_s", "carries"}}``."""
    import gc
    rng = np.random.default_rng(2)
    paper = learner_from(settings, start)
    paper.update(batches[0])                                    # XLA compilation
    timings = {}
    for name in names:
        option = learner_from(settings, start, **OPTION_LEARNERS[name])
        option_batches = [option_batch(option, batch, rng) for batch in batches]
        option.update(option_batches[0])                        # its compilation
        times = {"option_s": [], "paper_s": []}
        for batch, extended in zip(batches, option_batches):
            for _ in range(settings.update_repeats):
                started = time.perf_counter()
                paper.update(batch)
                times["paper_s"].append(time.perf_counter() - started)
                started = time.perf_counter()
                option.update(extended)
                times["option_s"].append(time.perf_counter() - started)
        timings[name] = {**{key: float(np.median(values)) for key, values in times.items()},
                         "carries": [field.name for field in option.carries]}
        log(f"  option {name}: update {timings[name]['option_s']:.3f} s, the paper's {timings[name]['paper_s']:.3f} s")
        del option
        gc.collect()
    return timings


def time_carried_fields(settings, data, repeats=3):
    """Seconds per computation of each transition field (``reinforcement.TRANSITION_FIELDS``), which the training
    search makes on every step for a learner that carries it; medians over the timing images and the first regions
    of a random walk: ``{field name: seconds}``."""
    from reinforcement import TRANSITION_FIELDS, TRIGGER
    rng = np.random.default_rng(3)
    times = {name: [] for name in TRANSITION_FIELDS}
    for record in data.timing_records[:8]:
        env = data.environment(record)
        env.start_search()
        for _ in range(3):
            for _ in range(repeats):
                for name, field in TRANSITION_FIELDS.items():
                    started = time.perf_counter()
                    field.compute(env, settings.gamma, settings.number_of_steps)
                    times[name].append(time.perf_counter() - started)
            env.move(int(rng.integers(TRIGGER)))                 # a move (actions 0-4; 5 triggers): one level down
    return {name: float(np.median(values)) for name, values in times.items()}


def time_refine(settings, data, repeats=3):
    """The ``refine`` option's work: keeping one training step's window in the sample (``add_s``, median), the
    head's fit on a full sample once per epoch (``fit_s``) and applying the head per test region
    (``apply_region_s``, a chunk of 32 regions at a time). Descriptors are random (the time does not depend on
    them); windows and objects come from the timing images."""
    import image_zooms_training
    from refinement import SAMPLE_SIZE, SCORE_RATE, ScoreSample, WindowSample, best_objects
    rng = np.random.default_rng(5)
    sample = WindowSample(DESCRIPTOR_SIZE, seed=5)
    adds = []
    for record in data.timing_records[:8]:
        env = data.environment(record)
        env.start_search()
        for _ in range(3):
            window, descriptor = np.asarray(env.region, np.float64), rng.random(DESCRIPTOR_SIZE, np.float32)
            started = time.perf_counter()
            objects, _ = best_objects(window[None], env.boxes)        # what add_search_steps does per step
            sample.add(descriptor, window, env.boxes[objects[0]] if len(env.boxes) else window)
            adds.append(time.perf_counter() - started)
            env.move(int(rng.integers(5)))
    full = WindowSample(DESCRIPTOR_SIZE, capacity=SAMPLE_SIZE, seed=5)
    full.descriptors[:] = rng.random(full.descriptors.shape, np.float32)
    windows = rng.uniform(0, 100, (SAMPLE_SIZE, 2))
    full.windows[:] = np.concatenate([windows, windows + rng.uniform(20, 100, (SAMPLE_SIZE, 2))], axis=1)
    full.boxes[:] = full.windows + rng.uniform(-10, 10, (SAMPLE_SIZE, 4))
    full.seen = SAMPLE_SIZE
    started = time.perf_counter()
    head = full.fit()
    fit_s = time.perf_counter() - started
    chunk = full.descriptors[:32].astype(np.float32)
    applies = []
    for _ in range(repeats * 5):
        started = time.perf_counter()
        head.refine(chunk, full.windows[:32])
        applies.append((time.perf_counter() - started) / 32)
    demo = image_zooms_training.DEMO
    # the score head's, on the same sample: Image-Zooms' score descriptor is the window's beside the box pooled
    scores = ScoreSample(2 * DESCRIPTOR_SIZE, capacity=SAMPLE_SIZE, seed=5)
    scores.descriptors[:] = np.concatenate([full.descriptors, full.descriptors], axis=1)
    for name in ("windows", "boxes"):
        getattr(scores, name)[:] = getattr(full, name)
    scores.seen = SAMPLE_SIZE
    started = time.perf_counter()
    scorer = scores.fit()
    score_fit_s = time.perf_counter() - started
    chunk = np.concatenate([chunk, chunk], axis=1)
    started = time.perf_counter()
    for _ in range(repeats * 5):
        scorer.score(chunk)
    return {"add_s": float(np.median(adds)), "fit_s": fit_s, "apply_region_s": float(np.median(applies)),
            "epoch_steps": demo["max_images"] * settings.number_of_steps, "score_fit_s": score_fit_s,
            "run_steps_per_image": demo["epochs"] * settings.number_of_steps,
            "score_apply_region_s": (time.perf_counter() - started) / (repeats * 5 * 32), "score_rate": SCORE_RATE}


def vgg_batch_1_s(train):
    """A batch-1 VGG-16 forward, as the training-speed measurement timed it through the loop (median of its runs)."""
    return float(np.median([run["floor"]["vgg_batch_1_s"] for run in train["train_project"]["runs"]]))


def step_seconds(train):
    """Seconds per agent step of the project's training loop (the training-speed measurement)."""
    return train["train_project"]["seconds"] / train["train_project"]["steps"]


def option_step_costs(train):
    """Each learning option's added seconds per training step over the seconds of the project's training step: its
    update's over the paper's, plus computing the fields its transitions carry."""
    step_s = step_seconds(train)
    fields = train["carried_fields_s"]
    return {name: (timing["option_s"] - timing["paper_s"] + sum(fields[field] for field in timing["carries"]))
            / step_s for name, timing in train["option_updates"].items()}


def time_overlap(forward, update, repeats):
    """A batch-1 VGG-16 forward and a replay update, one after the other as a training step does them, and at the
    same time in two threads (the most that overlapping them could give: TensorFlow releases the GIL while it
    computes); alternating, after one warm-up of each; seconds, medians of ``repeats``."""
    import threading
    forward()
    update()
    serial, concurrent = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        forward()
        update()
        serial.append(time.perf_counter() - started)
        started = time.perf_counter()
        worker = threading.Thread(target=update)
        worker.start()
        forward()
        worker.join()
        concurrent.append(time.perf_counter() - started)
    return {"serial_s": float(np.median(serial)), "concurrent_s": float(np.median(concurrent)),
            "serial_times_s": serial, "concurrent_times_s": concurrent}


def training_phase(settings, work_dir):
    import image_zooms_training
    from episodes import new_training_stats, train_image
    from runs.runtime import seed_everything
    from reinforcement import QLearner, ReplayMemory, build_q_network, epsilon_for_epoch

    demo = image_zooms_training.DEMO
    seed_everything(settings.seed)
    rng = np.random.default_rng(settings.seed)
    data = TrainingData(settings)

    # training epochs with the demo's settings: VGG-16 forwards per epoch, peak memory
    log(f"training: {len(data.epoch_records)} images, {settings.training_epochs} epochs, demo settings, learning "
        f"rate {settings.epochs_learning_rate:g}, cache {settings.cache_mb} MiB")
    features = image_zooms_training.make_features(SimpleNamespace(path_vgg=settings.path_vgg, cache_mb=settings.cache_mb,
                                                                  vgg_precision="float32"))
    model = build_q_network(STATE_SIZE, seed=settings.seed)
    learner = QLearner(model, settings.gamma, settings.epochs_learning_rate, demo["batch_size"])
    memory = ReplayMemory(demo["buffer_experience_replay"], STATE_SIZE, fields=learner.carries)
    epochs = train_epochs(settings, data, features, learner, memory, rng)
    training_peak = peak_rss_mb()
    cache_used_mb = features.cache.bytes / 2**20
    model.save_weights(Path(work_dir) / "q_network.weights.h5")      # the agent of the test phase
    while not memory.full:                                          # small runs: fill the replay memory first
        record = data.epoch_records[int(rng.integers(len(data.epoch_records)))]
        train_image(data.environment(record), features, learner, memory, rng, 1.0, settings.number_of_steps,
                    new_training_stats())

    # training speed: the project's loop and the 2016 loop from the same state on the same fresh images;
    # the project's twice, before and after the 2016 one, as the machine's load drifts
    start = {"weights": model.get_weights(), "replay": {k: np.copy(v) for k, v in memory.state_dict().items()},
             "epsilon": epsilon_for_epoch(settings.training_epochs)}
    log(f"training speed: {settings.timed_steps} steps of the project's loop (twice), {settings.timed_steps_2016} of "
        f"the 2016 loop, minibatch {settings.batch_size}, replay memory "
        f"{memory.capacity} (full), eps {start['epsilon']:.1f}")
    project_runs = []

    timer = MatmulTimer()

    def project_run():
        measured, _ = timed_training_loop(settings, data, features.backbone, start, lambda network: project_learner(
            network, settings.gamma, settings.learning_rate, settings.batch_size), settings.cache_mb,
            settings.timed_steps, floor_timer=timer)
        measured["over_floor"] = measured["seconds"] / measured["steps"] / measured["floor"]["step_s"]
        log(f"  project: {measured['steps_per_s']:.3f} steps/s, {measured['over_floor']:.2f}x the step's floor "
            f"({measured['floor']['vgg_batch_1_s']:.3f} s VGG-16 + {measured['floor']['update_floor_s']:.3f} s "
            f"update)")
        return measured

    project_runs.append(project_run())
    from runs.runtime import quiet_stderr_descriptor
    with quiet_stderr_descriptor():     # Keras' fit and predict build tf.data pipelines, whose C++ log lines
        baseline, learner_2016 = timed_training_loop(          # ("NodeDef mentions attribute ...") hide the figures
            settings, data, features.backbone, start,
            lambda network: Learner2016(network, settings.gamma, settings.learning_rate, settings.batch_size), 0,
            settings.timed_steps_2016)
    log(f"  2016:    {baseline['steps_per_s']:.4f} steps/s")
    project_runs.append(project_run())
    project_seconds = float(np.mean([run["seconds"] for run in project_runs]))

    # one update: the 2016 updates timed in that loop, against QLearner.update on the same minibatches
    update_seconds, floors, rates = time_updates(settings, start, [batch for batch, _ in learner_2016.updates])
    flops = update_flops(settings.batch_size)
    update_2016 = [seconds for _, seconds in learner_2016.updates]
    log(f"update: 2016 {np.mean(update_2016):.2f} s, project {np.median(update_seconds):.3f} s, floor "
        f"{np.median(floors):.3f} s ({flops / 1e9:.2f} GFLOP at {np.median(rates) / 1e9:.0f} GFLOP/s, Adam "
        f"{adam_bytes() / 1e9:.2f} GB)")

    # a way to a faster step that keeps results: overlap the update with the next forward (same arithmetic, two
    # threads)
    minibatch = learner_2016.updates[0][0]
    overlap_learner = learner_from(settings, start)
    crop = np.random.default_rng(0).uniform(0, 255, (1, 224, 224, 3)).astype(np.float32)
    overlap = time_overlap(lambda: features.forward(crop), lambda: overlap_learner.update(minibatch),
                           settings.update_repeats)
    log(f"overlap: batch-1 VGG-16 forward and update one after the other {overlap['serial_s']:.3f} s, at the same "
        f"time {overlap['concurrent_s']:.3f} s")
    del overlap_learner

    # the learning options' extra work per step, against the paper's update on the same minibatches
    log("learning options: each one's update against the paper's, alternating")
    option_updates = time_option_updates(settings, start, [batch for batch, _ in learner_2016.updates])
    carried_fields = time_carried_fields(settings, data)
    refine = time_refine(settings, data)
    log(f"  refine: {refine['add_s'] * 1e3:.2f} ms per step, head fit {refine['fit_s']:.1f} s per epoch, applying it "
        f"{refine['apply_region_s'] * 1e3:.3f} ms per region")
    log("  carried fields: " + ", ".join(f"{name} {seconds * 1e3:.2f} ms" for name, seconds in carried_fields.items())
        + " per step")
    return {
        "overlap": overlap,
        "option_updates": option_updates, "carried_fields_s": carried_fields, "refine": refine,
        "batch_size": settings.batch_size, "training_epochs": epochs, "training_peak_rss_mb": training_peak,
        "cache_used_mb": cache_used_mb, "replay_memory": memory.capacity,
        "update_2016_s": float(np.mean(update_2016)), "update_2016_times_s": update_2016,
        "update_project_s": float(np.median(update_seconds)), "update_project_times_s": update_seconds,
        "update_gflop": flops / 1e9, "matmul_gflops": [rate / 1e9 for rate in rates],
        "update_floor_s": float(np.median(floors)), "update_floor_times_s": floors, "adam_gb": adam_bytes() / 1e9,
        "update_over_floor": float(np.median([s / floor for s, floor in zip(update_seconds, floors)])),
        "train_project": {"runs": project_runs, "steps": project_runs[0]["steps"], "seconds": project_seconds,
                          "steps_per_s": project_runs[0]["steps"] / project_seconds,
                          "over_floor": float(np.median([run["over_floor"] for run in project_runs]))},
        "train_2016": baseline, "train_epsilon": start["epsilon"],
    }


# ---------------------------------------------------------------------------------------------------------------
# phase 2 (own process): testing

def testing_phase(settings, work_dir):
    import image_zooms_testing
    from episodes import TrainedAgent, make_environment, run_searches
    from runs.runtime import seed_everything
    from image_helper import image_path, load_image
    from parse_xml_annotations import class_name, load_records
    from reinforcement import QLearner, build_q_network

    seed_everything(settings.seed)
    name = class_name(settings.class_object)
    records = load_records([settings.path_voc], name, "test", max_images=settings.test_images)
    features = image_zooms_testing.make_features(SimpleNamespace(      # as the testing script builds them
        path_vgg=settings.path_vgg, cache_mb=image_zooms_testing.cache_mb, vgg_precision="float32"))
    model = build_q_network(STATE_SIZE)
    model.load_weights(Path(work_dir) / "q_network.weights.h5")
    agent = TrainedAgent(QLearner(model))
    # warm-up (tracing) at the batch sizes the test uses
    image = np.zeros((224, 224, 3), np.float32)
    for size in {min(len(records), features.batch_size), len(records) % features.batch_size} - {0}:
        features.describe([(None, image, np.array([0.0, 0.0, 224.0, 224.0]))] * size)
    describer = FloorBeside(features, every=max(1, settings.number_of_steps // settings.floor_repeats))

    log(f"testing: {len(records)} images in lockstep, {settings.number_of_steps} regions each")
    forwards = features.forward_count
    started = time.perf_counter()
    environments = [make_environment(record, name, settings.scale_subregion,
                                     load_image(image_path(record.path_voc, record.image_id))) for record in records]
    trajectories = run_searches(environments, agent, describer, settings.number_of_steps, only_first_object=False)
    seconds = time.perf_counter() - started - describer.floor_seconds
    regions = sum(len(trajectory) for trajectory in trajectories)
    floor = float(np.median(describer.floor_times))
    log(f"  {regions} regions in {seconds:.1f} s; floor {floor:.3f} s per image")
    testing_peak = peak_rss_mb()
    return {"test_images": len(records), "test_regions": regions, "test_seconds": seconds,
            "test_vgg_forwards": features.forward_count - forwards, "test_region_s": seconds / regions,
            "floor_image_s": floor, "floor_times_s": describer.floor_times, "testing_peak_rss_mb": testing_peak,
            "bfloat16": time_precisions(settings, features.backbone),
            "score_boxes": time_pooled_boxes(features, environments[:8], trajectories)}


def time_pooled_boxes(features, environments, trajectories):
    """The score head's descriptors of reported boxes (``features.box_describer``): an image's forward to pool4 and
    pool5 (``map_s``, median over images, after one untimed) and a box pooled from its maps (``box_s``, median)."""
    from features import describe_region
    pooled = features.box_describer
    pooled.feature_maps(environments[0].image)             # tracing
    maps, boxes = [], []
    for env, trajectory in zip(environments, trajectories):
        started = time.perf_counter()
        pool4, pool5 = pooled.feature_maps(env.image)
        maps.append(time.perf_counter() - started)
        for step in trajectory:
            started = time.perf_counter()
            describe_region(pool4, pool5, step["region"])
            boxes.append(time.perf_counter() - started)
    return {"map_s": float(np.median(maps)), "box_s": float(np.median(boxes))}


def time_precisions(settings, backbone):
    """The ``vgg_precision bfloat16`` option: bare VGG-16 forwards in float32 (the test's backbone) and bfloat16 (the
    same weights), alternating, at batch 1 (training) and batch 32 (testing); seconds per image, medians."""
    import tensorflow as tf
    from features import build_vgg16, float32_outputs
    from image_helper import vgg_preprocess
    bfloat16 = build_vgg16(settings.path_vgg, (224, 224, 3), "bfloat16")
    forwards = {"float32": tf.function(float32_outputs(backbone), reduce_retracing=True),    # as features.py does
                "bfloat16": tf.function(float32_outputs(bfloat16), reduce_retracing=True)}
    crops = vgg_preprocess(np.random.default_rng(1).uniform(0, 255, (FLOOR_BATCH, 224, 224, 3)).astype(np.float32))
    timings = {}
    logger, level = tf.get_logger(), tf.get_logger().level
    for batch in (1, FLOOR_BATCH):
        images = tf.constant(crops[:batch])
        times = {precision: [] for precision in forwards}
        logger.setLevel("ERROR")        # each trace is wanted here; TensorFlow's retracing warning would hide the lines
        try:
            for forward in forwards.values():
                forward(images).numpy()                             # tracing
        finally:
            logger.setLevel(level)
        for _ in range(settings.floor_repeats):
            for precision, forward in forwards.items():
                started = time.perf_counter()
                forward(images).numpy()
                times[precision].append((time.perf_counter() - started) / batch)
        timings[f"batch_{batch}"] = {precision: float(np.median(values)) for precision, values in times.items()}
        log(f"  VGG-16 at batch {batch}: float32 {timings[f'batch_{batch}']['float32']:.4f} s, bfloat16 "
            f"{timings[f'batch_{batch}']['bfloat16']:.4f} s per image")
    return timings


# ---------------------------------------------------------------------------------------------------------------
# the report

def machine():
    import importlib.metadata as metadata
    cpu = "unknown"
    if Path("/proc/cpuinfo").is_file():
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    versions = {}
    for package in ("tensorflow", "keras", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "python": platform.python_version(), **versions}


def figures_of(train, test):
    epochs = train["training_epochs"]
    return {
        "update_speedup_vs_2016": train["update_2016_s"] / train["update_project_s"],
        "update_over_floor": train["update_over_floor"],
        "train_speedup_vs_2016": train["train_project"]["steps_per_s"] / train["train_2016"]["steps_per_s"],
        "train_step_over_floor": train["train_project"]["over_floor"],
        "vgg_forwards_later_epoch_ratio": epochs[-1]["vgg_forwards"] / max(epochs[0]["vgg_forwards"], 1),
        "test_region_over_floor": test["test_region_s"] / test["floor_image_s"],
        "overlap_speedup": train["overlap"]["serial_s"] / train["overlap"]["concurrent_s"],
        "training_peak_rss_mb": train["training_peak_rss_mb"],
        "testing_peak_rss_mb": test["testing_peak_rss_mb"],
        **{f"vgg_bfloat16_speedup_{batch}": times["float32"] / times["bfloat16"]
           for batch, times in test["bfloat16"].items()},
        **{f"option_{name}_step_cost": cost for name, cost in option_step_costs(train).items()},
        "option_refine_step_cost": (train["refine"]["add_s"] + train["refine"]["fit_s"]
                                    / train["refine"]["epoch_steps"]) / step_seconds(train),
        "option_refine_region_cost": train["refine"]["apply_region_s"] / test["test_region_s"],
        "option_score_step_cost": (train["refine"]["score_rate"] * test["score_boxes"]["box_s"]
                                   + test["score_boxes"]["map_s"] / train["refine"]["run_steps_per_image"]
                                   + train["refine"]["score_fit_s"] / train["refine"]["epoch_steps"])
        / step_seconds(train),
        "option_score_region_cost": (test["score_boxes"]["map_s"] * test["test_images"] / test["test_regions"]
                                     + test["score_boxes"]["box_s"] + train["refine"]["score_apply_region_s"])
        / test["test_region_s"],
    }


def how_measured(train, test):
    first, last = train["training_epochs"][0], train["training_epochs"][-1]
    project, baseline = train["train_project"], train["train_2016"]
    return {
        "update_speedup_vs_2016": f"2016 update {train['update_2016_s']:.2f} s (mean of "
                                  f"{len(train['update_2016_times_s'])}) / QLearner.update "
                                  f"{train['update_project_s']:.3f} s (median), minibatch {train['batch_size']}",
        "update_over_floor": f"{train['update_project_s']:.3f} s / ({train['update_gflop']:.2f} GFLOP at "
                             f"{np.median(train['matmul_gflops']):.0f} GFLOP/s + Adam's {train['adam_gb']:.2f} GB = "
                             f"{train['update_floor_s']:.3f} s), median of paired ratios",
        "train_speedup_vs_2016": f"{project['steps']} steps in {project['seconds']:.1f} s / {baseline['steps']} "
                                 f"steps in {baseline['seconds']:.1f} s, eps {train['train_epsilon']:.1f}",
        "train_step_over_floor": f"{project['seconds'] / project['steps']:.3f} s per step / (batch-1 VGG-16 "
                                 f"{project['runs'][0]['floor']['vgg_batch_1_s']:.3f} s + update floor "
                                 f"{project['runs'][0]['floor']['update_floor_s']:.3f} s, timed through the loop), median of "
                                 f"{len(project['runs'])} runs of {project['steps']} steps",
        "vgg_forwards_later_epoch_ratio": f"{last['vgg_forwards']} forwards ({last['steps']} steps; "
                                          f"{last['new_region_forwards']} of regions never seen before) in epoch "
                                          f"{last['epoch']}, eps {last['epsilon']} / {first['vgg_forwards']} "
                                          f"({first['steps']} steps) in epoch 0",
        "test_region_over_floor": f"{test['test_region_s']:.3f} s per region ({test['test_regions']} regions, "
                                  f"{test['test_images']} images) / {test['floor_image_s']:.3f} s per image",
        "overlap_speedup": f"batch-1 VGG-16 forward then update {train['overlap']['serial_s']:.3f} s / both at "
                           f"once in two threads {train['overlap']['concurrent_s']:.3f} s, minibatch "
                           f"{train['batch_size']}, medians",
        "training_peak_rss_mb": f"training process after the epochs (replay memory {train['replay_memory']}, cache "
                                f"{train['cache_used_mb']:.0f} MiB used)",
        "testing_peak_rss_mb": "testing process",
        **{f"vgg_bfloat16_speedup_{batch}": f"option vgg_precision bfloat16: VGG-16 forward float32 "
                                            f"{times['float32']:.4f} s / bfloat16 {times['bfloat16']:.4f} s per image"
           for batch, times in test["bfloat16"].items()},
        **option_how(train),
        "option_refine_step_cost": f"keeping a window {train['refine']['add_s'] * 1e3:.2f} ms + head fit "
                                   f"{train['refine']['fit_s']:.1f} s / {train['refine']['epoch_steps']} steps of a "
                                   f"demo epoch, per {step_seconds(train):.3f} s step",
        "option_refine_region_cost": f"head applied {train['refine']['apply_region_s'] * 1e3:.3f} ms per region / "
                                     f"{test['test_region_s']:.3f} s per test region",
        "option_score_step_cost": f"{train['refine']['score_rate']} x box pooled "
                                  f"{test['score_boxes']['box_s'] * 1e3:.2f} ms + image's maps "
                                  f"{test['score_boxes']['map_s']:.3f} s / {train['refine']['run_steps_per_image']} "
                                  f"steps + head fit {train['refine']['score_fit_s']:.1f} s / "
                                  f"{train['refine']['epoch_steps']} steps, per {step_seconds(train):.3f} s step",
        "option_score_region_cost": f"image's maps {test['score_boxes']['map_s']:.3f} s / "
                                    f"{test['test_regions'] / test['test_images']:.1f} regions + box pooled "
                                    f"{test['score_boxes']['box_s'] * 1e3:.2f} ms + head "
                                    f"{train['refine']['score_apply_region_s'] * 1e3:.3f} ms / "
                                    f"{test['test_region_s']:.3f} s per test region",
    }


def option_how(train):
    step_s = step_seconds(train)
    fields = train["carried_fields_s"]
    how = {}
    for name, timing in train["option_updates"].items():
        update = "regression" if name == "oracle" else "update"
        carried = "".join(f" + {field} {fields[field] * 1e3:.2f} ms" for field in timing["carries"])
        how[f"option_{name}_step_cost"] = (f"{update} {timing['option_s']:.3f} s - the paper's update "
                                           f"{timing['paper_s']:.3f} s (x{timing['option_s'] / timing['paper_s']:.2f})"
                                           f"{carried} per {step_s:.3f} s step")
    return how


def print_table(figures, how):
    print(f"\n{'figure':32s} {'value':>9s} {'target':>8s}       how")
    for key, value in figures.items():
        mark, goal = "", ""
        if key in TARGETS:
            operator, bound = TARGETS[key]
            mark = "ok" if (value >= bound if operator == ">=" else value <= bound) else "MISS"
            goal = f"{operator} {bound}"
        print(f"{key:32s} {value:9.3f} {goal:>8s}  {mark:4s} {how[key]}")


def run_phase(phase, argv, work_dir):
    """Run one phase in a child process (its own peak memory); returns what it wrote."""
    command = [sys.executable, str(Path(__file__).resolve()), *argv, "--phase", phase, "--work_dir", str(work_dir)]
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    completed = subprocess.run(command, env=environment)
    if completed.returncode != 0:
        raise SystemExit(f"benchmark phase {phase!r} failed (exit code {completed.returncode})")
    return json.loads((Path(work_dir) / f"{phase}.json").read_text())


def extra_flags(parser):
    import argparse
    parser.add_argument("--quick", action="store_true", help="smaller samples: 3-10 minutes on a 2-core CPU")
    parser.add_argument("--phase", choices=("all", "train", "test"), default="all", help=argparse.SUPPRESS)
    parser.add_argument("--work_dir", default="", help=argparse.SUPPRESS)


def main(argv=None):
    from runs.runtime import write_json
    from settings import configure, script_settings
    from synthetic_dataset import ensure_synthetic_voc

    argv = sys.argv[1:] if argv is None else list(argv)
    defaults = script_settings(globals())
    settings = configure(defaults, argv, __doc__.split("\n\n")[0],
                         extra_flags)
    if settings.quick:
        for name, value in QUICK.items():
            if name not in settings.explicit:
                setattr(settings, name, value)
    if settings.phase != "all":
        phase = training_phase if settings.phase == "train" else testing_phase
        Path(settings.work_dir, f"{settings.phase}.json").write_text(json.dumps(phase(settings, settings.work_dir)))
        return

    started = time.perf_counter()
    ensure_synthetic_voc(settings.path_voc)
    with tempfile.TemporaryDirectory(prefix="benchmark_") as work_dir:
        train = run_phase("train", argv, work_dir)
        test = run_phase("test", argv, work_dir)
    figures = figures_of(train, test)
    how = how_measured(train, test)
    report = {"figures": figures, "targets": {key: f"{op} {bound}" for key, (op, bound) in TARGETS.items()},
              "how": how, "machine": machine(), "command": " ".join(["python experiments/benchmark.py", *argv]),
              "seconds": round(time.perf_counter() - started, 1),
              "settings": {name: getattr(settings, name) for name in defaults} | {"quick": settings.quick},
              "training": train, "testing": test}
    write_json(settings.output, report)
    print_table(figures, how)
    print(f"\n{report['machine']['cpu']}, {report['machine']['cpu_count']} CPUs, TensorFlow "
          f"{report['machine']['tensorflow']}; {report['seconds']:.0f} s; details in {settings.output}")
    print(json.dumps({key: round(value, 3) for key, value in figures.items()}, indent=1))


if __name__ == "__main__":
    from runs.runtime import main_guard
    main_guard(main)
