"""experiments/benchmark.py measures the training epochs with the demo's settings (its figures are only meaningful then)."""
import pytest

import image_zooms_training
from experiments import benchmark
from conftest import STATE_SIZE

# a training phase's option timings: a 0.5 s step (10 steps in 5 s), the paper's update 0.1 s
OPTIONS = {"option_updates": {"trigger_targets": {"option_s": 0.15, "paper_s": 0.1, "carries": ["trigger_values"]},
                              "oracle": {"option_s": 0.08, "paper_s": 0.1, "carries": ["upper_bound_values"]},
                              "expert_margin": {"option_s": 0.12, "paper_s": 0.1, "carries": ["expert_actions"]}},
           "carried_fields_s": {"trigger_values": 0.0, "upper_bound_values": 0.07, "expert_actions": 0.07},
           "refine": {"add_s": 0.0002, "fit_s": 4.0, "epoch_steps": 400, "apply_region_s": 0.0004, "score_rate": 0.5,
                      "score_fit_s": 3.0, "score_apply_region_s": 0.0001, "run_steps_per_image": 100}}
# a testing phase's: 2 images, 20 regions; an image's maps 0.3 s, a box pooled 0.5 ms
TEST_COSTS = {"score_boxes": {"map_s": 0.3, "box_s": 0.0005}, "test_images": 2, "test_regions": 20}


def test_benchmark_epochs_use_the_demo_settings():
    demo = image_zooms_training.DEMO
    assert benchmark.epochs_learning_rate == demo["learning_rate"]
    assert benchmark.training_epochs == demo["epochs"]
    assert benchmark.path_vgg == demo["path_vgg"] and benchmark.path_voc == demo["path_voc"]


def test_later_epoch_ratio_is_last_over_first():
    rows = [{"vgg_forwards": 40}, {"vgg_forwards": 30}, {"vgg_forwards": 10}]
    train = {"training_epochs": rows, "update_2016_s": 2.0, "update_project_s": 0.5, "update_over_floor": 1.5,
             "train_project": {"steps_per_s": 3.0, "over_floor": 1.4, "seconds": 5.0, "steps": 10,
                               "runs": [{"floor": {"vgg_batch_1_s": 0.1}}]}, "train_2016": {"steps_per_s": 0.1},
             "training_peak_rss_mb": 1.0, "overlap": {"serial_s": 0.2, "concurrent_s": 0.2},
             **OPTIONS}
    test = {"test_region_s": 0.2, "floor_image_s": 0.1, "testing_peak_rss_mb": 1.0,
            "bfloat16": {"batch_1": {"float32": 0.12, "bfloat16": 0.03}}, **TEST_COSTS}
    figures = benchmark.figures_of(train, test)
    assert figures["vgg_forwards_later_epoch_ratio"] == 0.25
    assert figures["update_speedup_vs_2016"] == 4.0 and figures["test_region_over_floor"] == 2.0
    assert figures["vgg_bfloat16_speedup_batch_1"] == pytest.approx(4.0)
    assert figures["train_step_over_floor"] == 1.4
    # refine: (0.2 ms kept per step + a 4 s fit shared by 400 steps) over a 0.5 s step; 0.4 ms over a 0.2 s region
    assert figures["option_refine_step_cost"] == pytest.approx(0.0204)
    assert figures["option_refine_region_cost"] == pytest.approx(0.002)
    # score head: (half the steps' 0.5 ms box pooled + an image's 0.3 s maps shared by its 100 steps of a run + a 3 s
    # fit shared by 400 steps) over a 0.5 s step; (0.3 s maps shared by 10 regions + 0.5 ms pooled + 0.1 ms of the
    # head) over a 0.2 s region
    assert figures["option_score_step_cost"] == pytest.approx(0.0215)
    assert figures["option_score_region_cost"] == pytest.approx(0.153)


def test_the_step_floor_is_timed_through_the_loop_beside_every_third_description_and_kept_apart():
    class Timer:
        def floor(self, batch, repeats):
            assert batch == 100
            return benchmark.update_floor_s(batch, 1e12, 1e11), 1e12

    class Features:
        name = "features"

        def describe(self, items):
            return [len(items)]

        def forward(self, crops):
            assert crops.shape == (1, 224, 224, 3)

    beside = benchmark.StepFloorBeside(Features(), Timer(), every=3, batch_size=100)
    assert [beside.describe([None] * 2) for _ in range(7)] == [[2]] * 7     # the loop's descriptions, unchanged
    assert beside.name == "features" and len(beside.forward_times) == len(beside.update_floors) == 3  # calls 0, 3, 6
    assert beside.seconds >= sum(beside.forward_times)
    floor = beside.floor()
    assert floor["update_floor_s"] == pytest.approx(benchmark.update_flops(100) / 1e12
                                                    + benchmark.adam_bytes() / 1e11) and floor["samples"] == 3
    assert floor["step_s"] == pytest.approx(floor["vgg_batch_1_s"] + floor["update_floor_s"])


