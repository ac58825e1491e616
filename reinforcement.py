"""The zoom environment and deep Q-learning (method.md §3, §4, §6).

Box format everywhere in this module: float numpy ``[x0, y0, x1, y1]`` (half-open corners, pixels of the
original image). The paper's ``(x, y, w, h)`` regions are the same boxes with ``w = x1 - x0``, ``h = y1 - y0``.

Actions are 0-based here: 0 up-left, 1 up-right, 2 down-left, 3 down-right, 4 centre, 5 trigger
(the paper's actions 1–6). What a researcher changes is defined once here and read by everything else: the action
set (:data:`MOVES`), the rewards (:func:`movement_reward`, :func:`trigger_reward`) and the Q-network
(:func:`build_q_network`); the descriptor's size comes from the backbone (``features.py``).
"""
import dataclasses
from typing import Callable

import numpy as np

from image_helper import paint_mean, round_box
from metrics import iou_many

# the action set: each movement's sub-window as its offset from the parent's top-left corner, in units of the room
# the parent leaves it, ((1 − s)·w, (1 − s)·h) (method.md §3); the trigger comes after the movements
MOVES = {"up-left": (0.0, 0.0), "up-right": (1.0, 0.0), "down-left": (0.0, 1.0), "down-right": (1.0, 1.0),
         "centre": (0.5, 0.5)}
ACTION_NAMES = (*MOVES, "trigger")
ACTION_SHORT_NAMES = tuple("".join(word[0].upper() for word in name.split("-")) for name in ACTION_NAMES)  # UL … T
NUM_ACTIONS = len(ACTION_NAMES)
TRIGGER = NUM_ACTIONS - 1
HISTORY_ACTIONS = 4
HISTORY_SIZE = HISTORY_ACTIONS * NUM_ACTIONS        # 24
HIDDEN_UNITS = 1024         # the paper's; tests of the plumbing patch a smaller one (tests/conftest.py)

MOVE_REWARD = 1.0
TRIGGER_REWARD = 3.0        # eta
IOU_THRESHOLD = 0.5         # tau
UNAVAILABLE_COVERAGE = 0.6  # an object covered more than this by painted area is no longer searched for


# ---------------------------------------------------------------------------------------------------------------
# hierarchy

def state_size(descriptor_size):
    """The Q-network's input: a region's descriptor followed by the action history."""
    return int(descriptor_size) + HISTORY_SIZE


def child_regions(region, scale):
    """The children of ``region`` ``[x0, y0, x1, y1]`` for sub-region scale ``scale`` (0 < s < 1), one per movement.

    Returns a (len(MOVES), 4) array in action order (the paper's: up-left, up-right, down-left, down-right, centre).
    Every child has size ``(s*w, s*h)``; offsets follow :data:`MOVES` (the centre uses each axis' own size: 2016
    defect 2).
    """
    x0, y0, x1, y1 = (float(v) for v in region)
    width, height = x1 - x0, y1 - y0
    child_w, child_h = scale * width, scale * height
    offsets = np.array(list(MOVES.values())) * [width - child_w, height - child_h]    # (1 - s) * w, (1 - s) * h
    corners = np.array([x0, y0]) + offsets
    return np.concatenate([corners, corners + [child_w, child_h]], axis=1)


def update_history(history, action):
    """Push the one-hot code of ``action`` into the 24-value history (oldest first; the oldest drops out).

    Returns a new float32 array; fixes 2016 defects 4 (all six entries written, shift by a whole action).
    """
    return np.concatenate([history[NUM_ACTIONS:], np.eye(NUM_ACTIONS)[action]], dtype=np.float32)


def epsilon_for_epoch(epoch, epsilon=1.0, decay=0.1, floor=0.1):
    """ε-greedy schedule: ``epsilon`` in epoch 0, minus ``decay`` per finished epoch, never below ``floor``.

    Depends on the epoch alone, so a run resumed at epoch n gets the same ε as an uninterrupted one (defect 7).
    """
    return max(floor, epsilon - decay * epoch)


def movement_reward(previous_iou, new_iou):
    """+1 if the IoU with the target rose, else −1."""
    return MOVE_REWARD if new_iou > previous_iou else -MOVE_REWARD


def trigger_reward(current_iou):
    """+η if the triggered region covers the target with IoU ≥ τ, else −η."""
    return TRIGGER_REWARD if current_iou >= IOU_THRESHOLD else -TRIGGER_REWARD


