"""Where one replay update's time goes: ``QLearner.update`` at the paper's settings split into its parts, each timed
alone and against its own floor, in this run on this machine.

    python experiments/update_profile.py            # about 2 minutes on a 2-core CPU; update_profile.json

The paper's update (minibatch 100, 25,112 → 1024 → 1024 → 6, float32) is, in order:

- ``targets``: Q(s) and Q(s′) in inference mode, 2 × 100 states (the regression values);
- ``gradients``: Q(s) in training mode (dropout) and the backward pass to every weight's gradient;
- ``adam``: Adam's element-wise step over the 26.8 million parameters (25.7 million in the first layer): it reads
  each parameter, its gradient and two moments and writes three of them back, about 0.75 GB of memory traffic,
  with almost no arithmetic;
- ``update``: the three together, as ``QLearner.update`` runs them (one XLA program), and the same without XLA
  (TensorFlow's own kernels, oneDNN's on x86).

Each part is one compiled function timed alone (medians, after a warm-up), its floor beside it: the products' floating-
point operations at the float32 matrix-multiply rate measured in this run, and for ``adam`` its bytes at the memory
bandwidth of an element-wise pass over arrays of the same size measured here. The parts timed alone add up to more
than the update: in the update, s's first-layer product serves both Q(s) and the training pass (dropout comes after
it; XLA computes it once), so its floor counts that product once (``benchmark.update_flops``).
"""
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the top-level modules

from experiments.benchmark import STATE_SIZE, MatmulTimer, adam_bytes, log, machine, update_flops  # noqa: E402
from runs.runtime import OneLineParser, import_tensorflow, main_guard, write_json  # noqa: E402

output = "update_profile.json"
repeats = 15                            # each part timed this many times (median counts)
batch_size = 100


def median_seconds(function, repeats):
    function()                                          # compiling, caches
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - started)
    return float(np.median(seconds))


def profile(repeats):
    tf = import_tensorflow()
    from reinforcement import HIDDEN_UNITS, Minibatch, NUM_ACTIONS, QLearner, build_q_network, regression_values
    rng = np.random.default_rng(0)
    batch = Minibatch(rng.random((batch_size, STATE_SIZE), np.float32), rng.integers(0, NUM_ACTIONS, batch_size),
                      rng.choice([-1.0, 1.0, 3.0, -3.0], batch_size), rng.random((batch_size, STATE_SIZE), np.float32),
                      (rng.random(batch_size) < 0.2).astype(np.float32))
    args = (batch.states, batch.actions.astype(np.int32), batch.rewards.astype(np.float32), batch.next_states,
            batch.terminals.astype(np.float32))
    learner = QLearner(build_q_network(STATE_SIZE, seed=0), 0.9, 1e-6, batch_size)
    model, variables = learner.model, learner.model.trainable_variables
    compiled = dict(jit_compile=True, reduce_retracing=True)

    @tf.function(**compiled)
    def targets(states, actions, rewards, next_states, terminals):
        return regression_values(model(states, training=False), model(next_states, training=False), actions,
                                 rewards, terminals, learner.gamma)

    values = targets(*args)

    @tf.function(**compiled)
    def gradients(states, values):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(values - model(states, training=True)))
        return tape.gradient(loss, variables)

    grads = gradients(batch.states, values)

    @tf.function(**compiled)
    def adam(grads):
        learner.optimizer.apply_gradients(zip(grads, variables))

    without_xla = tf.function(learner._update_graph, reduce_retracing=True)
    sizes = [int(np.prod(variable.shape)) for variable in variables]
    timer = MatmulTimer()
    rate = float(np.median([timer.rate() for _ in range(5)]))
    parts = {"targets": lambda: targets(*args)[0, 0].numpy(),
             "gradients": lambda: gradients(batch.states, values)[-1][0].numpy(),
             "adam": lambda: (adam(grads), variables[-1][0].numpy()),
             "update": lambda: learner.update(batch),
             "update_without_xla": lambda: float(without_xla(*args))}
    seconds = {name: median_seconds(part, repeats) for name, part in parts.items()}
    bandwidth = float(np.median([timer.bandwidth() for _ in range(5)]))
    layer_sizes = (STATE_SIZE, HIDDEN_UNITS, HIDDEN_UNITS, NUM_ACTIONS)
    macs = sum(a * b for a, b in zip(layer_sizes[:-1], layer_sizes[1:]))
    update = update_flops(batch_size, layer_sizes)
    targets = 2 * 2 * batch_size * macs
    flops = {"targets": targets, "gradients": update - targets + 2 * batch_size * layer_sizes[0] * layer_sizes[1],
             "update": update}                          # gradients timed alone: with s's first-layer product
    adam = adam_bytes(layer_sizes)                      # reads parameter, gradient, m, v; writes parameter, m, v
    floors = {name: flop / rate for name, flop in flops.items()} | {"adam": adam / bandwidth}
    whole = floors["update"] + floors["adam"]             # float32 arithmetic and Adam's memory traffic
    floors |= dict.fromkeys(("update", "update_without_xla"), whole)
    return {"seconds": seconds, "floors_s": floors,
            "over_floor": {name: seconds[name] / floors[name] for name in seconds},
            "matmul_gflops": rate / 1e9, "stream_gb_per_s": bandwidth / 1e9, "adam_gb": adam / 1e9,
            "parameters": sum(sizes), "threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                                                  "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}}


def main(argv=None):
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--output", default=output)
    settings = parser.parse_args(argv)
    log(f"profiling QLearner.update at minibatch {batch_size}, {settings.repeats} repeats of each part")
    report = profile(settings.repeats) | {"machine": machine()}
    write_json(settings.output, report)
    print(f"\n{'part':22s} {'seconds':>8s} {'floor':>8s} {'ratio':>6s}")
    for name, seconds in report["seconds"].items():
        print(f"{name:22s} {seconds:8.4f} {report['floors_s'][name]:8.4f} {report['over_floor'][name]:6.2f}")
    print(f"\nmatmul {report['matmul_gflops']:.0f} GFLOP/s, element-wise pass {report['stream_gb_per_s']:.1f} GB/s "
          f"(Adam moves {report['adam_gb']:.2f} GB), threads {report['threads']}; {report['machine']['cpu']}; "
          f"details in {settings.output}")
    return report


if __name__ == "__main__":
    main_guard(main)
