"""Four options that use the annotations in training, off by default: exploration guided by them
(``guided_exploration``), the oracle ceiling (``oracle``: the upper bound's returns regressed instead of
Q-learning), the trigger's known value as a target at every update (``trigger_targets``) and DQfD's large-margin
loss towards the upper-bound agent's action (``expert_margin``). Each is checked against values worked out by hand
or by a slow reference, and to resume exactly."""
import copy
from types import SimpleNamespace

import numpy as np
import pytest

import image_zooms_training
from episodes import UpperBoundAgent, new_training_stats, train_image
from metrics import iou_many
from reinforcement import (NUM_ACTIONS, STATE_SIZE, TRIGGER, QLearner, ReplayMemory, ZoomEnvironment,
                           build_q_network, margin_loss, q_targets, upper_bound_q_values, upper_bound_return)
from test_resume import TINY, same_weights, tiny_features


def one_plane():
    """100×100 px, one object in the top-left quarter."""
    return ZoomEnvironment(100, 100, [[0, 0, 50, 50]], 0.75)


def test_rewarding_actions_by_hand():
    env = one_plane()
    env.start_search()
    # whole image: IoU 0.25; up-left (0, 0, 75, 75) 0.444; up-right and down-left 0.182; down-right 0.083;
    # centre 0.209: only up-left raises it, and 0.25 is no trigger
    assert env.rewarding_actions() == [0]
    env.step(0)
    env.step(0)                     # (0, 0, 56.25, 56.25): IoU 0.790, a rewarded trigger
    assert TRIGGER in env.rewarding_actions()


def reference_return(env, action, gamma, steps):
    """The return of ``action`` then the upper-bound agent's actions, by stepping a copy of the environment."""
    env = copy.deepcopy(env)
    total, discount = 0.0, 1.0
    for step in range(steps):
        if step > 0:
            action = int(UpperBoundAgent().decide([env], None)[0][0])
        reward, done, _ = env.step(action)
        total += discount * reward
        discount *= gamma
        if done:
            break
    return total


def test_upper_bound_q_values_by_hand_and_against_stepping_the_environment():
    env = one_plane()
    env.start_search()
    q_values = upper_bound_q_values(env, 0.9, 10)
    assert q_values[TRIGGER] == -3.0                          # IoU 0.25 < 0.5
    # up-left: +1 (0.25 → 0.444), then up-left again +1 (0.790), then no child beats 0.790: trigger +3
    assert q_values[0] == pytest.approx(1 + 0.9 * (1 + 0.9 * 3))
    rng = np.random.default_rng(0)
    for _ in range(20):             # random images, objects and starting regions
        boxes = [sorted(rng.uniform(0, 200, 2)) for _ in range(rng.integers(1, 4))]
        boxes = [[x0, y0, x0 + rng.uniform(10, 120), y0 + rng.uniform(10, 120)] for x0, y0 in boxes]
        env = ZoomEnvironment(320, 320, np.clip(boxes, 0, 320), 0.75)
        env.start_search()
        for action in rng.integers(0, 5, size=rng.integers(0, 3)):
            env.step(int(action))
        expected = [reference_return(env, action, 0.9, 10) for action in range(NUM_ACTIONS)]
        assert np.allclose(upper_bound_q_values(env, 0.9, 10), expected, atol=1e-5)
    assert upper_bound_return(env, env.region, 0.9, 0) == 0.0   # no steps left: nothing more to earn


class ZeroDescriber:
    def describe(self, items):
        return np.zeros((len(items), STATE_SIZE - 24), np.float32)


