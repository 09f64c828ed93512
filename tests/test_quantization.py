"""Tests for rdc_keras.layers.quantization: quantizer semantics, dither format, Keras citizenship.

Golden values come from independent NumPy / pure-Python computations (nearest centre by argmin,
the analytic derivative of the soft assignment, a big-integer re-implementation of the dither).
"""

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats
from tensorflow.python.framework import op_def_registry

from rdc_keras import layers as rdc_layers
from rdc_keras.layers import UniformQuantizer, UniversalQuantizer, dither
from rdc_keras.tfkeras import keras

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------- independent references


def np_centers(L):
    return np.array([-1.0 + 2.0 * level / (L - 1) for level in range(L)])


def np_nearest(y, L):
    """Index of the nearest centre by brute-force argmin in float64."""
    return np.argmin(np.abs(np.asarray(y, np.float64)[..., None] - np_centers(L)), axis=-1)


def np_soft_derivative(v, L, T):
    """d/dv sum_l c_l softmax_l(-|v - c_l|/T), derived by hand: Cov_p(c, da/dv)."""
    c = np_centers(L)
    v = np.asarray(v, np.float64)[..., None]
    a = -np.abs(v - c) / T
    p = np.exp(a - a.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    da = -np.sign(v - c) / T
    return np.sum(c * p * (da - np.sum(p * da, axis=-1, keepdims=True)), axis=-1)


def py_dither(seeds, dim, L):
    """The documented dither algorithm in pure-Python big integers (no TF, no numpy uint64)."""
    mask = 2**64 - 1

    def mix(z):
        z ^= z >> 30
        z = (z * 0xBF58476D1CE4E5B9) & mask
        z ^= z >> 27
        z = (z * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)

    scale = np.float32(np.float32(2.0 / (L - 1)) * np.float32(2.0**-24))
    out = np.empty((len(seeds), dim), np.float32)
    for i, seed in enumerate(seeds):
        key = mix(int(seed) & mask)
        for j in range(dim):
            k = mix((key + (j + 1) * 0x9E3779B97F4A7C15) & mask) >> 40
            out[i, j] = np.float32(k - 2**23) * scale
    return out


def run_python(code, *args, timeout=120):
    """Runs code in a fresh interpreter (repo on the path) and returns its last stdout line."""
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def random_y(shape, seed, low=-1.0, high=1.0):
    return tf.random.stateless_uniform(shape, (seed, 7), low, high, dtype=tf.float32)


# ---------------------------------------------------------------- forward semantics


@pytest.mark.parametrize("L", [2, 3, 4, 8])
def test_centers_are_uniform_on_minus_one_one(L):
    q = UniformQuantizer(L)
    assert q.centers.dtype == tf.float32
    np.testing.assert_array_equal(q.centers.numpy(), np_centers(L).astype(np.float32))
    assert q.step == pytest.approx(2.0 / (L - 1))


@pytest.mark.parametrize("L", [2, 3, 4, 8])
def test_forward_matches_numpy_nearest_centre(L):
    y = random_y([200, 5], L, -1.5, 1.5).numpy()
    # Keep away from decision boundaries, where float32 rounding of t is allowed to differ.
    boundaries = (np_centers(L)[:-1] + np_centers(L)[1:]) / 2
    far = np.min(np.abs(y[..., None] - boundaries), axis=-1) > 1e-5
    y = y[far.all(axis=1)]
    expected = np_nearest(y, L)
    q = UniformQuantizer(L)
    idx = q.indices(y)
    assert idx.dtype == tf.int32
    np.testing.assert_array_equal(idx.numpy(), expected)
    np.testing.assert_array_equal(q(y).numpy(), np_centers(L).astype(np.float32)[expected])
    np.testing.assert_array_equal(q.dequantize(idx).numpy(), q(y).numpy())


@pytest.mark.parametrize(
    "L, boundaries, higher",
    [
        (2, [0.0], [1]),
        (3, [-0.5, 0.5], [1, 2]),
        (5, [-0.75, -0.25, 0.25, 0.75], [1, 2, 3, 4]),
    ],
)
def test_ties_go_to_the_higher_centre(L, boundaries, higher):
    y = tf.constant([boundaries], tf.float32)
    np.testing.assert_array_equal(UniformQuantizer(L).indices(y).numpy(), [higher])
    np.testing.assert_array_equal(
        UniformQuantizer(L)(y).numpy(), [np_centers(L).astype(np.float32)[higher]]
    )
    # Universal: the tie is on y + u; split each boundary as y = b - u with exact values.
    u = tf.constant([[0.125] * len(boundaries)], tf.float32)
    enc = UniversalQuantizer(L).encode(y - u, u)
    np.testing.assert_array_equal(enc.numpy(), [higher])


def test_out_of_range_values_go_to_end_centres():
    q = UniformQuantizer(4)
    np.testing.assert_array_equal(q.indices([[-7.0, -1.2, 1.2, 1e9]]).numpy(), [[0, 0, 3, 3]])


def test_universal_call_equals_decode_of_encode_exactly():
    uq = UniversalQuantizer(4)
    y = random_y([64, 3], 1)
    u = dither(tf.range(64, dtype=tf.int64), 3, 4)
    expected = uq.decode(uq.encode(y, u), u)
    np.testing.assert_array_equal(uq(y, u).numpy(), expected.numpy())
    centers = np_centers(4).astype(np.float32)
    np.testing.assert_array_equal(
        expected.numpy(), centers[np_nearest(y.numpy() + u.numpy(), 4)] - u.numpy()
    )


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize("L, T", [(3, 1.0), (4, 2.0), (8, 4.0), (2, 0.3)])
def test_gradient_matches_numpy_soft_derivative(L, T):
    y = random_y([32, 3], 10 + L)
    w = random_y([32, 3], 20 + L)  # upstream gradient
    q = UniformQuantizer(L, temperature=T)
    with tf.GradientTape() as tape:
        tape.watch(y)
        loss = tf.reduce_sum(w * q(y))
    grad = tape.gradient(loss, y).numpy()
    expected = w.numpy() * np_soft_derivative(y.numpy(), L, T)
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-6)
    # The soft gradient is not the identity straight-through estimator.
    assert not np.allclose(grad, w.numpy(), atol=1e-2)


