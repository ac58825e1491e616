"""What makes training and testing fast changes no result (issue 5): the descriptor cache (the same descriptors, at
least to float16 precision; exact keys; bounded memory with LRU eviction) and the lockstep test searches (the same
detections as one image at a time). No timing assertions: benchmark.py measures the speed."""
from collections import OrderedDict

import numpy as np
import pytest

from episodes import TrainedAgent, make_states, new_training_stats, run_searches, train_image
from features import DescriptorCache, ImageZoomsFeatures, build_vgg16
from reinforcement import TRIGGER, QLearner, ReplayMemory, ZoomEnvironment, build_q_network, child_regions
from conftest import STATE_SIZE, DESCRIPTOR_SIZE
from synthetic_dataset import draw_scene


def stored_bytes(descriptor):
    """Bytes the cache keeps for ``descriptor`` (its storage type is the cache's own business)."""
    probe = DescriptorCache(limit_mb=1024)
    probe.put("probe", descriptor)
    return probe.bytes


DESCRIPTOR_BYTES = stored_bytes(np.zeros(DESCRIPTOR_SIZE, dtype=np.float32))


@pytest.fixture(scope="module")
def backbone():
    return build_vgg16("random", (224, 224, 3))


@pytest.fixture(scope="module")
def learner():
    return QLearner(build_q_network(STATE_SIZE, seed=3))


def scene(seed, width=120, height=96):
    pixels, _ = draw_scene(np.random.default_rng(seed), width, height)
    return pixels.astype(np.float32)


def environment(seed, boxes=(), width=120, height=96, image_id=None):
    return ZoomEnvironment(width, height, list(boxes), 0.75, image=scene(seed, width, height),
                           image_id=image_id or f"scene{seed}")


def regions_of(env):
    return [env.whole_image(), *child_regions(env.whole_image(), env.scale)]


def describe_regions(features, env, regions):
    return features.describe([(env.image_key, env.image, region) for region in regions])


# -- the cache changes no result --------------------------------------------------------------------------------

