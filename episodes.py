"""The episode loops, written once for both feature models and every agent (method.md §6, §7).

Training runs one search at a time (the Q-network learns between steps). Testing advances the searches of many
images in lockstep, so all their current regions go through the region descriptor in one batch.
"""
import numpy as np

from reinforcement import (HISTORY_SIZE, IOU_THRESHOLD, NUM_ACTIONS, TRIGGER, NonFiniteLoss, ZoomEnvironment,
                           upper_bound_action)
from runs.dataset import load_record_image

# ---------------------------------------------------------------------------------------------------------------
# states


def make_states(describer, environments):
    """States ``[descriptor, history]`` of the current regions of ``environments``, described in one batch."""
    descriptors = describer.describe([(env.image_key, env.image, env.region) for env in environments])
    return np.concatenate([descriptors, np.stack([env.history for env in environments])], axis=1)


# ---------------------------------------------------------------------------------------------------------------
# training

def train(settings, make_features, model_label):
    """The training run (docs/method.md §6): data → models → epochs of images, searches, steps and Q-learning
    updates, each epoch saved. What surrounds the method — checks, the lock, resume, saving, signals, drawings —
    is the run's service (``runs.training_run.TrainingRun``), one call each."""
    from refinement import ScoreSample, WindowSample
    from reinforcement import ReplayMemory, build_q_network, epsilon_for_epoch, state_size
    from runs.training_run import TrainingRun, make_learner

    with TrainingRun(settings, model_label) as run:         # checks, the lock, the seed, the data
        # models: the sizes come from the backbone
        features = make_features(settings)
        model = build_q_network(state_size(features.descriptor_size), seed=settings.seed)
        learner = make_learner(settings, model)
        memory = ReplayMemory(settings.buffer_experience_replay, state_size(features.descriptor_size),
                              fields=learner.carries)
        # the refine option: distinct visited windows that overlap an object, for the box-refinement head
        sample = WindowSample(features.descriptor_size, seed=settings.seed) if settings.refine else None
        # the score_head option: reported boxes of visited windows, each with its IoU, for the score head
        scores = ScoreSample(features.score_descriptor_size, seed=settings.seed) if settings.score_head else None
        rng = run.start(learner, memory, sample, scores)    # epoch n: afresh, or exactly where epoch n − 1 ended
        # loop: epochs → images → searches → steps (train_search: act, step, store, learn)
        for epoch in range(settings.n, settings.epochs):
            epsilon = epsilon_for_epoch(epoch, settings.epsilon)
            stats = new_training_stats()
            for record, image in run.images(epoch, stats, features):
                env = make_environment(record, run.class_name, settings.scale_subregion, image)
                steps = train_image(env, features, learner, memory, rng, epsilon, settings.number_of_steps, stats,
                                    run.searched)
                if sample is not None:
                    sample.add_search_steps(steps, memory, env.boxes)
                if scores is not None:      # the boxes refined by the latest refinement head (run.refiner)
                    scores.add_search_steps(steps, memory, env, image, features, run.refiner)
                run.draw(epoch, record, image, steps)
            run.end_epoch(epoch, epsilon, features, learner, memory, sample, scores)     # saved, with its log line


def train_search(env, describer, learner, memory, rng, epsilon, number_of_steps, stats):
    """One training search from the whole image, in the order of docs/method.md §6: describe the region, act
    (forced trigger, else ε-greedy), step, store, learn. Returns its steps, for drawing.

    What a learning option stores with a transition (``learner.carries``) is computed from the annotations before
    the step; what it changes in the update lives in the learner. ``stats`` (counters) is updated in place.
    Raises :class:`NonFiniteLoss` at the first NaN or infinite loss (the weights it produced are not to be kept).
    """
    env.start_search()
    state = make_states(describer, [env])[0]
    stats["searches"] += 1
    steps = []
    for _ in range(number_of_steps):
        # act: the forced trigger where the region already covers its target, else ε-greedy
        carried = {field.name: field.compute(env, learner.gamma, number_of_steps) for field in learner.carries}
        if env.target(env.region)[1] > IOU_THRESHOLD:
            action, q_values = TRIGGER, None
        elif rng.random() < epsilon:
            action, q_values = int(rng.integers(NUM_ACTIONS)), None
        else:
            action, q_values = learner.act(state, carried)
        region, painted_before = env.region, len(env.painted_boxes)
        reward, done, new_iou = env.step(action)
        # the next state is only needed when the search goes on (a terminal transition ignores it)
        next_state = state if done else make_states(describer, [env])[0]
        # store
        memory.add(state, action, reward, next_state, done, carried)
        stats["steps"] += 1
        stats["reward"] += reward
        steps.append({"region": region.tolist(), "action": action, "search": stats["searches"],
                      "q_values": None if q_values is None else q_values.tolist(), "triggered": done,
                      "painted": [list(box) for box in env.painted_boxes[painted_before:]]})
        # learn: one minibatch step per agent step once the memory is full
        if memory.full:
            loss = learner.update(memory.sample(learner.batch_size, rng))
            stats["updates"] += 1
            if not np.isfinite(loss):
                raise NonFiniteLoss(loss, stats["updates"])
            stats["loss"] += loss
        state = next_state          # advance every step (2016 defect 1)
        if done:
            stats["triggers"] += 1
            stats["trigger_iou"] += new_iou
            stats["correct_triggers"] += int(new_iou >= IOU_THRESHOLD)
            break
    return steps


