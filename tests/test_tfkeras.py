"""rdc_keras.tfkeras: the Keras 2 API on every supported stack, whatever was imported first."""

import subprocess
import sys

import pytest
import tensorflow as tf

from rdc_keras import tfkeras
from rdc_keras.tfkeras import keras


def test_keras_is_the_keras_2_api():
    assert tfkeras.keras_version().split()[1].startswith("2.")
    assert hasattr(keras.Model, "train_step")
    assert hasattr(keras.mixed_precision, "LossScaleOptimizer")
    expected = "tf_keras" if tfkeras.tensorflow_version() >= tfkeras.KERAS3_TENSORFLOW else "keras"
    assert keras.__name__.split(".")[0] == expected


def test_tensorflow_version_parses_the_installed_version():
    major, minor = tfkeras.tensorflow_version()
    assert tf.__version__.startswith(f"{major}.{minor}.")


def test_user_code_that_imported_tensorflow_keras_first_still_gets_keras_2():
    # On TF >= 2.16 `tf.keras` resolves to Keras 3 here; rdc_keras must not follow it.
    code = (
        "import tensorflow as tf\n"
        "user = tf.keras.__name__\n"
        "from rdc_keras.tfkeras import keras, keras_version\n"
        "from rdc_keras import networks\n"
        "model = networks.encoder('digits', 2)\n"
        "print(user, keras_version(), isinstance(model, keras.Model))\n"
    )
    env = {"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    _, version, is_model = result.stdout.split()[-3:]
    assert version.startswith("2.") and is_model == "True"


def test_missing_tf_keras_on_a_keras3_tensorflow_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(tfkeras, "tensorflow_version", lambda: (2, 17))
    monkeypatch.setitem(sys.modules, "tf_keras", None)  # `import tf_keras` raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'tf-keras~=2\.17\.0'"):
        tfkeras._load()


def test_seeded_initialisers_work_and_repeat_after_set_random_seed():
    # tf-keras 2.17 on Python 3.12 raised TypeError here (keras-team/tf-keras#803).
    def draw():
        keras.utils.set_random_seed(10)
        return keras.initializers.VarianceScaling()((3, 3)).numpy()

    first, second = draw(), draw()
    assert (first == second).all() and first.std() > 0


def test_int_bounds_random_is_the_same_stream_as_random():
    import random

    ours, stock = tfkeras._IntBoundsRandom(5), random.Random(5)
    assert [ours.randint(1, 1e9) for _ in range(5)] == [stock.randint(1, 10**9) for _ in range(5)]