# ---------------------------------------------------------------------------------------------------------------
# environment

class ZoomEnvironment:
    """The searches on one image: its target-class objects, what has been painted, which objects are available.

    ``boxes`` are the target-class ground-truth boxes (may be empty at test time with no annotations). The painted
    area is kept as a pixel mask, so "covered more than 60% by painted area" is exact for any union of boxes.
    ``image`` (float32 RGB) is optional: baselines run on annotation sizes alone.
    """

    def __init__(self, width, height, boxes, scale, image=None, image_id=""):
        self.width, self.height = int(width), int(height)
        self.boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
        self.scale, self.image, self.image_id = float(scale), image, image_id
        self.available = np.ones(len(self.boxes), dtype=bool)
        self.painted = np.zeros((self.height, self.width), dtype=bool)
        self.painted_boxes = []        # whole-pixel boxes painted so far, in order: with the id, keys the pixels
        self.region = self.whole_image()
        self.history = np.zeros(HISTORY_SIZE, dtype=np.float32)
        self.previous_ious = np.zeros(len(self.boxes))

    # -- geometry ----------------------------------------------------------------------------------------------
    def whole_image(self):
        return np.array([0.0, 0.0, float(self.width), float(self.height)])

    def ious(self, region):
        """IoU of ``region`` with every target-class object (unavailable ones included)."""
        return iou_many(self.boxes, region)

    def target(self, region):
        """(index, IoU) of the available object with the highest IoU with ``region``; (-1, 0.0) if none."""
        if not self.available.any():
            return -1, 0.0
        ious = np.where(self.available, self.ious(region), -1.0)
        index = int(np.argmax(ious))
        return index, float(ious[index])

    @property
    def image_key(self):
        """Identifies the pixels the agent sees: the image and the boxes painted on it (a counter would not do:
        the first mask of a later epoch may cover another object)."""
        return (self.image_id, tuple(self.painted_boxes))

    # -- searches ----------------------------------------------------------------------------------------------
    def start_search(self):
        """A new search from the whole image with an empty history."""
        self.region = self.whole_image()
        self.history = np.zeros(HISTORY_SIZE, dtype=np.float32)
        self.previous_ious = self.ious(self.region)

    def step(self, action):
        """Take ``action`` in training; returns ``(reward, done, target_iou)``.

        Movement: the target is chosen afresh on the new region (highest IoU among available objects) and the
        reward compares its IoU with the one the same object had at the previous step. Trigger: ±η by the
        current region's IoU with its target; a found object (IoU ≥ τ) is painted and becomes unavailable.
        """
        if action == TRIGGER:
            index, new_iou = self.target(self.region)
            reward = trigger_reward(new_iou)
            if index >= 0 and new_iou >= IOU_THRESHOLD:
                self.paint(self.boxes[index], found=index)
        else:
            new_region = child_regions(self.region, self.scale)[action]
            reward, new_iou = self.move_reward(new_region), self.target(new_region)[1]
            self.region, self.previous_ious = new_region, self.ious(new_region)
        self.history = update_history(self.history, action)
        return reward, bool(action == TRIGGER), new_iou

    def move_reward(self, new_region):
        """The reward of moving to ``new_region`` now: its target is chosen afresh there and compared with the IoU
        the same object has with the current region (−1 when no object is available)."""
        index, new_iou = self.target(new_region)
        return movement_reward(self.previous_ious[index], new_iou) if index >= 0 else -MOVE_REWARD

    def move(self, action):
        """Take ``action`` with no reward (testing): a movement changes the region, the trigger leaves it."""
        if action != TRIGGER:
            self.region = child_regions(self.region, self.scale)[action]
        self.history = update_history(self.history, action)

    def paint(self, box, found=-1):
        """Paint ``box`` with the mean colour in the image the next searches see, and update availability.

        ``found`` is an object known to be found (training: the triggered target) and becomes unavailable
        whatever the coverage; every object covered more than 60% by the painted area becomes unavailable too.
        """
        x0, y0, x1, y1 = round_box(box, self.width, self.height)
        self.painted[y0:y1, x0:x1] = True
        self.painted_boxes.append((x0, y0, x1, y1))
        if self.image is not None:
            self.image = paint_mean(self.image, box)
        if found >= 0:
            self.available[found] = False
        covered = [self.painted[y0:y1, x0:x1].mean()
                   for x0, y0, x1, y1 in (round_box(object_box, self.width, self.height) for object_box in self.boxes)]
        self.available &= ~(np.array(covered) > UNAVAILABLE_COVERAGE)


