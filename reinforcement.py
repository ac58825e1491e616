"""The zoom environment and deep Q-learning (method.md §3, §4, §6).

Box format everywhere in this module: float numpy ``[x0, y0, x1, y1]`` (half-open corners, pixels of the
original image). The paper's ``(x, y, w, h)`` regions are the same boxes with ``w = x1 - x0``, ``h = y1 - y0``.

Actions are 0-based here: 0 up-left, 1 up-right, 2 down-left, 3 down-right, 4 centre, 5 trigger
(the paper's actions 1–6).
"""
from __future__ import annotations

import numpy as np

from image_helper import paint_mean, round_box
from metrics import iou_many

NUM_ACTIONS = 6
TRIGGER = 5
ACTION_NAMES = ("up-left", "up-right", "down-left", "down-right", "centre", "trigger")
HISTORY_ACTIONS = 4
HISTORY_SIZE = HISTORY_ACTIONS * NUM_ACTIONS        # 24
DESCRIPTOR_SIZE = 7 * 7 * 512                        # 25,088
STATE_SIZE = DESCRIPTOR_SIZE + HISTORY_SIZE          # 25,112
HIDDEN_UNITS = 1024         # the paper's; tests of the plumbing patch a smaller one (tests/conftest.py)

MOVE_REWARD = 1.0
TRIGGER_REWARD = 3.0        # eta
IOU_THRESHOLD = 0.5         # tau
UNAVAILABLE_COVERAGE = 0.6  # an object covered more than this by painted area is no longer searched for


# ---------------------------------------------------------------------------------------------------------------
# hierarchy

def child_regions(region, scale):
    """The five children of ``region`` ``[x0, y0, x1, y1]`` for sub-region scale ``scale`` (0 < s < 1).

    Returns a (5, 4) array in action order: up-left, up-right, down-left, down-right, centre. Every child has
    size ``(s*w, s*h)``; offsets follow method.md §3 (the centre uses each axis' own size: 2016 defect 2).
    """
    x0, y0, x1, y1 = (float(v) for v in region)
    width, height = x1 - x0, y1 - y0
    child_w, child_h = scale * width, scale * height
    free_w, free_h = width - child_w, height - child_h       # (1 - s) * w, (1 - s) * h
    offsets = np.array([[0.0, 0.0], [free_w, 0.0], [0.0, free_h], [free_w, free_h], [free_w / 2, free_h / 2]])
    children = np.empty((5, 4))
    children[:, 0] = x0 + offsets[:, 0]
    children[:, 1] = y0 + offsets[:, 1]
    children[:, 2] = children[:, 0] + child_w
    children[:, 3] = children[:, 1] + child_h
    return children


def apply_action(region, action, scale):
    """The region after ``action``: a child for a movement, the same region for the trigger."""
    if action == TRIGGER:
        return np.asarray(region, dtype=float).copy()
    return child_regions(region, scale)[action]