def test_guided_exploration_draws_rewarded_actions_where_there_are_some(monkeypatch):
    """ε = 1: every action not forced is a random draw; guided, it is among the rewarded ones whenever some exist,
    and the searches earn more than uniform draws do."""
    draws, pending = [], []
    original_rewarding, original_step = ZoomEnvironment.rewarding_actions, ZoomEnvironment.step

    def rewarding(self):
        pending.append(original_rewarding(self))
        return pending[-1]

    def step(self, action):
        if pending:
            draws.append((pending.pop(), action))
        return original_step(self, action)
    monkeypatch.setattr(ZoomEnvironment, "rewarding_actions", rewarding)
    monkeypatch.setattr(ZoomEnvironment, "step", step)
    mean_rewards = {}
    for guided in (False, True):
        memory, rng = ReplayMemory(1000), np.random.default_rng(1)
        for _ in range(20):
            train_image(one_plane(), ZeroDescriber(), None, memory, rng, 1.0, 10, 4, new_training_stats(),
                        guided_exploration=guided)
        mean_rewards[guided] = memory.rewards[:memory.pos].mean()
    assert len(draws) > 20 and any(rewarded for rewarded, _ in draws)
    assert all(action in rewarded for rewarded, action in draws if rewarded)
    assert mean_rewards[True] > mean_rewards[False] + 0.5


def test_regress_fits_given_targets():
    rng = np.random.default_rng(0)
    states = rng.random((16, STATE_SIZE), dtype=np.float32)
    targets = rng.choice([-3.0, 1.0, 3.0], size=(16, NUM_ACTIONS)).astype(np.float32)
    learner = QLearner(build_q_network(seed=0), 0.9, 1e-4)
    first = learner.regress((states, targets))
    for _ in range(60):
        last = learner.regress((states, targets))
    assert last < 0.2 * first
    assert np.mean(np.sign(learner.q_values(states)) == np.sign(targets)) > 0.9


def test_the_replay_memory_keeps_the_oracle_targets_through_a_resume_state():
    memory = ReplayMemory(4)
    memory.add(np.ones(STATE_SIZE), 1, 1.0, np.ones(STATE_SIZE), False, np.arange(6))
    restored = ReplayMemory(4)
    restored.load_state_dict(memory.state_dict())
    assert np.array_equal(restored.targets[0], np.arange(6))
    plain = ReplayMemory(4)
    plain.add(np.ones(STATE_SIZE), 1, 1.0, np.ones(STATE_SIZE), False)
    assert "targets" not in plain.state_dict()               # the paper's resume state is unchanged


def test_trigger_targets_replace_the_trigger_column_whatever_the_action():
    q_states = np.ones((3, NUM_ACTIONS), dtype=np.float32)
    q_next = np.full((3, NUM_ACTIONS), 2.0, dtype=np.float32)
    actions, rewards = np.array([0, TRIGGER, 4]), np.array([1.0, 3.0, -1.0], np.float32)
    terminals, triggers = np.array([0.0, 1.0, 0.0], np.float32), np.array([-3.0, 3.0, 3.0], np.float32)
    plain = np.asarray(q_targets(q_states, q_next, actions, rewards, terminals, 0.9))
    with_triggers = np.asarray(q_targets(q_states, q_next, actions, rewards, terminals, 0.9,
                                         trigger_targets=triggers))
    assert np.array_equal(with_triggers[:, TRIGGER], triggers)
    moves = [a for a in range(NUM_ACTIONS) if a != TRIGGER]
    assert np.array_equal(with_triggers[:, moves], plain[:, moves])       # the taken moves' targets unchanged
    assert plain[1, TRIGGER] == with_triggers[1, TRIGGER] == 3.0            # a taken trigger: the same target


def test_trigger_targets_are_the_reward_a_trigger_would_get_in_each_stored_state():
    memory, rng, trajectory = ReplayMemory(1000), np.random.default_rng(2), []
    for _ in range(20):
        train_image(one_plane(), ZeroDescriber(), None, memory, rng, 1.0, 10, 4, new_training_stats(), trajectory,
                    guided_exploration=True, trigger_targets=True)         # guided: some searches reach the plane
    assert len(trajectory) == memory.pos
    ious = np.array([iou_many(np.array([[0, 0, 50, 50]], float), np.array(step["region"]))[0] for step in trajectory])
    assert np.array_equal(memory.trigger_targets[:memory.pos], np.where(ious >= 0.5, 3.0, -3.0))
    assert (ious >= 0.5).any() and (ious < 0.5).any()
    # sampled with the same draw as the plain minibatch; kept through a resume state
    plain, with_triggers = memory.sample(8, np.random.default_rng(5)), memory.sample(8, np.random.default_rng(5), True)
    assert all(np.array_equal(a, b) for a, b in zip(plain, with_triggers[:5]))
    restored = ReplayMemory(1000)
    restored.load_state_dict(memory.state_dict())
    assert np.array_equal(restored.trigger_targets, memory.trigger_targets)