def train_image(env, describer, learner, memory, rng, epsilon, number_of_steps, stats, searched=None):
    """All training searches on one image: one per target-class object while any is available
    (:func:`train_search`); ``searched(count, objects)`` is told after each (progress on an image of thousands of
    objects). Returns their steps, for drawing."""
    steps = []
    for count in range(1, len(env.boxes) + 1):
        if not env.available.any():
            break
        steps += train_search(env, describer, learner, memory, rng, epsilon, number_of_steps, stats)
        if searched is not None:
            searched(count, len(env.boxes))
    return steps


def new_training_stats():
    return {"searches": 0, "steps": 0, "reward": 0.0, "triggers": 0, "correct_triggers": 0, "trigger_iou": 0.0,
            "loss": 0.0, "updates": 0}


# ---------------------------------------------------------------------------------------------------------------
# agents for testing

class TrainedAgent:
    """Greedy policy of a Q-network (anything with ``q_values(states)``); a region's score is its trigger Q-value
    (the "sixth neuron")."""

    needs_features, uses_ground_truth = True, False

    def __init__(self, policy):
        self.policy = policy

    def decide(self, environments, states):
        q_values = self.policy.q_values(states)
        return np.argmax(q_values, axis=1), q_values[:, TRIGGER], q_values


class RandomAgent:
    """Uniformly random actions (trigger included) and random scores: the paper's lower baseline."""

    needs_features, uses_ground_truth = False, False

    def __init__(self, rng):
        self.rng = rng

    def decide(self, environments, states):
        return self.rng.integers(NUM_ACTIONS, size=len(environments)), self.rng.random(len(environments)), None


class UpperBoundAgent:
    """Guided by the ground truth: moves to the child with the highest IoU with any available object and
    triggers when no child improves on the current region; a region's score is its IoU (with ``refine 1``, the
    refined box's: :func:`run_searches`)."""

    needs_features, uses_ground_truth = False, True

    def decide(self, environments, states):
        actions, scores = zip(*(upper_bound_action(env, env.region) for env in environments))
        return np.array(actions), np.array(scores), None


# ---------------------------------------------------------------------------------------------------------------
# testing