def update_history(history, action):
    """Push the one-hot code of ``action`` into the 24-value history (oldest first; the oldest drops out).

    Returns a new float32 array; fixes 2016 defects 4 (all six entries written, shift by a whole action).
    """
    updated = np.empty(HISTORY_SIZE, dtype=np.float32)
    updated[:-NUM_ACTIONS] = history[NUM_ACTIONS:]
    updated[-NUM_ACTIONS:] = 0.0
    updated[HISTORY_SIZE - NUM_ACTIONS + action] = 1.0
    return updated


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
        self.scale = float(scale)
        self.image = image
        self.image_id = image_id
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
        if len(self.boxes) == 0:
            return np.zeros(0)
        return iou_many(self.boxes, region)

    def target(self, region):
        """(index, IoU) of the available object with the highest IoU with ``region``; (-1, 0.0) if none."""
        if not self.available.any():
            return -1, 0.0
        ious = np.where(self.available, self.ious(region), -1.0)
        index = int(np.argmax(ious))
        return index, float(ious[index])

    @property
    def mask_version(self):
        return len(self.painted_boxes)

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
            index, current_iou = self.target(self.region)
            reward = trigger_reward(current_iou)
            if index >= 0 and current_iou >= IOU_THRESHOLD:
                self.paint(self.boxes[index], found=index)
            self.history = update_history(self.history, action)
            return reward, True, current_iou
        new_region = child_regions(self.region, self.scale)[action]
        new_ious = self.ious(new_region)
        new_iou = self.target(new_region)[1]
        reward = self.move_reward(new_region)
        self.region = new_region
        self.previous_ious = new_ious
        self.history = update_history(self.history, action)
        return reward, False, new_iou

    def move_reward(self, new_region):
        """The reward of moving to ``new_region`` now: its target is chosen afresh there and compared with the IoU
        the same object has with the current region (−1 when no object is available)."""
        index, new_iou = self.target(new_region)
        return movement_reward(self.previous_ious[index], new_iou) if index >= 0 else -MOVE_REWARD

    def rewarding_actions(self):
        """The actions ``step`` would reward now: the moves that raise the IoU with their target, and the trigger
        when the region covers its target at IoU ≥ τ (the annotation-guided exploration of Caicedo & Lazebnik
        2015 draws its random actions from these)."""
        actions = [action for action, child in enumerate(child_regions(self.region, self.scale))
                   if self.move_reward(child) > 0]
        if self.target(self.region)[1] >= IOU_THRESHOLD:
            actions.append(TRIGGER)
        return actions

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
        for index, object_box in enumerate(self.boxes):
            bx0, by0, bx1, by1 = round_box(object_box, self.width, self.height)
            covered = self.painted[by0:by1, bx0:bx1].mean()
            if covered > UNAVAILABLE_COVERAGE:
                self.available[index] = False


# ---------------------------------------------------------------------------------------------------------------
# the upper bound's returns (the oracle ceiling's targets)

def upper_bound_return(env, region, gamma, steps):
    """The discounted return of the upper-bound policy (docs/method.md §7) from ``region`` for at most ``steps``
    steps, with ``env``'s available objects: it moves to the child with the highest IoU while that improves on
    the region, then triggers; rewards as ``ZoomEnvironment.step`` gives them. Annotations only."""
    total, discount = 0.0, 1.0
    ious = env.ious(region)
    for _ in range(steps):
        current = env.target(region)[1]
        children = child_regions(region, env.scale)
        targets = [env.target(child) for child in children]
        best = int(np.argmax([iou for _, iou in targets]))
        index, best_iou = targets[best]
        if best_iou <= current:
            return total + discount * trigger_reward(current)
        total += discount * movement_reward(ious[index], best_iou)
        region, ious = children[best], env.ious(children[best])
        discount *= gamma
    return total


def upper_bound_q_values(env, gamma, steps):
    """Q-values of ``env``'s current region when every action is followed by the upper-bound policy: the
    trigger's reward, and each move's reward plus γ times the upper bound's return from that child (``steps`` − 1
    steps). The regression targets of the ``oracle`` diagnostic (supervised, not Q-learning)."""
    q_values = np.empty(NUM_ACTIONS, dtype=np.float32)
    q_values[TRIGGER] = trigger_reward(env.target(env.region)[1])
    for action, child in enumerate(child_regions(env.region, env.scale)):
        q_values[action] = env.move_reward(child) + gamma * upper_bound_return(env, child, gamma, steps - 1)
    return q_values


# ---------------------------------------------------------------------------------------------------------------
# Q-network and learning

def build_q_network(seed=None):
    """The paper's Q-network: 25,112 → 1024 → 1024 → 6, ReLU, dropout 0.2, N(0, 0.01) weights, zero biases
    (``HIDDEN_UNITS`` wide).

    Not compiled: the loss (MSE) and the optimiser (Adam) live in ``QLearner``, so a weights checkpoint holds the
    network alone and the optimiser state goes into the resume state.
    """
    import keras
    from keras import layers

    def init(offset):
        return keras.initializers.RandomNormal(mean=0.0, stddev=0.01, seed=None if seed is None else seed + offset)

    model = keras.Sequential(
        [
            keras.Input(shape=(STATE_SIZE,)),
            layers.Dense(HIDDEN_UNITS, activation="relu", kernel_initializer=init(0), bias_initializer="zeros"),
            layers.Dropout(0.2, seed=seed),
            layers.Dense(HIDDEN_UNITS, activation="relu", kernel_initializer=init(1), bias_initializer="zeros"),
            layers.Dropout(0.2, seed=None if seed is None else seed + 1),
            layers.Dense(NUM_ACTIONS, activation="linear", kernel_initializer=init(2), bias_initializer="zeros"),
        ],
        name="q_network",
    )
    return model