def test_universal_gradient_is_soft_derivative_at_y_plus_dither():
    L, T = 4, 2.0
    y = random_y([16, 5], 3)
    u = dither(tf.range(16, dtype=tf.int64) + 100, 5, L)
    uq = UniversalQuantizer(L, temperature=T)
    with tf.GradientTape() as tape:
        tape.watch(y)
        out = uq(y, u)
    grad = tape.gradient(out, y).numpy()
    np.testing.assert_allclose(
        grad, np_soft_derivative(y.numpy() + u.numpy(), L, T), rtol=1e-5, atol=1e-6
    )


# ---------------------------------------------------------------- subtractive dither


@pytest.mark.parametrize("L", [2, 3, 4, 8])
def test_subtractive_dither_error_is_bounded_uniform_and_uncorrelated(L):
    n, d = 4000, 4
    delta = 2.0 / (L - 1)
    y = tf.tanh(tf.random.stateless_normal([n, d], (L, 1)))
    u = dither(tf.range(n, dtype=tf.int64) + 1000 * L, d, L)
    uq = UniversalQuantizer(L)
    e = (uq.decode(uq.encode(y, u), u) - y).numpy().astype(np.float64).ravel()
    assert np.all(np.abs(e) <= delta / 2 * (1 + 1e-6))
    assert np.var(e) == pytest.approx(delta**2 / 12, rel=0.03)
    assert abs(np.mean(e)) < 4 * delta / math.sqrt(12 * e.size)
    assert abs(np.corrcoef(e, y.numpy().ravel())[0, 1]) < 0.04
    assert stats.kstest(e, "uniform", args=(-delta / 2, delta)).pvalue > 1e-3


@pytest.mark.parametrize("y0", [-0.999, -0.3, 0.0, 0.5, 0.99])
def test_dither_error_is_uniform_for_each_fixed_y(y0):
    L, n = 3, 4000
    delta = 2.0 / (L - 1)
    u = dither(tf.range(n, dtype=tf.int64), 1, L)
    y = tf.fill([n, 1], tf.constant(y0, tf.float32))
    uq = UniversalQuantizer(L)
    e = (uq.decode(uq.encode(y, u), u) - y).numpy().astype(np.float64).ravel()
    assert np.var(e) == pytest.approx(delta**2 / 12, rel=0.05)
    assert abs(np.mean(e)) < 4 * delta / math.sqrt(12 * n)