def test_trigger_targets_teach_the_trigger_output_which_states_to_trigger_in():
    rng = np.random.default_rng(0)
    states = rng.random((32, STATE_SIZE), dtype=np.float32)
    triggers = np.where(states[:, 0] > 0.5, 3.0, -3.0).astype(np.float32)
    minibatch = (states, np.zeros(32, np.int32), np.full(32, -1.0, np.float32), states, np.zeros(32, np.float32),
                 triggers)
    learner = QLearner(build_q_network(seed=0), 0.9, 1e-4, trigger_targets=True)
    assert learner.options == {"trigger_targets": 1}
    for _ in range(60):
        learner.update(minibatch)
    assert np.mean(np.sign(learner.q_values(states)[:, TRIGGER]) == np.sign(triggers)) > 0.9
    with pytest.raises(ValueError, match="trigger_targets"):
        learner.update(minibatch[:5])
    with pytest.raises(ValueError, match="trigger_targets"):
        QLearner(build_q_network(seed=0), 0.9, 1e-4).update(minibatch)


@pytest.mark.parametrize("option", ["guided_exploration", "oracle", "trigger_targets"])
def test_each_option_trains_and_resumes_exactly(option, dataset, tmp_path, monkeypatch, capsys, small_q_network):
    monkeypatch.setattr(image_zooms_training, "make_features", tiny_features)

    def train(folder, *extra):
        image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(tmp_path / folder), *TINY,
                                   f"--{option}", "1", *extra])

    train("straight", "--epochs", "3")
    assert f"learning options (not the paper's method): {option} 1" in capsys.readouterr().out
    train("resumed", "--epochs", "2")
    train("resumed", "--epochs", "3", "-n", "2")
    assert same_weights(tmp_path / "straight" / "model0.weights.h5", tmp_path / "resumed" / "model0.weights.h5")
    with pytest.raises(Exception, match=f"{option} takes 0 or 1"):
        train("bad", "--epochs", "1", f"--{option}", "2")


def test_oracle_refuses_the_options_its_regression_ignores(dataset, tmp_path, small_q_network):
    from errors import UserError
    for flags in (["--loss", "huber"], ["--target_update", "10"], ["--trigger_targets", "1"]):
        with pytest.raises(UserError, match="oracle 1 regresses Q to the upper bound's returns"):
            image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(tmp_path), *TINY,
                                       "--epochs", "1", "--oracle", "1", *flags])


def test_margin_loss_by_hand():
    q_values = np.array([[1.0, 2.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 5.0]], np.float32)
    # expert 1 leads every other action by ≥ 0.8: no loss; expert 0: max(1, 2 + 0.8, 0.8, ...) − 1 = 1.8
    assert float(margin_loss(q_values[:1], np.array([1]), 0.8)) == pytest.approx(0.0)
    assert float(margin_loss(q_values[:1], np.array([0]), 0.8)) == pytest.approx(1.8)
    # the trigger (5) leads by 5; expert 2 on that row: 5 + 0.8 − 0 = 5.8; the mean over the minibatch
    assert float(margin_loss(q_values, np.array([1, TRIGGER]), 0.8)) == pytest.approx(0.0)
    assert float(margin_loss(q_values, np.array([0, 2]), 0.8)) == pytest.approx((1.8 + 5.8) / 2)