class ReplayMemory:
    """Transitions ``(s, a, r, s′, terminal)`` in arrays allocated once and used as a ring (``pos``, ``full``)."""

    def __init__(self, capacity, state_size=STATE_SIZE):
        self.capacity = int(capacity)
        self.states = np.zeros((self.capacity, state_size), dtype=np.float32)
        self.next_states = np.zeros((self.capacity, state_size), dtype=np.float32)
        self.actions = np.zeros(self.capacity, dtype=np.int32)
        self.rewards = np.zeros(self.capacity, dtype=np.float32)
        self.terminals = np.zeros(self.capacity, dtype=np.float32)
        self.targets = np.zeros((self.capacity, NUM_ACTIONS), dtype=np.float32)   # the oracle diagnostic's only
        self.trigger_targets = np.zeros(self.capacity, dtype=np.float32)           # the trigger_targets option's
        self.expert_actions = np.full(self.capacity, -1, dtype=np.int32)             # the expert_margin option's
        self.pos = 0
        self.full = False

    def __len__(self):
        return self.capacity if self.full else self.pos

    def add(self, state, action, reward, next_state, terminal, targets=None, trigger_target=None,
            expert_action=None):
        """Store a transition; ``targets``: the six regression targets of the ``oracle`` diagnostic, if any;
        ``trigger_target``: the reward a trigger would get in ``state`` (the ``trigger_targets`` option), if any;
        ``expert_action``: the upper-bound agent's action in ``state`` (the ``expert_margin`` option), if any."""
        self.states[self.pos] = state
        if expert_action is not None:
            self.expert_actions[self.pos] = expert_action
        if targets is not None:
            self.targets[self.pos] = targets
        if trigger_target is not None:
            self.trigger_targets[self.pos] = trigger_target
        self.actions[self.pos] = action
        self.rewards[self.pos] = reward
        self.next_states[self.pos] = next_state
        self.terminals[self.pos] = float(terminal)
        self.pos = (self.pos + 1) % self.capacity
        self.full = self.full or self.pos == 0

    def sample(self, batch_size, rng, trigger_targets=False, expert_actions=False):
        """A uniformly random minibatch (without replacement) as a tuple of arrays ``(s, a, r, s′, terminal)``;
        with ``trigger_targets`` the stored trigger targets of s follow, then with ``expert_actions`` the stored
        upper-bound actions in s (the same draw from ``rng`` whichever follow)."""
        indices = rng.choice(len(self), size=batch_size, replace=False)
        batch = (self.states[indices], self.actions[indices], self.rewards[indices],
                 self.next_states[indices], self.terminals[indices])
        batch += (self.trigger_targets[indices],) if trigger_targets else ()
        return batch + (self.expert_actions[indices],) if expert_actions else batch

    def sample_targets(self, batch_size, rng):
        """A uniformly random minibatch of ``(states, targets)`` (the ``oracle`` diagnostic's regression)."""
        indices = rng.choice(len(self), size=batch_size, replace=False)
        return self.states[indices], self.targets[indices]

    # checkpointing: the arrays and the ring position (the targets only where an option filled them)
    def state_dict(self):
        arrays = {"states": self.states, "next_states": self.next_states, "actions": self.actions,
                  "rewards": self.rewards, "terminals": self.terminals,
                  "pos": np.array(self.pos), "full": np.array(self.full)}
        if self.targets.any():
            arrays["targets"] = self.targets
        if self.trigger_targets.any():
            arrays["trigger_targets"] = self.trigger_targets
        if (self.expert_actions >= 0).any():
            arrays["expert_actions"] = self.expert_actions
        return arrays

    def load_state_dict(self, arrays):
        for name in ("states", "next_states", "actions", "rewards", "terminals"):
            getattr(self, name)[...] = arrays[name]
        self.targets[...] = arrays["targets"] if "targets" in arrays else 0.0
        self.trigger_targets[...] = arrays["trigger_targets"] if "trigger_targets" in arrays else 0.0
        self.expert_actions[...] = arrays["expert_actions"] if "expert_actions" in arrays else -1
        self.pos, self.full = int(arrays["pos"]), bool(arrays["full"])