# ---------------------------------------------------------------------------------------------------------------
# the upper bound's returns (what the oracle and expert_margin learn from)

def upper_bound_action(env, region):
    """The upper-bound policy (docs/method.md §7) in ``region`` with ``env``'s available objects: the child with the
    highest IoU with its target when that improves on the region's, else the trigger. Returns ``(action, the
    region's IoU with its target)``. Annotations only."""
    current = env.target(region)[1]
    child_ious = [env.target(child)[1] for child in child_regions(region, env.scale)]
    best = int(np.argmax(child_ious))
    return (best if child_ious[best] > current else TRIGGER), current


def upper_bound_return(env, region, gamma, steps):
    """The discounted return of the upper-bound policy (:func:`upper_bound_action`) from ``region`` for at most
    ``steps`` steps, rewards as ``ZoomEnvironment.step`` gives them."""
    total, discount = 0.0, 1.0
    ious = env.ious(region)
    for _ in range(steps):
        action, current = upper_bound_action(env, region)
        if action == TRIGGER:
            return total + discount * trigger_reward(current)
        child = child_regions(region, env.scale)[action]
        index, best_iou = env.target(child)
        total += discount * movement_reward(ious[index], best_iou)
        region, ious = child, env.ious(child)
        discount *= gamma
    return total


def upper_bound_q_values(env, gamma, steps):
    """Q-values of ``env``'s current region when every action is followed by the upper-bound policy: the
    trigger's reward, and each move's reward plus γ times the upper bound's return from that child (``steps`` − 1
    steps). What the ``oracle`` diagnostic regresses Q(s) to (supervised, not Q-learning)."""
    q_values = np.empty(NUM_ACTIONS, dtype=np.float32)
    q_values[TRIGGER] = trigger_reward(env.target(env.region)[1])
    for action, child in enumerate(child_regions(env.region, env.scale)):
        q_values[action] = env.move_reward(child) + gamma * upper_bound_return(env, child, gamma, steps - 1)
    return q_values


# ---------------------------------------------------------------------------------------------------------------
# the Q-network

def build_q_network(state_size, seed=None):
    """The paper's Q-network: state (25,112 with VGG-16) → 1024 → 1024 → 6, ReLU, dropout 0.2, N(0, 0.01) weights,
    zero biases (``HIDDEN_UNITS`` wide).

    Any Keras model from ``state_size`` inputs to ``NUM_ACTIONS`` outputs may replace it: training, resume, testing,
    ``detect()`` and the weights loader build it here. Not compiled: the loss (MSE) and the optimiser (Adam) live in
    ``QLearner``, so a weights checkpoint holds the network alone and the optimiser state goes into the resume state.
    """
    import keras
    from keras import layers

    def init(offset):
        return keras.initializers.RandomNormal(mean=0.0, stddev=0.01, seed=None if seed is None else seed + offset)

    return keras.Sequential([
        keras.Input(shape=(state_size,)),
        layers.Dense(HIDDEN_UNITS, activation="relu", kernel_initializer=init(0), bias_initializer="zeros"),
        layers.Dropout(0.2, seed=seed),
        layers.Dense(HIDDEN_UNITS, activation="relu", kernel_initializer=init(1), bias_initializer="zeros"),
        layers.Dropout(0.2, seed=None if seed is None else seed + 1),
        layers.Dense(NUM_ACTIONS, activation="linear", kernel_initializer=init(2), bias_initializer="zeros"),
    ], name="q_network")


# ---------------------------------------------------------------------------------------------------------------
# what a transition carries, the replay memory and its minibatches

@dataclasses.dataclass(frozen=True)
class TransitionField:
    """Something a learning option stores with each transition beyond ``(s, a, r, s′, terminal)``, computed from the
    annotations in state s before the step: its replay-memory array (``dtype``, per-transition ``shape``, ``empty``
    where not filled) and ``compute(env, gamma, number_of_steps)``. A learner lists the fields it needs in
    ``carries``; the training search stores them and the minibatch returns them under ``name``."""

    name: str
    dtype: type
    shape: tuple
    empty: float
    compute: Callable


