"""The zoom environment and Q-learning against values worked out by hand (method.md §3, §4, §6)."""
import numpy as np
import pytest

from conftest import STATE_SIZE, learner_regression_values
from experiments.benchmark import regression_values_reference
from reinforcement import (HISTORY_SIZE, TRIGGER, Minibatch, QLearner, ReplayMemory, ZoomEnvironment, build_q_network,
                           child_regions, epsilon_for_epoch, movement_reward, trigger_reward, update_history)


# -- geometry ---------------------------------------------------------------------------------------------------

def test_children_overlapped_hierarchy_worked_values():
    # region (x, y, w, h) = (0, 0, 100, 80), s = 3/4: children 75 x 60, free space 25 x 20
    children = child_regions([0, 0, 100, 80], 0.75)
    expected = [[0, 0, 75, 60], [25, 0, 100, 60], [0, 20, 75, 80], [25, 20, 100, 80], [12.5, 10, 87.5, 70]]
    np.testing.assert_allclose(children, expected)


def test_children_non_overlapped_quarters_do_not_overlap():
    children = child_regions([10, 20, 210, 120], 0.5)
    expected = [[10, 20, 110, 70], [110, 20, 210, 70], [10, 70, 110, 120], [110, 70, 210, 120],
                [60, 45, 160, 95]]
    np.testing.assert_allclose(children, expected)
    # the four corner children tile the parent exactly (2016 defect 3)
    areas = (children[:4, 2] - children[:4, 0]) * (children[:4, 3] - children[:4, 1])
    assert areas.sum() == pytest.approx(200 * 100)


def test_centre_child_uses_each_axis_own_size():
    # non-square parent: 2016 defect 2 used the height offset on both axes
    centre = child_regions([0, 0, 400, 100], 0.75)[4]
    np.testing.assert_allclose(centre, [50, 12.5, 350, 87.5])


@pytest.mark.parametrize("scale", [0.3, 0.5, 0.6, 0.75, 0.9])
def test_children_inside_parent_with_scaled_size(scale):
    parent = np.array([3.5, 7.0, 211.0, 97.25])
    children = child_regions(parent, scale)
    assert np.all(children[:, :2] >= parent[:2] - 1e-9) and np.all(children[:, 2:] <= parent[2:] + 1e-9)
    np.testing.assert_allclose(children[:, 2] - children[:, 0], scale * (parent[2] - parent[0]))
    np.testing.assert_allclose(children[:, 3] - children[:, 1], scale * (parent[3] - parent[1]))


# -- history, rewards, epsilon --------------------------------------------------------------------------------

def test_history_keeps_last_four_actions_oldest_first():
    history = np.zeros(HISTORY_SIZE, dtype=np.float32)
    for action in [0, 1, 2, 3, 5]:
        history = update_history(history, action)
    codes = history.reshape(4, 6)
    np.testing.assert_array_equal(codes.argmax(axis=1), [1, 2, 3, 5])
    assert codes.sum() == 4 and np.all(codes.sum(axis=1) == 1)


def test_rewards():
    assert movement_reward(0.2, 0.3) == 1 and movement_reward(0.3, 0.3) == -1 and movement_reward(0.4, 0.1) == -1
    assert trigger_reward(0.5) == 3 and trigger_reward(0.49) == -3


def test_epsilon_schedule_and_resume():
    assert epsilon_for_epoch(0) == 1.0
    assert epsilon_for_epoch(1) == pytest.approx(0.9)
    assert epsilon_for_epoch(20) == pytest.approx(0.1)


# -- environment ------------------------------------------------------------------------------------------------

def test_movement_reward_follows_the_same_object_and_target_switches():
    # two objects: A in the up-left corner, B covering the down-right area
    boxes = [[0, 0, 30, 30], [40, 40, 100, 100]]
    env = ZoomEnvironment(100, 100, boxes, 0.75)
    env.start_search()
    assert env.target(env.region)[0] == 1          # B has the higher IoU with the whole image
    reward, done, new_iou = env.step(0)             # up-left child [0, 0, 75, 75]: now A is the target
    assert not done
    assert env.target(env.region)[0] == 0
    # A's IoU rose from 900/10000 to 900/5625, so +1 even though B's fell
    assert reward == 1 and new_iou == pytest.approx(900 / 5625)
    reward, _, _ = env.step(3)                      # down-right of [0,0,75,75] = [18.75, 18.75, 75, 75]
    # target: A iou = (11.25^2)/(56.25^2+900-126.5625); B iou = (35^2)/(...) -> whichever is higher, compared
    # with the same object's IoU on the previous region
    index = env.target(env.region)[0]
    before = env.ious([0, 0, 75, 75])[index]
    after = env.ious(env.region)[index]
    assert reward == (1 if after > before else -1)