def test_expert_actions_are_the_upper_bound_agents_best_action_in_each_stored_state():
    memory, rng, trajectory = ReplayMemory(1000), np.random.default_rng(2), []
    expected = []

    for _ in range(10):             # the upper bound's best action in each state, recorded before each step
        env = one_plane()
        original_step = env.step

        def step(action, env=env, original_step=original_step):
            expected.append(int(np.argmax(upper_bound_q_values(env, 0.9, 10))))
            return original_step(action)
        env.step = step
        train_image(env, ZeroDescriber(), SimpleNamespace(gamma=0.9), memory, rng, 1.0, 10, 4,
                    new_training_stats(), trajectory, expert_actions=True)     # the memory never fills: no update
    assert memory.pos == len(expected) > 0
    assert np.array_equal(memory.expert_actions[:memory.pos], expected)
    assert len(set(expected)) > 1                                      # moves and triggers both appear
    assert (memory.expert_actions[memory.pos:] == -1).all()           # unused slots: no action
    plain = memory.sample(8, np.random.default_rng(5))
    with_experts = memory.sample(8, np.random.default_rng(5), expert_actions=True)
    assert all(np.array_equal(a, b) for a, b in zip(plain, with_experts[:5])) and len(with_experts) == 6
    restored = ReplayMemory(1000)
    restored.load_state_dict(memory.state_dict())
    assert np.array_equal(restored.expert_actions, memory.expert_actions)
    assert "expert_actions" not in ReplayMemory(4).state_dict()       # the paper's resume state is unchanged


def test_expert_margin_teaches_the_experts_action_and_needs_minibatches_with_it():
    rng = np.random.default_rng(0)
    states = rng.random((32, STATE_SIZE), dtype=np.float32)
    experts = np.full(32, 2, np.int32)                                # the expert moves down-left everywhere
    # every transition a terminal trigger with reward 0: Q-learning's target alone teaches no preference for it
    base = (states, np.full(32, TRIGGER, np.int32), np.zeros(32, np.float32), states, np.ones(32, np.float32))
    learner = QLearner(build_q_network(seed=0), 0.9, 1e-4, expert_margin=0.8)
    assert learner.options == {"expert_margin": 0.8}
    before = float(margin_loss(learner.q_values(states), experts, 0.8))
    for _ in range(60):
        learner.update(base + (experts,))
    q_values = learner.q_values(states)
    # the expert's action now leads every other by the margin in every state (without the option the loss stays
    # about 0.8: measured with the paper's and the small network, 3 seeds each)
    assert before > 0.5 and float(margin_loss(q_values, experts, 0.8)) < 0.1
    assert (np.argmax(q_values, axis=1) == experts).all()
    with pytest.raises(ValueError, match="expert_margin"):
        learner.update(base)
    with pytest.raises(ValueError, match="without the expert's action"):
        learner.update(base + (np.full(32, -1, np.int32),))
    both = QLearner(build_q_network(seed=0), 0.9, 1e-4, trigger_targets=True, expert_margin=0.8)
    both.update(base + (np.full(32, 3.0, np.float32), experts))       # trigger targets, then the actions
    with pytest.raises(ValueError, match="negative"):
        QLearner(build_q_network(seed=0), 0.9, 1e-4, expert_margin=-1)


def test_expert_margin_trains_and_resumes_exactly(dataset, tmp_path, capsys, monkeypatch, small_q_network):
    from errors import UserError
    monkeypatch.setattr(image_zooms_training, "make_features", tiny_features)

    def train(folder, *extra):
        image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(tmp_path / folder), *TINY,
                                   "--trigger_targets", "1", "--expert_margin", "0.8", *extra])

    train("straight", "--epochs", "3")
    assert ("learning options (not the paper's method): trigger_targets 1, expert_margin 0.8; the log's loss adds "
            "the margin's to Q-learning's") in capsys.readouterr().out
    train("resumed", "--epochs", "2")
    train("resumed", "--epochs", "3", "-n", "2")
    assert same_weights(tmp_path / "straight" / "model0.weights.h5", tmp_path / "resumed" / "model0.weights.h5")
    with pytest.raises(UserError, match="expert_margin must be 0"):
        train("bad", "--epochs", "1", "--expert_margin", "-1")
    with pytest.raises(UserError, match="oracle 1 regresses"):
        train("bad", "--epochs", "1", "--trigger_targets", "0", "--oracle", "1")