# trigger_targets: the reward a trigger would get in s (±η by its IoU), whatever the action taken
TRIGGER_VALUE = TransitionField("trigger_values", np.float32, (), 0.0,
                                lambda env, gamma, number_of_steps: trigger_reward(env.target(env.region)[1]))
# expert_margin: the upper-bound agent's action in s (the demonstrator of DQfD's margin loss)
EXPERT_ACTION = TransitionField("expert_actions", np.int32, (), -1,
                                lambda env, gamma, steps: int(np.argmax(upper_bound_q_values(env, gamma, steps))))
# oracle: the upper bound's Q-values in s (the diagnostic's regression values)
UPPER_BOUND_VALUES = TransitionField("upper_bound_values", np.float32, (NUM_ACTIONS,), 0.0, upper_bound_q_values)
TRANSITION_FIELDS = {field.name: field for field in (TRIGGER_VALUE, EXPERT_ACTION, UPPER_BOUND_VALUES)}
# the names the replay arrays had in resume states written before the fields were named
FORMER_FIELD_NAMES = {"trigger_targets": "trigger_values", "targets": "upper_bound_values"}


@dataclasses.dataclass
class Minibatch:
    """A replay minibatch as a named record (Stable-Baselines3's ``ReplayBufferSamples``): the transitions, and
    ``carried``, the arrays of the :class:`TransitionField` s the memory stores (by name; empty for the paper's)."""

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_states: np.ndarray
    terminals: np.ndarray
    carried: dict = dataclasses.field(default_factory=dict)


class ReplayMemory:
    """Transitions ``(s, a, r, s′, terminal)``, and the ``fields`` a learner needs stored with them, in arrays
    allocated once and used as a ring (``pos``, ``full``)."""

    CORE = ("states", "actions", "rewards", "next_states", "terminals")

    def __init__(self, capacity, state_size, fields=()):
        self.capacity = int(capacity)
        self.states = np.zeros((self.capacity, state_size), dtype=np.float32)
        self.next_states = np.zeros((self.capacity, state_size), dtype=np.float32)
        self.actions = np.zeros(self.capacity, dtype=np.int32)
        self.rewards = np.zeros(self.capacity, dtype=np.float32)
        self.terminals = np.zeros(self.capacity, dtype=np.float32)
        self.fields = tuple(fields)
        self.carried = {field.name: np.full((self.capacity, *field.shape), field.empty, dtype=field.dtype)
                        for field in self.fields}
        self.pos, self.full = 0, False

    def __len__(self):
        return self.capacity if self.full else self.pos

    def add(self, state, action, reward, next_state, terminal, carried=None):
        """Store a transition with the values of the memory's fields in ``state`` (``carried``, by name)."""
        for name, value in zip(self.CORE, (state, action, reward, next_state, float(terminal))):
            getattr(self, name)[self.pos] = value
        for name, array in self.carried.items():
            array[self.pos] = carried[name]
        self.pos = (self.pos + 1) % self.capacity
        self.full = self.full or self.pos == 0

    def sample(self, batch_size, rng):
        """A uniformly random :class:`Minibatch`, drawn without replacement."""
        indices = rng.choice(len(self), size=batch_size, replace=False)
        return Minibatch(*(getattr(self, name)[indices] for name in self.CORE),
                         {name: array[indices] for name, array in self.carried.items()})

    # checkpointing: the arrays and the ring position
    def state_dict(self):
        return {**{name: getattr(self, name) for name in self.CORE}, **self.carried,
                "pos": np.array(self.pos), "full": np.array(self.full)}

    def lacking(self, arrays):
        """The fields of this memory that the arrays of a :meth:`state_dict` lack, or hold empty for a stored
        transition: a memory saved with other learning options, which cannot fill a minibatch of this one."""
        arrays = {FORMER_FIELD_NAMES.get(name, name): array for name, array in arrays.items()}
        stored = len(arrays["actions"]) if bool(arrays["full"]) else int(arrays["pos"])
        return [field.name for field in self.fields if field.name not in arrays or np.any(np.all(
            arrays[field.name][:stored] == field.empty, axis=tuple(range(1, 1 + len(field.shape)))))]

    def load_state_dict(self, arrays):
        """Arrays from :meth:`state_dict` (or an earlier version's, under their former names); a field the
        arrays lack stays empty."""
        arrays = {FORMER_FIELD_NAMES.get(name, name): array for name, array in arrays.items()}
        for name in self.CORE:
            getattr(self, name)[...] = arrays[name]
        for field in self.fields:
            self.carried[field.name][...] = arrays.get(field.name, field.empty)
        self.pos, self.full = int(arrays["pos"]), bool(arrays["full"])