# ---------------------------------------------------------------- dither function


def test_dither_matches_the_documented_algorithm_bit_for_bit():
    seeds = [0, 1, 2, 12345, -1, -(2**63), 2**63 - 1, 987654321987]
    for L, dim in [(3, 3), (4, 7), (8, 10), (2, 1)]:
        got = dither(tf.constant(seeds, tf.int64), dim, L).numpy()
        assert got.dtype == np.float32 and got.shape == (len(seeds), dim)
        np.testing.assert_array_equal(got.view(np.uint32), py_dither(seeds, dim, L).view(np.uint32))


def test_dither_rows_depend_only_on_their_own_seed():
    seeds = tf.constant([5, 17, 5, 900], tf.int64)
    full = dither(seeds, 6, 4).numpy()
    np.testing.assert_array_equal(full[0], full[2])
    for i in range(4):
        np.testing.assert_array_equal(full[i], dither(seeds[i : i + 1], 6, 4).numpy()[0])
    int32 = dither(tf.constant([5, 17, 5, 900], tf.int32), 6, 4).numpy()
    np.testing.assert_array_equal(int32, full)
    # A wider row extends the narrower one (column j depends only on seed and j).
    np.testing.assert_array_equal(dither(seeds, 9, 4).numpy()[:, :6], full)


@pytest.mark.parametrize("L", [2, 3, 8])
def test_dither_is_uniform_and_decorrelated(L):
    n, d = 4000, 4
    delta = 2.0 / (L - 1)
    u = dither(tf.range(n, dtype=tf.int64), d, L).numpy().astype(np.float64)
    assert u.min() >= -delta / 2 and u.max() < delta / 2
    assert stats.kstest(u.ravel(), "uniform", args=(-delta / 2, delta)).pvalue > 1e-3
    assert abs(np.corrcoef(u[:, 0], u[:, 1])[0, 1]) < 0.06  # across columns
    assert abs(np.corrcoef(u[:-1].ravel(), u[1:].ravel())[0, 1]) < 0.06  # neighbouring seeds


def test_dither_graph_uses_only_stock_stateless_ops():
    fn = tf.function(lambda s: dither(s, 3, 3))
    graph = fn.get_concrete_function(tf.TensorSpec([None], tf.int64)).graph
    op_types = {op.type for op in graph.get_operations()}
    assert all(op_def_registry.get(t) is not None for t in op_types)
    banned = {"PyFunc", "EagerPyFunc", "PyFuncStateless"}
    assert not op_types & banned
    assert not any("Random" in t for t in op_types), op_types


# ---------------------------------------------------------------- rate


def test_rate_of_three_levels_in_three_dims_is_log2_27():
    q = UniformQuantizer(3)
    assert isinstance(q.bits_per_dim, float)
    assert q.rate_bits(3) == pytest.approx(math.log(27) / math.log(2), rel=1e-12)
    assert q.rate_bits(3) == pytest.approx(4.755, abs=5e-4)
    assert UniversalQuantizer(4).rate_bits(10) == pytest.approx(20.0)
    assert UniversalQuantizer(8).bits_per_dim == pytest.approx(3.0)


# ---------------------------------------------------------------- the numpy contract


@pytest.mark.parametrize("num_levels", [2, 3, 4, 5, 8, 256])
def test_numpy_nearest_index_equals_the_layers_rule(num_levels):
    rng = np.random.default_rng(num_levels)
    v = rng.uniform(-1.3, 1.3, 20_000).astype(np.float32)
    centres = rdc_layers.centers(num_levels)
    midpoints = (centres[:-1] + centres[1:]) / 2  # exact ties go to the higher centre
    v = np.concatenate([v, centres, midpoints, [-1.0, 1.0, -5.0, 5.0]]).astype(np.float32)
    expected = UniformQuantizer(num_levels).indices(v).numpy()
    np.testing.assert_array_equal(rdc_layers.nearest_index(v, num_levels), expected)
    np.testing.assert_array_equal(centres, UniformQuantizer(num_levels).centers.numpy())
    # By hand for L = 3 (centres -1, 0, 1): ties at -0.5 and 0.5 go up.
    got = rdc_layers.nearest_index(np.array([-0.75, -0.5, -0.25, 0.5, 0.9]), 3)
    np.testing.assert_array_equal(got, [0, 1, 1, 2, 2])