def q_targets(q_states, q_next_states, actions, rewards, terminals, gamma, q_next_online=None,
              trigger_targets=None):
    """Q-learning regression targets: ``y = Q(s)`` with ``y[a] = r`` if terminal else ``r + γ·V(s′)``.

    ``V(s′) = max Q(s′)`` over ``q_next_states`` (the paper's). Double DQN (an option): ``q_next_online`` is the
    online network's Q(s′), which picks ``a′ = argmax``, and ``q_next_states`` (the target network's) values it.
    ``trigger_targets`` (an option): ``y[trigger]`` is the reward a trigger would get in s, whatever the action
    taken (where the trigger was taken that is its target anyway: the trigger ends the search with that reward).
    Works on NumPy arrays and on tensors alike (keras.ops), so the compiled update and the tests share it.
    """
    from keras import ops
    if q_next_online is None:
        next_values = ops.max(q_next_states, axis=1)
    else:
        picked = ops.one_hot(ops.argmax(q_next_online, axis=1), NUM_ACTIONS, dtype=q_next_states.dtype)
        next_values = ops.sum(q_next_states * picked, axis=1)
    bootstrap = rewards + gamma * (1.0 - terminals) * next_values
    chosen = ops.one_hot(actions, NUM_ACTIONS, dtype=q_states.dtype)
    targets = q_states * (1.0 - chosen) + chosen * ops.expand_dims(bootstrap, 1)
    if trigger_targets is None:
        return targets
    trigger = np.eye(NUM_ACTIONS, dtype=np.float32)[TRIGGER]          # broadcasts over the minibatch
    return targets * (1.0 - trigger) + trigger * ops.expand_dims(ops.cast(trigger_targets, q_states.dtype), 1)


def margin_loss(q_values, expert_actions, margin):
    """The large-margin loss of deep Q-learning from demonstrations (DQfD; Hester et al., AAAI 2018), averaged
    over the minibatch: ``max_a [Q(s, a) + margin · (a ≠ a_E)] − Q(s, a_E)``, zero where the expert's action
    a_E already leads every other by at least ``margin``. The ``expert_margin`` option adds it to Q-learning's
    loss with a_E the upper-bound agent's action in s. Works on NumPy arrays and on tensors alike (keras.ops)."""
    from keras import ops
    expert = ops.one_hot(expert_actions, NUM_ACTIONS, dtype=q_values.dtype)
    lead = ops.max(q_values + margin * (1.0 - expert), axis=1) - ops.sum(q_values * expert, axis=1)
    return ops.mean(lead)


def q_targets_reference(model, batch, gamma):
    """The 2016 pattern, kept as a slow obvious reference: one ``predict`` per sample for Q(s) and Q(s′)."""
    states, actions, rewards, next_states, terminals = batch
    targets = []
    for state, action, reward, next_state, terminal in zip(states, actions, rewards, next_states, terminals):
        old_q = model.predict(state[None], verbose=0)[0]
        new_q = model.predict(next_state[None], verbose=0)[0]
        y = old_q.copy()
        y[action] = reward if terminal else reward + gamma * np.max(new_q)
        targets.append(y)
    return np.array(targets, dtype=np.float32)


LOSSES = ("mse", "huber")