# ---------------------------------------------------------------------------------------------------------------
# Q-learning

def regression_values(q_states, q_next_states, actions, rewards, terminals, gamma, trigger_values=None):
    """What Q(s) is regressed to: ``y = Q(s)`` with ``y[a] = r`` if terminal else ``r + γ·V(s′)``.

    ``V(s′) = max Q(s′)`` over ``q_next_states`` (the paper's).
    ``trigger_values`` (the ``trigger_targets`` option): ``y[trigger]`` is the reward a trigger would get in s,
    whatever the action taken (where the trigger was taken that is its value anyway: the trigger ends the search
    with that reward). Works on NumPy arrays and on tensors alike (keras.ops), so the compiled update and the
    tests share it.
    """
    from keras import ops
    bootstrap = rewards + gamma * (1.0 - terminals) * ops.max(q_next_states, axis=1)
    chosen = ops.one_hot(actions, NUM_ACTIONS, dtype=q_states.dtype)
    values = q_states * (1.0 - chosen) + chosen * ops.expand_dims(bootstrap, 1)
    if trigger_values is None:
        return values
    trigger = np.eye(NUM_ACTIONS, dtype=np.float32)[TRIGGER]          # broadcasts over the minibatch
    return values * (1.0 - trigger) + trigger * ops.expand_dims(ops.cast(trigger_values, q_states.dtype), 1)


def margin_loss(q_values, expert_actions, margin):
    """The large-margin loss of deep Q-learning from demonstrations (DQfD; Hester et al., AAAI 2018), averaged
    over the minibatch: ``max_a [Q(s, a) + margin · (a ≠ a_E)] − Q(s, a_E)``, zero where the expert's action
    a_E already leads every other by at least ``margin``. The ``expert_margin`` option adds it to Q-learning's
    loss with a_E the upper-bound agent's action in s. Works on NumPy arrays and on tensors alike (keras.ops)."""
    from keras import ops
    expert = ops.one_hot(expert_actions, NUM_ACTIONS, dtype=q_values.dtype)
    lead = ops.max(q_values + margin * (1.0 - expert), axis=1) - ops.sum(q_values * expert, axis=1)
    return ops.mean(lead)


class QNetworkPolicy:
    """Q-values of a Q-network in inference mode (training, testing and ``detect()`` all ask this): what
    ``episodes.TrainedAgent`` needs, without an optimiser."""

    def __init__(self, model):
        self.model = model

    def q_values(self, states):
        """Q-values of a batch of states, inference mode."""
        return np.asarray(self.model(np.asarray(states, dtype=np.float32), training=False))


class NonFiniteLoss(ArithmeticError):
    """A Q-learning update gave a NaN or infinite loss: the network is broken from here on, training must stop."""

    def __init__(self, loss, update):
        super().__init__(f"the loss became {loss} at update {update}")
        self.loss, self.update = loss, update