def test_image_seeds_and_rate_bits():
    np.testing.assert_array_equal(rdc_layers.image_seeds(7, 3), [7, 8, 9])
    np.testing.assert_array_equal(rdc_layers.image_seeds(7, 2, offset=5), [12, 13])
    assert rdc_layers.image_seeds(-(2**62), 1).dtype == np.int64
    assert rdc_layers.rate_bits(3, 3) == pytest.approx(math.log2(27))
    assert rdc_layers.rate_bits(10, 8) == 30.0


def test_send_and_receive_pair_latents_with_their_seeds():
    q = UniversalQuantizer(3)
    y = np.random.default_rng(0).uniform(-1, 1, (6, 4)).astype(np.float32)
    seeds = rdc_layers.image_seeds(11, 6)
    u = dither(seeds, 4, 3)
    indices = q.send(y, seeds)
    np.testing.assert_array_equal(indices.numpy(), q.encode(y, u).numpy())
    np.testing.assert_array_equal(q.receive(indices, seeds).numpy(), q.decode(indices, u).numpy())
    other = q.send(y, seeds + 1)  # another dither moves some indices
    assert (other.numpy() != indices.numpy()).any()


# ---------------------------------------------------------------- Keras citizenship


@pytest.mark.parametrize("cls", [UniformQuantizer, UniversalQuantizer])
def test_config_round_trip_and_no_weights(cls):
    layer = cls(5, temperature=0.25, name="q")
    config = layer.get_config()
    assert config["num_levels"] == 5 and config["temperature"] == 0.25
    clone = cls.from_config(config)
    assert (clone.num_levels, clone.temperature, clone.name) == (5, 0.25, "q")
    revived = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(revived) is cls and revived.get_config() == config
    assert layer.weights == []


def build_functional_model():
    x = keras.Input((4,), name="x")
    u = keras.Input((3,), name="u")
    h = keras.layers.Dense(3, activation="tanh", name="enc")(x)
    z = UniversalQuantizer(3, name="universal")(h, u)
    zz = UniformQuantizer(5, temperature=0.5, name="uniform")(h)
    out = keras.layers.Dense(2, name="dec")(keras.layers.Concatenate()([z, zz]))
    return keras.Model([x, u], out)


def test_functional_model_survives_saved_model_and_keras_formats(tmp_path):
    keras.utils.set_random_seed(0)
    model = build_functional_model()
    x = random_y([8, 4], 5, -3.0, 3.0)
    u = dither(tf.range(8, dtype=tf.int64), 3, 3)
    expected = model([x, u]).numpy()
    # SavedModel: both the Keras reload and the raw TF reload must reproduce the outputs.
    sm_path = str(tmp_path / "sm")
    model.save(sm_path, save_format="tf")
    reloaded = keras.models.load_model(sm_path)
    assert isinstance(reloaded.get_layer("universal"), UniversalQuantizer)
    np.testing.assert_array_equal(reloaded([x, u]).numpy(), expected)
    raw = tf.saved_model.load(sm_path)
    np.testing.assert_array_equal(raw([x, u], training=False).numpy(), expected)
    keras_path = str(tmp_path / "model.keras")
    model.save(keras_path)
    np.testing.assert_array_equal(keras.models.load_model(keras_path)([x, u]).numpy(), expected)


