"""The Keras the package is written in (the Keras 2 API), imported in one place.

TensorFlow 2.14's `tf.keras` is Keras 2. From TensorFlow 2.16 on, `tf.keras` is Keras 3 unless
`TF_USE_LEGACY_KERAS=1` was set before TensorFlow was first imported, and the Keras 2 API
(subclassed `train_step`, the `compile` override, `LossScaleOptimizer`, `.h5` weights) lives in
the `tf_keras` package. Importing `tf_keras` by name does not depend on import order or on the
environment, so user code that imported TensorFlow first still gets the Keras this package needs.
Every module, test and benchmark takes Keras from here: `from rdc_keras.tfkeras import keras`.
"""

import random
import sys
import types
from importlib import metadata
from types import ModuleType

import tensorflow as tf

#: The first TensorFlow release whose `tf.keras` is Keras 3 by default.
KERAS3_TENSORFLOW = (2, 16)


def tensorflow_version() -> tuple[int, int]:
    """(major, minor) of the TensorFlow in use."""
    major, minor = tf.__version__.split(".")[:2]
    return int(major), int(minor)


def stack_name() -> str:
    """The running stack as `tf<major.minor>-py<major.minor>`, e.g. "tf2.17-py3.12" (the names of
    the cross-stack fixtures and of the stacks benchmark's rows)."""
    major, minor = tensorflow_version()
    return f"tf{major}.{minor}-py{sys.version_info[0]}.{sys.version_info[1]}"


def keras_version() -> str:
    """The distribution providing `keras` and its version, e.g. "tf-keras 2.17.0"."""
    name = "keras" if tensorflow_version() < KERAS3_TENSORFLOW else "tf-keras"
    return f"{name} {metadata.version(name)}"


class _IntBoundsRandom(random.Random):
    """`random.Random` whose `randint` takes integral float bounds, as before Python 3.12."""

    def randint(self, a: float, b: float) -> int:
        return super().randint(int(a), int(b))


def _accept_float_seed_bounds() -> None:
    """Works around tf-keras 2.17 on Python >= 3.12 (keras-team/tf-keras#803, fix unreleased).

    After `keras.utils.set_random_seed`, tf-keras draws each unseeded initializer's seed with
    `generator.randint(1, 1e9)`, which Python 3.12 rejects (TypeError: 'float' object cannot be
    interpreted as an integer), so no seeded model could be built. The generator it creates is
    made an `_IntBoundsRandom`: the same Mersenne Twister stream, so the same seeds as on 3.11.
    Nothing is changed where tf-keras no longer passes floats or the module moved.
    """
    try:
        from tf_keras.src.utils import tf_utils
    except ImportError:
        return
    if sys.version_info < (3, 12) or getattr(tf_utils, "random", None) is not random:
        return
    shim = types.ModuleType("random")
    shim.__dict__.update(vars(random))
    shim.Random = _IntBoundsRandom
    shim.randint = lambda a, b: random.randint(int(a), int(b))
    tf_utils.random = shim


def _load() -> ModuleType:
    """`tf.keras` where it is Keras 2, else the tf-keras package (one clear error if missing)."""
    version = tensorflow_version()
    if version < KERAS3_TENSORFLOW:
        return tf.keras
    try:
        import tf_keras
    except ImportError as error:
        raise ImportError(
            f"rdc_keras needs the Keras 2 API, which TensorFlow {tf.__version__} leaves to the "
            f"tf-keras package: pip install 'tf-keras~={version[0]}.{version[1]}.0'"
        ) from error
    _accept_float_seed_bounds()
    return tf_keras


keras = _load()

__all__ = ["KERAS3_TENSORFLOW", "keras", "keras_version", "stack_name", "tensorflow_version"]