def test_overlap_times_both_ways_and_runs_each_call():
    calls = []
    overlap = benchmark.time_overlap(lambda: calls.append("forward"), lambda: calls.append("update"), repeats=3)
    assert calls.count("forward") == calls.count("update") == 1 + 2 * 3      # warm-up, then serial and concurrent
    assert overlap["serial_s"] >= 0 and overlap["concurrent_s"] >= 0
    assert len(overlap["serial_times_s"]) == len(overlap["concurrent_times_s"]) == 3


def test_the_update_floor_counts_the_shared_first_layer_product_once_and_adams_traffic():
    """Q(s) for the targets and the training pass share s's first-layer product (dropout follows it): 3 products
    of the first layer, not 4; Adam moves 7 float32 values a parameter."""
    b, sizes = 10, (100, 20, 20, 6)
    first, rest = 100 * 20, 20 * 20 + 20 * 6
    expected = 2 * (2 * b * (first + rest) + b * rest + b * (first + rest) + b * rest)
    assert benchmark.update_flops(b, sizes) == expected
    assert benchmark.adam_bytes(sizes) == 7 * 4 * (101 * 20 + 21 * 20 + 21 * 6)
    assert benchmark.update_floor_s(b, 1e9, 1e8, sizes) == pytest.approx(expected / 1e9 + benchmark.adam_bytes(sizes) / 1e8)


@pytest.mark.usefixtures("small_q_network")
def test_the_matmul_timer_measures_rate_bandwidth_and_the_update_floor_beside():
    timer = benchmark.MatmulTimer(size=64)
    floor, rate = timer.floor(100, repeats=1)
    assert rate > 0 and timer.bandwidth() > 0 and floor > benchmark.update_flops(100) / rate


def test_the_overlap_figure():
    rows = [{"vgg_forwards": 4}]
    train = {"training_epochs": rows, "update_2016_s": 2.0, "update_project_s": 0.5, "update_over_floor": 1.5,
             "train_project": {"steps_per_s": 3.0, "over_floor": 1.4, "seconds": 5.0, "steps": 10,
                               "runs": [{"floor": {"vgg_batch_1_s": 0.1}}]}, "train_2016": {"steps_per_s": 0.1},
             "training_peak_rss_mb": 1.0, "overlap": {"serial_s": 0.3, "concurrent_s": 0.2},
             **OPTIONS}
    test = {"test_region_s": 0.2, "floor_image_s": 0.1, "testing_peak_rss_mb": 1.0, "bfloat16": {}, **TEST_COSTS}
    figures = benchmark.figures_of(train, test)
    assert figures["overlap_speedup"] == pytest.approx(1.5)


def test_option_step_costs_are_added_seconds_over_the_step():
    train = {"train_project": {"seconds": 5.0, "steps": 10}, **OPTIONS}
    costs = benchmark.option_step_costs(train)
    assert costs["trigger_targets"] == pytest.approx(0.1)                 # (0.15 - 0.1) / 0.5
    assert costs["oracle"] == pytest.approx(0.1)                          # (0.08 - 0.1 + 0.07) / 0.5
    assert costs["expert_margin"] == pytest.approx(0.18)                  # (0.12 - 0.1 + 0.07) / 0.5
    assert set(benchmark.option_how(train)) == {f"option_{name}_step_cost" for name in costs}


@pytest.mark.usefixtures("small_q_network")
def test_option_updates_time_each_option_beside_the_paper():
    import numpy as np
    from types import SimpleNamespace
    from reinforcement import Minibatch, build_q_network
    from conftest import STATE_SIZE
    rng = np.random.default_rng(0)
    batches = [Minibatch(rng.normal(size=(4, STATE_SIZE)).astype(np.float32), rng.integers(0, 6, 4),
                         rng.normal(size=4), rng.normal(size=(4, STATE_SIZE)).astype(np.float32),
                         (rng.random(4) < 0.3).astype(np.float32))]
    settings = SimpleNamespace(gamma=0.9, learning_rate=1e-4, update_repeats=2)
    names = ("trigger_targets", "oracle")      # the two whose minibatches differ (each option compiles: seconds)
    timings = benchmark.time_option_updates(settings, {"weights": build_q_network(STATE_SIZE, seed=0).get_weights()}, batches,
                                            names)
    assert set(timings) == set(names)
    assert all(timing["option_s"] > 0 and timing["paper_s"] > 0 for timing in timings.values())
    assert timings["trigger_targets"]["carries"] == ["trigger_values"]
    assert timings["oracle"]["carries"] == ["upper_bound_values"]