class QLearner:
    """One gradient step on a replay minibatch, compiled: a single forward pass gives Q(s) and Q(s′) for the
    whole batch (inference mode, as the targets are constants), then one MSE step with Adam in training mode.

    Learning options, all off by default (the paper's method; docs/method.md §9):
    ``target_update`` N > 0: a target network, a copy of the Q-network taken every N updates, values s′;
    ``double_dqn``: the online network picks a′ and the target network values it (needs ``target_update``);
    ``loss`` "huber": Huber loss (δ = 1) instead of MSE; ``weight_decay`` w > 0: AdamW, every update shrinks the
    weights by ``learning_rate · w`` (decoupled weight decay); ``trigger_targets``: every sampled state's trigger
    output is also regressed to the reward a trigger would get there (the minibatch carries them, see
    :meth:`ReplayMemory.sample`); ``expert_margin`` m > 0: DQfD's large-margin loss (:func:`margin_loss`) towards
    the upper-bound agent's action in each sampled state is added to the loss (the minibatch carries the actions).
    """

    def __init__(self, model, gamma=0.9, learning_rate=1e-6, target_update=0, double_dqn=False, loss="mse",
                 weight_decay=0.0, trigger_targets=False, expert_margin=0.0):
        import keras
        import tensorflow as tf
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        if double_dqn and not target_update:
            raise ValueError("double_dqn needs a target network (target_update > 0)")
        self.model = model
        self.gamma = float(gamma)
        self.target_update = int(target_update)
        self.double_dqn = bool(double_dqn)
        self.loss = loss
        self.weight_decay = float(weight_decay)
        self.trigger_targets = bool(trigger_targets)
        self.expert_margin = float(expert_margin)
        if self.expert_margin < 0:
            raise ValueError(f"expert_margin cannot be negative, got {expert_margin}")
        if self.weight_decay > 0:
            self.optimizer = keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=self.weight_decay)
        else:
            self.optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
        self.optimizer.build(model.trainable_variables)
        self.target_model = None
        if self.target_update > 0:
            self.target_model = keras.models.clone_model(model)
            self.target_model.set_weights(model.get_weights())
        fused = self.target_model is None and loss == "mse"     # weight decay lives in the optimiser: fused too
        graph = self._update_graph if fused else self._update_graph_options
        self._update = tf.function(graph, jit_compile=True, reduce_retracing=True)   # XLA: fused, ~1.5x faster
        self._regress = None

    @property
    def options(self):
        """The learning options in use (empty: the paper's update)."""
        options = {}
        if self.target_update:
            options["target_update"] = self.target_update
        if self.double_dqn:
            options["double_dqn"] = 1
        if self.loss != "mse":
            options["loss"] = self.loss
        if self.weight_decay:
            options["weight_decay"] = self.weight_decay
        if self.trigger_targets:
            options["trigger_targets"] = 1
        if self.expert_margin:
            options["expert_margin"] = self.expert_margin
        return options

    def _update_graph(self, states, actions, rewards, next_states, terminals, trigger_targets=None,
                      expert_actions=None):
        """Layer 1's product (25,112 × 1,024, nearly all the arithmetic) is computed once for the 2B states and
        shared by the target pass (inference mode) and the training pass on s (dropout comes after it); its weight
        gradient is taken by hand, sᵀ·δ, so that s′ does not enter the backward product. The same operations as
        ``model(s, s′)`` then ``model(s, training=True)``: bit-identical results, about 20% faster."""
        import tensorflow as tf
        dense1, dropout1, dense2, dropout2, dense3 = self.model.layers
        batch_size = tf.shape(states)[0]
        pre_activation = tf.matmul(tf.concat([states, next_states], axis=0), dense1.kernel) + dense1.bias
        hidden = tf.nn.relu(pre_activation)
        q_both = dense3(dense2(hidden))                                  # inference mode: no dropout
        targets = tf.stop_gradient(q_targets(q_both[:batch_size], q_both[batch_size:], actions, rewards,
                                             terminals, self.gamma, trigger_targets=trigger_targets))
        hidden_states = hidden[:batch_size]
        upper = [dense2.kernel, dense2.bias, dense3.kernel, dense3.bias]
        with tf.GradientTape() as tape:
            tape.watch(hidden_states)
            q_values = dense3(dropout2(dense2(dropout1(hidden_states, training=True)), training=True))
            loss = tf.reduce_mean(tf.square(targets - q_values))
            if expert_actions is not None:
                loss += margin_loss(q_values, expert_actions, self.expert_margin)
        hidden_gradient, *upper_gradients = tape.gradient(loss, [hidden_states, *upper])
        pre_gradient = hidden_gradient * tf.cast(pre_activation[:batch_size] > 0, hidden_gradient.dtype)  # ReLU′
        gradients = [tf.matmul(states, pre_gradient, transpose_a=True), tf.reduce_sum(pre_gradient, axis=0),
                     *upper_gradients]
        self.optimizer.apply_gradients(zip(gradients, [dense1.kernel, dense1.bias, *upper]))
        return loss

    def _update_graph_options(self, states, actions, rewards, next_states, terminals, trigger_targets=None,
                              expert_actions=None):
        """The update with learning options (target network, double DQN, Huber loss): plain Keras calls, as the
        target network's Q(s′) cannot share the online network's first-layer product."""
        import tensorflow as tf
        q_states = self.model(states, training=False)
        if self.target_model is None:
            q_next, q_next_online = self.model(next_states, training=False), None
        else:
            q_next = self.target_model(next_states, training=False)
            q_next_online = self.model(next_states, training=False) if self.double_dqn else None
        targets = tf.stop_gradient(q_targets(q_states, q_next, actions, rewards, terminals, self.gamma,
                                             q_next_online, trigger_targets))
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            q_values = self.model(states, training=True)
            error = targets - q_values
            if self.loss == "huber":
                absolute = tf.abs(error)
                loss = tf.reduce_mean(tf.where(absolute <= 1.0, 0.5 * tf.square(error), absolute - 0.5))
            else:
                loss = tf.reduce_mean(tf.square(error))
            if expert_actions is not None:
                loss += margin_loss(q_values, expert_actions, self.expert_margin)
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    def sync_target(self):
        """Copy the Q-network into the target network when the update count is a multiple of the period."""
        if self.target_model is not None and int(self.optimizer.iterations.numpy()) % self.target_update == 0:
            for target, online in zip(self.target_model.weights, self.model.weights):
                target.assign(online)

    def targets(self, batch):
        """The regression targets the update uses (for tests and the benchmark)."""
        states, actions, rewards, next_states, terminals, *extras = batch
        trigger_targets = extras[:1] if self.trigger_targets else []
        q_both = self.model(np.concatenate([states, next_states]), training=False)
        q_both = np.asarray(q_both)
        q_states, q_next, q_next_online = q_both[:len(states)], q_both[len(states):], None
        if self.target_model is not None:
            q_next_online = q_next if self.double_dqn else None
            q_next = np.asarray(self.target_model(next_states, training=False))
        return np.asarray(q_targets(q_states, q_next, actions, rewards, terminals, self.gamma, q_next_online,
                                    *trigger_targets))

    def update(self, batch):
        """One gradient step on ``(s, a, r, s′, terminal)`` (with ``trigger_targets``: and the trigger targets of
        s, with ``expert_margin``: then the expert's actions in s, which it then requires); returns the loss as a
        float."""
        states, actions, rewards, next_states, terminals, *extras = batch
        if len(extras) != int(self.trigger_targets) + int(self.expert_margin > 0):
            raise ValueError("a learner with trigger_targets (expert_margin) needs minibatches with the trigger "
                             "targets (the expert's actions), and only it takes them")
        trigger_targets = np.asarray(extras.pop(0), np.float32) if self.trigger_targets else None
        expert_actions = np.asarray(extras.pop(0), np.int32) if self.expert_margin else None
        if expert_actions is not None and (expert_actions < 0).any():
            raise ValueError("a minibatch for expert_margin holds transitions stored without the expert's action")
        self.sync_target()
        loss = self._update(states, actions.astype(np.int32), rewards.astype(np.float32), next_states,
                            terminals.astype(np.float32), trigger_targets, expert_actions)
        return float(loss)

    def regress(self, batch):
        """The ``oracle`` diagnostic's step instead of Q-learning's: Q(s) regressed to given targets for all six
        actions (MSE, the same optimiser and learning rate); returns the loss as a float."""
        import tensorflow as tf
        if self._regress is None:
            def graph(states, targets):
                with tf.GradientTape() as tape:
                    loss = tf.reduce_mean(tf.square(targets - self.model(states, training=True)))
                variables = self.model.trainable_variables
                self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
                return loss
            self._regress = tf.function(graph, jit_compile=True, reduce_retracing=True)
        states, targets = batch
        return float(self._regress(states, targets.astype(np.float32)))

    def q_values(self, states):
        """Q-values of a batch of states, inference mode."""
        return np.asarray(self.model(np.asarray(states, dtype=np.float32), training=False))