class QLearner(QNetworkPolicy):
    """One gradient step on a replay :class:`Minibatch` (:meth:`_update_graph`): Q(s) and Q(s′) in inference mode
    give the regression values (constants), then one MSE step with Adam in training mode, for any Q-network.
    ``batch_size``: the minibatch it learns from.

    Learning options, all off by default (the paper's method; docs/method.md §9): ``trigger_targets``: every
    sampled state's trigger output is also regressed to the reward a trigger would get there (the transitions
    carry :data:`TRIGGER_VALUE`); ``expert_margin`` m > 0: DQfD's large-margin loss (:func:`margin_loss`) towards
    the upper-bound agent's action in each sampled state is added to the loss (they carry :data:`EXPERT_ACTION`).
    """

    def __init__(self, model, gamma=0.9, learning_rate=1e-6, batch_size=100, trigger_targets=False,
                 expert_margin=0.0):
        import keras
        import tensorflow as tf
        if expert_margin < 0:
            raise ValueError(f"expert_margin cannot be negative, got {expert_margin}")
        self.model, self.gamma, self.batch_size = model, float(gamma), int(batch_size)
        self.trigger_targets, self.expert_margin = bool(trigger_targets), float(expert_margin)
        self.carries = (TRIGGER_VALUE,) * self.trigger_targets + (EXPERT_ACTION,) * (self.expert_margin > 0)
        self.optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
        self.optimizer.build(model.trainable_variables)
        self._update = tf.function(self._update_graph, jit_compile=True, reduce_retracing=True)  # XLA: ~1.5x faster

    @property
    def options(self):
        """The learning options in use (empty: the paper's update)."""
        options = {"trigger_targets": int(self.trigger_targets), "expert_margin": self.expert_margin}
        return {name: value for name, value in options.items() if value}

    def act(self, state, carried):
        """The greedy action in ``state`` and the Q-values it was chosen by."""
        values = self.q_values(state[None])[0]
        return int(np.argmax(values)), values

    def _update_graph(self, states, actions, rewards, next_states, terminals, trigger_values=None,
                      expert_actions=None):
        """One Q-learning step (compiled by XLA): the regression values from Q(s) and Q(s′) in inference mode,
        then the loss of Q(s) in training mode (dropout) against them, and one Adam step."""
        import tensorflow as tf
        q_states = self.model(states, training=False)
        q_next = self.model(next_states, training=False)
        values = tf.stop_gradient(regression_values(q_states, q_next, actions, rewards, terminals, self.gamma,
                                                    trigger_values))
        with tf.GradientTape() as tape:
            q_training = self.model(states, training=True)
            loss = tf.reduce_mean(tf.square(values - q_training))
            loss += self._added_loss(q_training, expert_actions)
        variables = self.model.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    def _added_loss(self, q_states, expert_actions):
        """What the options add to Q-learning's loss: ``expert_margin``'s margin loss (0.0 without it)."""
        return 0.0 if expert_actions is None else margin_loss(q_states, expert_actions, self.expert_margin)

    def _carried(self, batch):
        """The minibatch's arrays of this learner's fields, or a ValueError naming what is missing."""
        missing = [field.name for field in self.carries if field.name not in batch.carried]
        if missing:
            raise ValueError(f"this learner's options need minibatches with {', '.join(missing)} (a replay memory "
                             f"built with fields=learner.carries)")
        trigger_values = np.asarray(batch.carried["trigger_values"], np.float32) if self.trigger_targets else None
        expert_actions = np.asarray(batch.carried["expert_actions"], np.int32) if self.expert_margin else None
        if expert_actions is not None and (expert_actions < 0).any():
            raise ValueError("a minibatch for expert_margin holds transitions stored without the expert's action")
        return trigger_values, expert_actions

    def update(self, batch):
        """One gradient step on a :class:`Minibatch`; returns the loss as a float."""
        carried = self._carried(batch)         # (trigger_values, expert_actions), or a ValueError before any change
        return float(self._update(batch.states, batch.actions.astype(np.int32), batch.rewards.astype(np.float32),
                                  batch.next_states, batch.terminals.astype(np.float32), *carried))


class OracleLearner(QLearner):
    """The ``oracle`` diagnostic, not Q-learning: the agent acts like the upper bound where it would act greedily,
    and Q(s) is regressed to the upper bound's Q-values in s (:func:`upper_bound_q_values`) for all six actions
    (MSE, the same optimiser). What it reaches is the ceiling of the network and features (docs/learning.md)."""

    def __init__(self, model, gamma=0.9, learning_rate=1e-6, batch_size=100):
        super().__init__(model, gamma, learning_rate, batch_size)
        import tensorflow as tf
        self.carries = (UPPER_BOUND_VALUES,)

        def graph(states, values):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(values - self.model(states, training=True)))
            variables = self.model.trainable_variables
            self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss
        self._regress = tf.function(graph, jit_compile=True, reduce_retracing=True)

    @property
    def options(self):
        return {"oracle": 1}

    def act(self, state, carried):
        """The upper bound's action (its Q-values are carried with the transition)."""
        return int(np.argmax(carried["upper_bound_values"])), None

    def update(self, batch):
        values = batch.carried.get("upper_bound_values")
        if values is None:
            raise ValueError("the oracle needs minibatches with upper_bound_values (fields=learner.carries)")
        return float(self._regress(batch.states, np.asarray(values, np.float32)))