def test_option_batches_carry_the_fields_of_each_learner():
    import numpy as np
    from types import SimpleNamespace
    from reinforcement import EXPERT_ACTION, NUM_ACTIONS, TRIGGER_VALUE, UPPER_BOUND_VALUES, Minibatch
    rng = np.random.default_rng(0)
    batch = Minibatch(np.zeros((5, 3), np.float32), np.zeros(5, np.int32), np.zeros(5, np.float32),
                      np.zeros((5, 3), np.float32), np.zeros(5, np.float32))
    assert benchmark.option_batch(SimpleNamespace(carries=()), batch, rng).carried == {}     # the paper's
    extended = benchmark.option_batch(SimpleNamespace(carries=(TRIGGER_VALUE, EXPERT_ACTION, UPPER_BOUND_VALUES)),
                                      batch, rng)
    assert extended.states is batch.states and batch.carried == {}
    for field in (TRIGGER_VALUE, EXPERT_ACTION, UPPER_BOUND_VALUES):
        values = extended.carried[field.name]
        assert values.shape == (5, *field.shape) and values.dtype == field.dtype
    assert ((extended.carried["expert_actions"] >= 0) & (extended.carried["expert_actions"] < NUM_ACTIONS)).all()


def test_carried_fields_are_timed_each():
    from types import SimpleNamespace
    from reinforcement import TRANSITION_FIELDS, ZoomEnvironment
    data = SimpleNamespace(timing_records=["a", "b"],
                           environment=lambda record: ZoomEnvironment(100, 80, [[10, 10, 60, 50]], 0.75))
    times = benchmark.time_carried_fields(SimpleNamespace(gamma=0.9, number_of_steps=10), data, repeats=1)
    assert set(times) == set(TRANSITION_FIELDS) and all(seconds > 0 for seconds in times.values())


@pytest.mark.usefixtures("small_q_network")
def test_the_2016_learner_takes_minibatches_and_acts_greedily():
    import numpy as np
    from reinforcement import NUM_ACTIONS, ReplayMemory, build_q_network
    from conftest import STATE_SIZE
    rng = np.random.default_rng(0)
    memory = ReplayMemory(6, STATE_SIZE)
    for _ in range(6):
        memory.add(rng.normal(size=STATE_SIZE), int(rng.integers(NUM_ACTIONS)), 1.0, rng.normal(size=STATE_SIZE),
                   False, {})
    learner = benchmark.Learner2016(build_q_network(STATE_SIZE, seed=0), 0.9, 1e-4, batch_size=4)
    batch = memory.sample(learner.batch_size, rng)
    learner.warm_up(batch)
    assert np.isfinite(learner.update(batch)) and learner.updates[0][0] is batch and learner.carries == ()
    action, q_values = learner.act(batch.states[0], {})
    assert q_values.shape == (NUM_ACTIONS,) and action == int(np.argmax(q_values))


@pytest.mark.usefixtures("small_q_network")
def test_the_update_profile_times_every_part_against_its_floor(tmp_path):
    from experiments import update_profile
    from reinforcement import HIDDEN_UNITS as H
    report = update_profile.main(["--repeats", "1", "--output", str(tmp_path / "profile.json")])
    parts = {"targets", "gradients", "adam", "update", "update_without_xla"}
    assert set(report["seconds"]) == set(report["floors_s"]) == set(report["over_floor"]) == parts
    assert all(seconds > 0 for seconds in report["seconds"].values())
    shared = 2 * 100 * 25112 * H / (report["matmul_gflops"] * 1e9)          # s's first-layer product, once
    assert report["floors_s"]["update"] == pytest.approx(report["floors_s"]["targets"] + report["floors_s"]["gradients"]
                                                         - shared + report["floors_s"]["adam"])
    assert report["parameters"] == 25112 * H + H + H * H + H + H * 6 + 6
    assert (tmp_path / "profile.json").is_file()


def test_pooled_box_descriptors_are_timed_per_image_and_per_box():
    """The score head's cost in the benchmark: an image's forward to pool4/pool5, and a box pooled from its maps."""
    import numpy as np
    from types import SimpleNamespace
    from features import ImageZoomsFeatures
    environments = [SimpleNamespace(image=np.full((64, 96, 3), value, np.float32)) for value in (10.0, 200.0)]
    trajectories = [[{"region": [0, 0, 96, 64]}, {"region": [8, 8, 40, 40]}]] * 2
    times = benchmark.time_pooled_boxes(ImageZoomsFeatures("random"), environments, trajectories)
    assert 0 < times["box_s"] < times["map_s"]