def test_cached_descriptors_equal_fresh_ones(backbone, learner):
    env = environment(1)
    regions = regions_of(env)
    cached = ImageZoomsFeatures(backbone=backbone, cache_mb=64)
    plain = ImageZoomsFeatures(backbone=backbone, cache_mb=0)
    fresh = describe_regions(plain, env, regions)
    first = describe_regions(cached, env, regions)          # computed, then stored
    forwards = cached.forward_count
    second = describe_regions(cached, env, regions)         # served from the cache
    assert cached.forward_count == forwards and cached.cache.hits == len(regions)
    np.testing.assert_allclose(first, fresh, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(second, fresh, rtol=2**-10, atol=1e-6)   # float16 rounding at most
    histories = np.zeros((len(regions), 24), dtype=np.float32)
    q_fresh = learner.q_values(np.concatenate([fresh, histories], axis=1))
    q_cached = learner.q_values(np.concatenate([second, histories], axis=1))
    assert np.abs(q_cached - q_fresh).max() < 1e-2


def test_masked_image_regions_get_new_descriptors(backbone):
    """Keys are exact: after a paint the same region is computed again from the painted pixels, and two different
    paints of one image (one per epoch, say) never share an entry."""
    boxes = [[5, 5, 60, 50], [50, 40, 118, 94]]
    cached = ImageZoomsFeatures(backbone=backbone, cache_mb=64)
    plain = ImageZoomsFeatures(backbone=backbone, cache_mb=0)
    first_epoch = environment(2, boxes, image_id="same")
    regions = regions_of(first_epoch)[:2]                   # the whole image and its up-left child
    unmasked = describe_regions(cached, first_epoch, regions)
    first_epoch.paint(first_epoch.boxes[0], found=0)
    masked_first = describe_regions(cached, first_epoch, regions)
    np.testing.assert_allclose(masked_first, describe_regions(plain, first_epoch, regions), rtol=1e-5, atol=1e-6)
    assert not np.allclose(masked_first[0], unmasked[0])    # the whole image changed
    # a later epoch on the same image finds the other object first
    later_epoch = environment(2, boxes, image_id="same")
    later_epoch.paint(later_epoch.boxes[1], found=1)
    masked_later = describe_regions(cached, later_epoch, regions)
    np.testing.assert_allclose(masked_later, describe_regions(plain, later_epoch, regions), rtol=1e-5, atol=1e-6)
    assert not np.allclose(masked_later[0], masked_first[0])


def test_regions_no_paint_reaches_keep_their_descriptors(backbone):
    """A paint changes only the crops it reaches: the others are served from the cache, and every descriptor,
    served or computed, equals a fresh one of the painted image; paints in another order share the entries."""
    cached = ImageZoomsFeatures(backbone=backbone, cache_mb=64)
    plain = ImageZoomsFeatures(backbone=backbone, cache_mb=0)
    boxes = [[2, 2, 30, 24], [95, 76, 118, 94]]                 # up-left and down-right corners of 120 x 96
    env = environment(5, boxes, image_id="corners")
    whole = env.whole_image()
    regions = [whole, *child_regions(whole, env.scale)]         # whole, up-left, up-right, down-left, down-right, centre
    reached_first = [True, True, False, False, False, True]     # crops that the first box reaches
    reached_second = [True, False, False, False, True, True]
    describe_regions(cached, env, regions)
    env.paint(env.boxes[0], found=0)
    forwards = cached.forward_count
    after = describe_regions(cached, env, regions)
    assert cached.forward_count - forwards == sum(reached_first)
    np.testing.assert_allclose(after, describe_regions(plain, env, regions), rtol=1e-5, atol=1e-6)
    # a later epoch finds them in the other order: the crops the second box reaches are new, the rest are served
    later = environment(5, boxes, image_id="corners")
    later.paint(later.boxes[1], found=1)
    later.paint(later.boxes[0], found=0)
    forwards = cached.forward_count
    both = describe_regions(cached, later, regions)
    assert cached.forward_count - forwards == sum(reached_second)
    np.testing.assert_allclose(both, describe_regions(plain, later, regions), rtol=1e-5, atol=1e-6)
    assert not np.allclose(both[4], after[4])                   # the down-right crop did change


def test_second_test_pass_from_the_cache_gives_the_same_detections(backbone, learner):
    plain = ImageZoomsFeatures(backbone=backbone, cache_mb=0)
    cached = ImageZoomsFeatures(backbone=backbone, cache_mb=64)
    agent = TrainedAgent(learner)
    reference = run_searches([environment(seed) for seed in (3, 4)], agent, plain, 3, False)
    run_searches([environment(seed) for seed in (3, 4)], agent, cached, 3, False)
    forwards = cached.forward_count
    again = run_searches([environment(seed) for seed in (3, 4)], agent, cached, 3, False)
    assert cached.forward_count == forwards                 # every region from the cache
    assert_same_detections(again, reference, score_tolerance=1e-2)


def test_training_with_the_cache_stores_the_same_transitions(backbone):
    """Two epochs on one image (the second served from the cache) store the same transitions as without cache."""
    memories = []
    for cache_mb in (64, 0):
        features = ImageZoomsFeatures(backbone=backbone, cache_mb=cache_mb)
        learner = QLearner(build_q_network(STATE_SIZE, seed=1), learning_rate=1e-4, batch_size=3)
        memory, rng, stats = ReplayMemory(12, STATE_SIZE), np.random.default_rng(0), new_training_stats()
        for _ in range(2):
            env = environment(7, boxes=[[10, 10, 70, 60], [60, 40, 115, 90]], image_id="trained")
            train_image(env, features, learner, memory, rng, 1.0, 4, stats)   # ε = 1: actions from rng only
        memories.append(memory)
        if cache_mb:
            assert features.cache.hits > 0
    cached, plain = memories
    assert cached.pos == plain.pos and cached.full == plain.full
    for name in ("actions", "rewards", "terminals"):
        np.testing.assert_array_equal(getattr(cached, name), getattr(plain, name))
    for name in ("states", "next_states"):
        np.testing.assert_allclose(getattr(cached, name), getattr(plain, name), rtol=2**-10, atol=1e-6)


# -- memory bound -----------------------------------------------------------------------------------------------

class ReferenceLRU:
    """The obvious LRU: an ordered dict, oldest first, evicting until the stored bytes fit."""

    def __init__(self, limit_bytes):
        self.limit_bytes, self.entries = limit_bytes, OrderedDict()

    def get(self, key):
        if key in self.entries:
            self.entries.move_to_end(key)
            return self.entries[key]
        return None

    def put(self, key, nbytes):
        if self.limit_bytes <= 0 or key in self.entries:
            return
        self.entries[key] = nbytes
        while sum(self.entries.values()) > self.limit_bytes:
            self.entries.popitem(last=False)


def test_cache_bytes_never_exceed_the_limit_and_evict_least_recently_used():
    cache = DescriptorCache(limit_mb=3 * DESCRIPTOR_BYTES / 2**20)       # room for exactly three descriptors
    descriptors = {k: np.full(DESCRIPTOR_SIZE, k, dtype=np.float32) for k in range(5)}
    for k in range(3):
        cache.put(k, descriptors[k])
    assert cache.bytes == cache.limit_bytes and list(cache.entries) == [0, 1, 2]
    assert cache.get(0)[0] == 0                             # 0 becomes the most recent
    cache.put(3, descriptors[3])                            # evicts 1, the least recently used
    assert list(cache.entries) == [2, 0, 3] and cache.get(1) is None
    assert cache.bytes <= cache.limit_bytes


def test_cache_follows_the_reference_lru_on_random_traffic():
    rng = np.random.default_rng(0)
    limit_mb = 5.5 * DESCRIPTOR_BYTES / 2**20
    cache, reference = DescriptorCache(limit_mb), ReferenceLRU(int(limit_mb * 2**20))
    small = np.zeros(DESCRIPTOR_SIZE // 4, dtype=np.float32)          # entries of two sizes
    large = np.zeros(DESCRIPTOR_SIZE, dtype=np.float32)
    for _ in range(400):
        key = int(rng.integers(12))
        if rng.random() < 0.5:
            assert (cache.get(key) is None) == (reference.get(key) is None)
        else:
            descriptor = small if key % 3 == 0 else large
            cache.put(key, descriptor)
            reference.put(key, stored_bytes(descriptor))
        assert list(cache.entries) == list(reference.entries)
        assert cache.bytes == sum(value.nbytes for value in cache.entries.values()) <= cache.limit_bytes


def test_features_cache_stays_within_its_limit(backbone):
    features = ImageZoomsFeatures(backbone=backbone, cache_mb=2 * DESCRIPTOR_BYTES / 2**20)
    env = environment(5)
    regions = regions_of(env)[:3]
    describe_regions(features, env, regions)
    assert len(features.cache.entries) == 2 and features.cache.bytes <= features.cache.limit_bytes
    forwards = features.forward_count
    describe_regions(features, env, regions[-2:])           # the two most recent: kept
    assert features.forward_count == forwards
    describe_regions(features, env, regions[:1])            # the oldest: evicted, computed again
    assert features.forward_count == forwards + 1


def test_zero_limit_disables_the_cache(backbone):
    features = ImageZoomsFeatures(backbone=backbone, cache_mb=0)
    env = environment(6)
    describe_regions(features, env, regions_of(env)[:2])
    describe_regions(features, env, regions_of(env)[:2])
    assert features.cache.bytes == 0 and not features.cache.entries and features.forward_count == 4


# -- lockstep searches --------------------------------------------------------------------------------------------

def assert_same_detections(trajectories, reference, score_tolerance):
    assert len(trajectories) == len(reference)
    for steps, expected in zip(trajectories, reference):
        assert [(s["region"], s["action"], s["search"], s["step"], s["triggered"]) for s in steps] == \
               [(s["region"], s["action"], s["search"], s["step"], s["triggered"]) for s in expected]
        np.testing.assert_allclose([s["score"] for s in steps], [s["score"] for s in expected],
                                   rtol=0, atol=score_tolerance)


@pytest.fixture(scope="module")
def triggering_agent():
    """A random Q-network whose trigger value sits among the others, so searches both move and trigger."""
    model = build_q_network(STATE_SIZE, seed=5)
    kernel, bias = model.layers[-1].get_weights()
    bias[TRIGGER] = 0.28                                    # random Q-values: trigger about -0.15, others ±0.2
    model.layers[-1].set_weights([kernel, bias])
    return TrainedAgent(QLearner(model))


def test_lockstep_searches_equal_one_image_at_a_time(backbone, triggering_agent):
    features = ImageZoomsFeatures(backbone=backbone, cache_mb=0)
    shapes = [(120, 96), (96, 120), (140, 80)]

    def environments():
        return [environment(10 + index, width=w, height=h) for index, (w, h) in enumerate(shapes)]

    together = run_searches(environments(), triggering_agent, features, 4, only_first_object=False)
    alone = [run_searches([env], triggering_agent, features, 4, only_first_object=False)[0]
             for env in environments()]
    assert_same_detections(together, alone, score_tolerance=1e-5)
    assert all(len(steps) == 4 for steps in together)
    triggered = [step["triggered"] for steps in together for step in steps]
    assert any(triggered) and not all(triggered)            # both branches (move, trigger and paint) ran


def test_states_of_many_environments_equal_their_single_states(backbone):
    features = ImageZoomsFeatures(backbone=backbone, cache_mb=0)
    environments = [environment(20 + k) for k in range(3)]
    for env, action in zip(environments, (0, 3, 4)):
        env.move(action)
    together = make_states(features, environments)
    alone = np.concatenate([make_states(features, [env]) for env in environments])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)


def test_training_trajectory_names_the_painted_object(backbone):
    """A drawn training search knows what the image looked like: a correct trigger lists the object it painted."""
    features = ImageZoomsFeatures(backbone=backbone, cache_mb=0)
    learner = QLearner(build_q_network(STATE_SIZE, seed=1), learning_rate=1e-4, batch_size=3)
    big, small = [2, 2, 118, 94], [80, 60, 100, 80]       # the whole image covers the big one: a forced trigger
    env = environment(5, boxes=[big, small])
    trajectory = train_image(env, features, learner, ReplayMemory(50, STATE_SIZE), np.random.default_rng(0), 1.0, 2,
                             new_training_stats())
    first = trajectory[0]
    assert first["triggered"] and first["painted"] == [list(env.painted_boxes[0])]
    assert env.painted_boxes[0] == (2, 2, 118, 94)
    assert all(step["painted"] == [] for step in trajectory if not step["triggered"])