def test_subclassed_model_trains_through_the_quantizer_in_tf_function():
    class Tiny(keras.Model):
        def __init__(self):
            super().__init__()
            self.enc = keras.layers.Dense(3, activation="tanh")
            self.quantizer = UniversalQuantizer(4, temperature=2.0)
            self.dec = keras.layers.Dense(4)

        def call(self, inputs):
            x, u = inputs
            return self.dec(self.quantizer(self.enc(x), u))

    keras.utils.set_random_seed(1)
    model = Tiny()
    x = random_y([16, 4], 8)
    u = dither(tf.range(16, dtype=tf.int64), 3, 4)

    @tf.function
    def grads(x, u):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model([x, u]) - x))
        return tape.gradient(loss, model.trainable_variables)

    g = grads(x, u)
    assert all(v is not None for v in g)
    enc_kernel_grad = g[0].numpy()
    assert np.all(np.isfinite(enc_kernel_grad)) and np.any(enc_kernel_grad != 0)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    history = model.fit([x, u], x, epochs=2, batch_size=8, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


def test_tf_function_with_unknown_batch_matches_eager_and_checks_shapes():
    uq = UniversalQuantizer(3)
    q = UniformQuantizer(3)
    spec = tf.TensorSpec([None, 3], tf.float32)

    @tf.function(input_signature=[spec, spec])
    def both(y, u):
        return uq(y, u), q(y), uq.encode(y, u)

    y = random_y([6, 3], 9)
    u = dither(tf.range(6, dtype=tf.int64), 3, 3)
    a, b, c = both(y, u)
    np.testing.assert_array_equal(a.numpy(), uq(y, u).numpy())
    np.testing.assert_array_equal(b.numpy(), q(y).numpy())
    np.testing.assert_array_equal(c.numpy(), uq.encode(y, u).numpy())
    with pytest.raises(tf.errors.InvalidArgumentError, match="dither shape"):
        both(y, u[:2])


def test_xla_compiled_forward_matches_eager():
    uq = UniversalQuantizer(4)
    y = random_y([64, 3], 4)
    seeds = tf.range(64, dtype=tf.int64)
    signature = [tf.TensorSpec([None, 3], tf.float32), tf.TensorSpec([None], tf.int64)]

    def forward(y, seeds):
        return uq(y, dither(seeds, 3, 4))  # unknown batch: includes the run-time shape assert

    xla = tf.function(forward, input_signature=signature, jit_compile=True)
    np.testing.assert_array_equal(xla(y, seeds).numpy(), uq(y, dither(seeds, 3, 4)).numpy())


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_quantizes_in_float32(policy):
    previous = keras.mixed_precision.global_policy()
    try:
        keras.mixed_precision.set_global_policy(policy)
        compute = tf.as_dtype(policy.split("_")[1])
        # These round to +-0.5 in float16 and bfloat16, crossing the L=3 decision boundary.
        y = tf.constant([[0.4999, -0.4999, 0.49995]], tf.float32)
        np.testing.assert_array_equal(np.abs(tf.cast(tf.cast(y, compute), tf.float32).numpy()), 0.5)
        q, uq = UniformQuantizer(3), UniversalQuantizer(3)
        u = tf.zeros_like(y)
        np.testing.assert_array_equal(q.indices(y).numpy(), [[1, 1, 1]])
        np.testing.assert_array_equal(uq.encode(y, u).numpy(), [[1, 1, 1]])
        with tf.GradientTape() as tape:
            tape.watch(y)
            out = q(y)
        assert out.dtype == compute
        np.testing.assert_array_equal(out.numpy().astype(np.float32), [[0, 0, 0]])
        np.testing.assert_allclose(
            tape.gradient(out, y).numpy(), np_soft_derivative(y.numpy(), 3, 1.0), rtol=1e-5
        )
        assert uq(y, u).dtype == compute
        assert uq.decode([[0, 1, 2]], u).dtype == compute
        assert UniformQuantizer(3, dtype="float32")(y).dtype == tf.float32
        # Inside a mixed-precision Functional model (float16/bfloat16 activations in).
        keras.utils.set_random_seed(2)
        model = build_functional_model()
        out = model([random_y([4, 4], 1), dither(tf.range(4, dtype=tf.int64), 3, 3)])
        assert out.dtype == compute and np.all(np.isfinite(out.numpy().astype(np.float32)))
    finally:
        keras.mixed_precision.set_global_policy(previous)


# ---------------------------------------------------------------- a fresh process
# One subprocess (TensorFlow's import dominates the cost) checks three things: the dither and a
# saved codec give bit-identical results in another process, the codec loads in plain TF without
# rdc_keras or tensorflow_compression (as in TF Serving), and MirroredStrategy on two logical CPUs
# (which must be configured before TF initializes, hence a fresh process) matches one device.

FRESH_SEEDS = [3, 1, 4, 1, 5, -9, 2**40]
FRESH_L, FRESH_D = 4, 3

FRESH_PROCESS_CODE = """
    import json, sys
    import numpy as np
    import tensorflow as tf

    # Logical devices can only be configured before TF initializes its runtime.
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    path, y_path, out = sys.argv[1:]
    seeds = tf.constant([3, 1, 4, 1, 5, -9, 2**40], tf.int64)

    # 1. Serving-like: plain TF, neither rdc_keras nor tensorflow_compression imported.
    sm = tf.saved_model.load(path)
    y = tf.constant(np.load(y_path))
    served_dither = sm.signatures["dither"](seeds=seeds)["dither"].numpy()
    indices = sm.signatures["encode"](y=y, seeds=seeds)["indices"]
    values = sm.signatures["decode"](indices=indices, seeds=seeds)["values"].numpy()
    unwanted = {"rdc_keras", "tensorflow_compression", "tensorflow_compression_ops"}
    clean = not unwanted & set(sys.modules)

    # 2. The library function in this fresh process.
    from rdc_keras.layers import UniformQuantizer, UniversalQuantizer, dither
    from rdc_keras.tfkeras import keras
    fresh = dither(seeds, 3, 4).numpy()
    np.savez(out, served_dither=served_dither, indices=indices.numpy(), values=values, fresh=fresh)

    # 3. One SGD step under MirroredStrategy (2 replicas) vs the same step on one device.
    def build():
        x = keras.Input((4,))
        u = keras.Input((3,))
        h = keras.layers.Dense(3, activation="tanh")(x)
        z = UniversalQuantizer(3)(h, u) + UniformQuantizer(4)(h)
        return keras.Model([x, u], keras.layers.Dense(4)(z))

    n = 8
    x = tf.random.stateless_uniform([n, 4], (0, 1), -1, 1)
    u = dither(tf.range(n, dtype=tf.int64), 3, 3)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = build()
        opt = keras.optimizers.SGD(0.5)
    single = build()
    initial = model.get_weights()
    single.set_weights(initial)
    single_opt = keras.optimizers.SGD(0.5)

    def loss_fn(m, x, u):
        return tf.reduce_sum(tf.square(m([x, u]) - x)) / n

    @tf.function
    def replica_step(x, u):
        with tf.GradientTape() as tape:
            loss = loss_fn(model, x, u)
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    ds = tf.data.Dataset.from_tensor_slices((x, u)).batch(n)
    batch = next(iter(strategy.experimental_distribute_dataset(ds)))
    per_replica = strategy.run(replica_step, args=batch)
    dist_loss = float(strategy.reduce("SUM", per_replica, axis=None))
    with tf.GradientTape() as tape:
        loss = loss_fn(single, x, u)
    grads = tape.gradient(loss, single.trainable_variables)
    single_opt.apply_gradients(zip(grads, single.trainable_variables))
    weights = model.get_weights()
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(weights, single.get_weights()))
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(weights, initial))
    print(json.dumps({"clean": clean, "replicas": strategy.num_replicas_in_sync,
                      "dist_loss": dist_loss, "loss": float(loss), "diff": diff, "moved": moved}))
"""


class Codec(tf.Module):
    """A sender/receiver pair as an export would build it: dither from seeds, then (de)quantize."""

    def __init__(self):
        super().__init__()
        self.quantizer = UniversalQuantizer(FRESH_L)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name="seeds")])
    def make_dither(self, seeds):
        return {"dither": dither(seeds, FRESH_D, FRESH_L)}

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, FRESH_D], tf.float32, name="y"),
            tf.TensorSpec([None], tf.int64, name="seeds"),
        ]
    )
    def encode(self, y, seeds):
        return {"indices": self.quantizer.encode(y, dither(seeds, FRESH_D, FRESH_L))}

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, FRESH_D], tf.int32, name="indices"),
            tf.TensorSpec([None], tf.int64, name="seeds"),
        ]
    )
    def decode(self, indices, seeds):
        return {"values": self.quantizer.decode(indices, dither(seeds, FRESH_D, FRESH_L))}