def test_trigger_paints_found_object_and_availability_rule():
    image = np.full((100, 100, 3), 200.0, dtype=np.float32)
    boxes = [[0, 0, 50, 50], [10, 10, 45, 45], [60, 60, 90, 90]]   # the second lies inside the first
    env = ZoomEnvironment(100, 100, boxes, 0.5, image=image, image_id="x")
    env.start_search()
    env.step(0)                                       # [0, 0, 50, 50] = object 0 exactly
    key_before = env.image_key
    reward, done, iou = env.step(TRIGGER)
    assert done and reward == 3 and iou == 1.0
    # object 0 painted with the mean colour, object 1 is covered 100% > 60% -> unavailable; object 2 remains
    np.testing.assert_array_equal(env.available, [False, False, True])
    np.testing.assert_allclose(env.image[25, 25], [123.68, 116.779, 103.939], rtol=1e-6)
    np.testing.assert_allclose(env.image[75, 75], [200, 200, 200])
    assert env.image_key != key_before


def test_partial_coverage_keeps_object_available():
    env = ZoomEnvironment(100, 100, [[0, 0, 100, 50], [0, 0, 50, 100]], 0.5)
    env.paint(np.array([0, 0, 100, 50]), found=0)
    # object 1 is covered 50%: still available
    np.testing.assert_array_equal(env.available, [False, True])


def test_wrong_trigger_is_penalised_and_paints_nothing():
    env = ZoomEnvironment(100, 100, [[0, 0, 20, 20]], 0.75)
    env.start_search()
    reward, done, _ = env.step(TRIGGER)
    assert done and reward == -3 and env.available.all() and not env.painted_boxes


# -- Q-network, replay memory, update ---------------------------------------------------------------------------

def test_q_network_shapes_and_initialisation():
    model = build_q_network(STATE_SIZE, seed=1)
    assert model.input_shape == (None, STATE_SIZE) and model.output_shape == (None, 6)
    kernels = [layer.get_weights() for layer in model.layers if layer.get_weights()]
    assert [k[0].shape for k in kernels] == [(STATE_SIZE, 1024), (1024, 1024), (1024, 6)]
    first = kernels[0][0]
    assert abs(first.mean()) < 1e-3 and first.std() == pytest.approx(0.01, rel=0.02)
    assert all(np.all(k[1] == 0) for k in kernels)
    assert QLearner(model).optimizer.learning_rate.numpy() == pytest.approx(1e-6)


def test_replay_memory_is_a_ring():
    memory = ReplayMemory(3, state_size=2)
    for value in range(5):
        memory.add(np.full(2, value), value % 6, float(value), np.full(2, value + 1), value == 4)
    assert memory.full and len(memory) == 3 and memory.pos == 2
    np.testing.assert_array_equal(memory.states[:, 0], [3, 4, 2])      # slots 0, 1 overwritten by 3, 4
    np.testing.assert_array_equal(memory.terminals, [0, 1, 0])
    batch = memory.sample(3, np.random.default_rng(0))
    assert sorted(batch.states[:, 0]) == [2, 3, 4] and batch.carried == {}
    assert memory.states.shape == (3, 2)                               # allocated once


def test_batched_targets_equal_one_sample_at_a_time_reference():
    rng = np.random.default_rng(0)
    model = build_q_network(STATE_SIZE, seed=3)
    learner = QLearner(model, gamma=0.9)
    batch = Minibatch(rng.standard_normal((8, STATE_SIZE)).astype(np.float32), rng.integers(6, size=8),
                      rng.standard_normal(8).astype(np.float32), rng.standard_normal((8, STATE_SIZE)).astype(np.float32),
                      (rng.random(8) < 0.5).astype(np.float32))
    np.testing.assert_allclose(learner_regression_values(learner, batch),
                               regression_values_reference(model, batch, 0.9), rtol=1e-5, atol=1e-6)


def test_update_moves_the_taken_action_toward_its_target():
    rng = np.random.default_rng(0)
    model = build_q_network(STATE_SIZE, seed=4)
    learner = QLearner(model, gamma=0.9, learning_rate=1e-3)
    states = rng.standard_normal((16, STATE_SIZE)).astype(np.float32)
    batch = Minibatch(states, np.full(16, TRIGGER), np.full(16, 3.0, dtype=np.float32), states,
                      np.ones(16, dtype=np.float32))
    before = learner.q_values(states)[:, TRIGGER].mean()
    losses = [learner.update(batch) for _ in range(20)]
    after = learner.q_values(states)[:, TRIGGER].mean()
    assert abs(after - 3.0) < abs(before - 3.0) and losses[-1] < losses[0]