def run_searches(environments, agent, describer, number_of_steps, only_first_object, refiner=None, scorer=None):
    """Greedy test searches on many images in lockstep; returns one list of visited steps per environment.

    Each analysed region is one step ``{'region', 'score', 'action', 'q_values', 'search', 'step', 'triggered'}``
    (``step`` counts regions analysed in that search, from 1). At most ``number_of_steps`` regions per image in
    all. After a trigger the region is painted with the mean colour and, unless ``only_first_object``, a new
    search starts from the whole image. With a ``refiner`` (:class:`refinement.BoxRefiner`, the ``refine`` option)
    each step also has ``refined``, the box the head fits to the region; the search itself is unchanged (the upper
    bound, whose score is the IoU of what it reports, then scores the refined box). With a ``scorer``
    (:class:`refinement.ScoreHead`, ``score learned``) a step's ``score`` is the head's score of the box it reports,
    described on the unpainted image, and ``scores`` holds the agent's too (``trigger``).
    """
    from refinement import reported_boxes
    originals = [env.image for env in environments]         # as they are before any search paints them
    trajectories = [[] for _ in environments]
    search_index, step_in_search = [0] * len(environments), [0] * len(environments)
    active = list(range(len(environments)))
    for env in environments:
        env.start_search()
    for _ in range(number_of_steps):
        if not active:
            break
        current = [environments[i] for i in active]
        states = make_states(describer, current) if agent.needs_features or refiner or scorer else None
        actions, scores, q_values = agent.decide(current, states)
        windows = np.stack([env.region for env in current])
        refined = None if refiner is None else refiner.refine(states[:, :-HISTORY_SIZE], windows)
        learned = None if scorer is None else scorer.score(reported_boxes(
            windows, states[:, :-HISTORY_SIZE], current, [originals[i] for i in active], describer, refiner)[1])
        still_active = []
        for position, i in enumerate(active):
            env, action = environments[i], int(actions[position])
            step_in_search[i] += 1
            step = {"region": env.region.tolist(), "score": float(scores[position]), "action": action,
                    "q_values": None if q_values is None else q_values[position].tolist(),
                    "search": search_index[i], "step": step_in_search[i], "triggered": action == TRIGGER}
            trajectories[i].append(step)
            if refined is not None:
                step["refined"] = np.clip(refined[position], 0, [env.width, env.height] * 2).tolist()
                if agent.uses_ground_truth:     # the upper bound scores what it reports: the refined box's IoU
                    step["score"] = float(env.target(step["refined"])[1])
            if learned is not None:
                step["scores"] = {"trigger": step["score"], "learned": float(learned[position])}
                step["score"] = step["scores"]["learned"]
            if action == TRIGGER:
                # an agent guided by the ground truth has found its target (even below IoU 0.5: it will not do
                # better), so that object leaves the search and the next search cannot loop back to it
                env.paint(env.region, found=env.target(env.region)[0] if agent.uses_ground_truth else -1)
                if only_first_object or (agent.uses_ground_truth and not env.available.any()):
                    continue
                search_index[i], step_in_search[i] = search_index[i] + 1, 0
                env.start_search()
            else:
                env.move(action)
            still_active.append(i)
        active = still_active
    return trajectories


def make_environment(record, class_name, scale, image=None):
    """The zoom environment of one annotated image for the target class (all its objects, difficult included).

    The image's own size wins over the annotation's ``<size>`` when the two differ (the caller warns); the boxes are
    then clipped to the image. Without pixels (baselines) the annotation's size is used.
    """
    width, height, boxes = record.annotation.width, record.annotation.height, record.annotation.boxes_of(class_name)
    if image is not None and image.shape[:2] != (height, width):
        height, width = image.shape[:2]
        boxes = np.clip(boxes, 0.0, [width, height, width, height])
    return ZoomEnvironment(width, height, boxes, scale, image=image, image_id=f"{record.path_voc}/{record.image_id}")


def search_records(records, name, agent, features, settings, report, only_first_object, needs_pixels=True,
                   visit=None, refiner=None, scorer=None):
    """The searches of ``agent`` on annotated ``records`` (testing), in lockstep over chunks of 16 images; an
    unreadable image, or one of more than ``settings.max_pixels`` pixels, is left out.
    Returns ``(detections, ground_truth, trajectories)`` for :func:`metrics.precision_recall`: every analysed region
    is a detection (the paper's protocol), with its search, step and whether it was triggered. ``visit(record,
    image, trajectory)`` is called after each image. With a ``refiner`` (the ``refine`` option) a detection's
    ``box`` is the refined one and ``window`` the region; with a ``scorer`` (``score learned``) its ``score`` is the
    score head's, and ``scores`` holds both."""
    detections, ground_truth, trajectories = [], {}, {}
    chunk = 16
    for start in range(0, len(records), chunk):
        pairs = [(r, load_record_image(r, report, settings.max_pixels) if needs_pixels else None)
                 for r in records[start:start + chunk]]
        pairs = [(record, image) for record, image in pairs if image is not None or not needs_pixels]
        environments = [make_environment(r, name, settings.scale_subregion, image) for r, image in pairs]
        searched = run_searches(environments, agent, features, settings.number_of_steps, only_first_object, refiner,
                                scorer)
        for (record, image), trajectory in zip(pairs, searched):
            key = record.image_id
            ground_truth[key] = {"boxes": record.annotation.boxes_of(name),
                                 "difficult": record.annotation.difficult_of(name)}
            detections += [{"image": key, "box": step.get("refined", step["region"]), "score": step["score"],
                            "search": step["search"], "step": step["step"], "triggered": step["triggered"],
                            **({"window": step["region"]} if "refined" in step else {}),
                            **({"scores": step["scores"]} if "scores" in step else {})} for step in trajectory]
            trajectories[key] = trajectory
            if visit is not None:
                visit(record, image, trajectory)
        if len(records) > chunk:
            print(f"  {min(start + chunk, len(records))}/{len(records)} images", flush=True)
    return detections, ground_truth, trajectories