@pytest.fixture(scope="module")
def fresh_process(tmp_path_factory):
    """Saves a Codec, runs FRESH_PROCESS_CODE once, returns (local, remote arrays, summary)."""
    tmp = tmp_path_factory.mktemp("fresh")
    codec = Codec()
    seeds = tf.constant(FRESH_SEEDS, tf.int64)
    y = random_y([len(FRESH_SEEDS), FRESH_D], 42)
    indices = codec.encode(y, seeds)["indices"]
    local = {
        "dither": dither(seeds, FRESH_D, FRESH_L).numpy(),
        "indices": indices.numpy(),
        "values": codec.decode(indices, seeds)["values"].numpy(),
    }
    path = str(tmp / "codec")
    signatures = {"dither": codec.make_dither, "encode": codec.encode, "decode": codec.decode}
    tf.saved_model.save(codec, path, signatures=signatures)
    np.save(tmp / "y.npy", y.numpy())
    summary = json.loads(
        run_python(FRESH_PROCESS_CODE, path, str(tmp / "y.npy"), str(tmp / "remote.npz"))
    )
    return local, dict(np.load(tmp / "remote.npz")), summary


def test_same_seeds_give_bit_identical_dither_in_another_process(fresh_process):
    local, remote, _ = fresh_process
    assert remote["fresh"].tobytes() == local["dither"].tobytes()


