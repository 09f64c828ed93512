"""Tests of the GAN step's op profile (bench/gan_profile.py).

The op-name classification on names written by hand, the sums and shares of `profile_rows`, the
trace reader on a tiny traced function, and the whole path on a real digits-preset trainer: its
name scopes must put every expensive piece of the WGAN-GP step where the table says.
"""

import pathlib
import sys

import pytest
from conftest import digits_gan_trainer

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # bench/ is not part of the installed package
    sys.path.insert(0, str(REPO_ROOT))

from bench import gan_profile  # noqa: E402
from bench.gan_profile import CRITIC, GENERATOR  # noqa: E402

DOUBLE = "gradient penalty: double backward"
CRITIC_NAMES = {
    "reconstruct/decoder/deconv2/conv2d_transpose": "generator forward",
    "cond/then/_0/cond/critic_scores/critic/conv3/BiasAdd": "critic forward on real",
    "gradient_penalty/critic/conv1/BiasAdd": "gradient penalty: interpolate",
    "gradient_penalty/gradient_tape/critic/conv2/Conv2D/Conv2DBackpropInput": (
        "gradient penalty: interpolate"
    ),
    "gradient_tape/critic_scores/critic/conv3/Conv2D/Conv2DBackpropFilter": "critic backward",
    "gradient_tape/gradient_penalty/gradient_tape/critic/conv3/Conv2D/Conv2D": DOUBLE,
    "gradient_tape/gradient_penalty/critic/conv3/Conv2D/Conv2DBackpropInput_1": DOUBLE,
    "Adam/truediv_49": "Adam update of the critic",
    "StatelessRandomUniformV2": "other",
}
GENERATOR_NAMES = {
    "reconstruct/encoder/block1_dense/BiasAdd": "generator forward",
    "generator_critic/critic/conv1/BiasAdd": "critic forward on the reconstruction",
    "gradient_tape/generator_critic/critic/conv3/Conv2D/Conv2DBackpropInput": (
        "backward through the critic"
    ),
    "gradient_tape/reconstruct/decoder/deconv2/conv2d_transpose/Conv2D": "backward through dec",
    "cond/else/_1/cond/Adam/Sqrt_3": "Adam update of encoder",
    "Mean/AssignAddVariableOp": "other",
}


@pytest.mark.parametrize(
    "turn, name, start",
    [(CRITIC, n, s) for n, s in CRITIC_NAMES.items()]
    + [(GENERATOR, n, s) for n, s in GENERATOR_NAMES.items()],
)
def test_category_by_name_scopes(turn, name, start):
    got_turn, piece = gan_profile.category(name, turn)
    assert got_turn == turn and piece.startswith(start)
    assert (turn, piece) in gan_profile.CATEGORIES


def test_category_rejects_an_unknown_turn():
    with pytest.raises(ValueError, match="turn must be"):
        gan_profile.category("Adam/x", "critic")


def test_profile_rows_sum_per_category_and_share_the_total():
    critic = [
        ("critic_scores/critic/conv1/BiasAdd", "_FusedConv2D", 0.003),
        ("gradient_tape/gradient_penalty/gradient_tape/x", "Conv2D", 0.005),
        ("gradient_tape/gradient_penalty/critic/y", "Conv2D", 0.002),
    ]
    generator = [("gradient_tape/reconstruct/decoder/z", "MatMul", 0.010)]
    rows = gan_profile.profile_rows([(CRITIC, critic), (GENERATOR, generator)], pairs=2)
    assert [(r["turn"], r["piece"]) for r in rows] == list(gan_profile.CATEGORIES)
    by_piece = {(r["turn"], r["piece"]): r for r in rows}
    double = by_piece[(CRITIC, "gradient penalty: double backward")]
    assert double["ms_per_pair"] == pytest.approx(3.5) and double["ops_per_pair"] == 1.0
    assert double["share"] == pytest.approx(0.007 / 0.020)
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)
    top = gan_profile.top_ops([(CRITIC, critic), (GENERATOR, generator)], pairs=2, count=2)
    assert [op["type"] for op in top] == ["MatMul", "Conv2D"]
    assert top[0]["ms_per_pair"] == pytest.approx(5.0) and top[0]["turn"] == GENERATOR


def test_op_events_reads_a_trace_and_reports_a_missing_one(tmp_path):
    import tensorflow as tf

    @tf.function
    def scoped(x):
        with tf.name_scope("probe_scope"):
            return tf.reduce_sum(tf.matmul(x, x))

    x = tf.ones([64, 64])
    scoped(x)
    tf.profiler.experimental.start(str(tmp_path / "trace"))
    scoped(x).numpy()
    tf.profiler.experimental.stop()
    events = gan_profile.op_events(tmp_path / "trace")
    names = {name for name, _, _ in events}
    assert any(name.startswith("probe_scope/") for name in names)
    assert all(seconds >= 0 for _, _, seconds in events)
    assert not any(name.startswith("Executor") for name in names)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no \*\.xplane\.pb"):
        gan_profile.op_events(tmp_path / "empty")


def test_a_real_wgan_gp_step_lands_in_the_expected_pieces(tmp_path):
    import tensorflow as tf

    trainer = digits_gan_trainer(seed=0)
    batch = (tf.random.stateless_uniform([8, 8, 8, 1], (1, 2)), tf.zeros([8], tf.int64))
    turns = []
    for turn, function in (
        (CRITIC, tf.function(trainer._critic_turn)),
        (GENERATOR, tf.function(trainer._generator_turn)),
    ):
        function(batch)
        trace = tmp_path / turn.replace(" ", "_")
        tf.profiler.experimental.start(str(trace))
        function(batch)["loss"].numpy()
        tf.profiler.experimental.stop()
        turns.append((turn, gan_profile.op_events(trace)))
    rows = {(r["turn"], r["piece"]): r for r in gan_profile.profile_rows(turns, pairs=1)}
    # Every piece of the step ran ops that were classified as that piece ...
    empty = [key for key, row in rows.items() if row["ops_per_pair"] == 0]
    assert empty == [], empty
    # ... and the matmuls of the critic's double backward were found under the penalty.
    double = [
        name
        for name, op_type, _ in turns[0][1]
        if "MatMul" in op_type
        and gan_profile.category(name, CRITIC)[1] == "gradient penalty: double backward"
    ]
    assert double