def test_saved_codec_reproduces_codes_in_plain_tensorflow(fresh_process):
    local, remote, summary = fresh_process
    assert summary["clean"]  # neither rdc_keras nor tensorflow_compression was needed
    assert remote["served_dither"].tobytes() == local["dither"].tobytes()
    np.testing.assert_array_equal(remote["indices"], local["indices"])
    assert remote["values"].tobytes() == local["values"].tobytes()


def test_mirrored_strategy_on_two_logical_cpus_matches_single_device(fresh_process):
    _, _, summary = fresh_process
    assert summary["replicas"] == 2
    assert summary["dist_loss"] == pytest.approx(summary["loss"], rel=1e-5)
    assert summary["moved"] > 1e-3  # the step really updated the weights
    assert summary["diff"] < 1e-6


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("cls", [UniformQuantizer, UniversalQuantizer])
@pytest.mark.parametrize(
    "num_levels, error",
    [(1, ValueError), (0, ValueError), (-3, ValueError), (3.0, TypeError), (True, TypeError),
     ("3", TypeError), (None, TypeError)],
)  # fmt: skip
def test_bad_num_levels_raise(cls, num_levels, error):
    with pytest.raises(error, match="num_levels"):
        cls(num_levels)


@pytest.mark.parametrize(
    "temperature, error",
    [(0.0, ValueError), (-1.0, ValueError), (math.nan, ValueError), (math.inf, ValueError),
     (True, TypeError), ("1", TypeError)],
)  # fmt: skip
def test_bad_temperature_raises(temperature, error):
    with pytest.raises(error, match="temperature"):
        UniformQuantizer(3, temperature=temperature)


def test_numpy_integer_levels_are_accepted():
    assert UniformQuantizer(np.int64(4)).num_levels == 4


def test_bad_tensors_raise_clear_errors():
    q, uq = UniformQuantizer(3), UniversalQuantizer(3)
    y = tf.zeros([2, 3])
    with pytest.raises(TypeError, match="floating-point"):
        q(tf.zeros([2, 3], tf.int32))
    with pytest.raises(TypeError, match="floating-point"):
        q.indices(tf.zeros([2, 3], tf.int64))
    with pytest.raises(TypeError, match="floating-point"):
        uq.encode(y, tf.zeros([2, 3], tf.int32))
    with pytest.raises(ValueError, match="dither shape"):
        uq(y, tf.zeros([2, 4]))
    with pytest.raises(ValueError, match="dither shape"):
        uq.decode(tf.zeros([2, 3], tf.int32), tf.zeros([3, 3]))
    with pytest.raises(TypeError, match="indices must be an integer"):
        q.dequantize(tf.zeros([2, 3]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="index >= num_levels"):
        q.dequantize(tf.constant([[0, 3]]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="negative index"):
        uq.decode(tf.constant([[-1]]), tf.zeros([1, 1]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or infinite"):
        q.indices(tf.constant([[0.0, math.nan]]))
    with pytest.raises(ValueError, match="latent_dim"):
        q.rate_bits(0)


def test_bad_dither_arguments_raise():
    seeds = tf.range(4, dtype=tf.int64)
    with pytest.raises(TypeError, match="seeds must be an integer"):
        dither(tf.zeros([4]), 3, 3)
    with pytest.raises(ValueError, match=r"shape \[N\]"):
        dither(tf.zeros([2, 2], tf.int64), 3, 3)
    with pytest.raises(ValueError, match="dim"):
        dither(seeds, 0, 3)
    with pytest.raises(ValueError, match="num_levels"):
        dither(seeds, 3, 1)
    with pytest.raises(TypeError, match="num_levels"):
        dither(seeds, 3, 2.5)
