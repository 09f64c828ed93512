"""Worker processes of the training-step benchmark (bench/bench_train_step.py), one per framework.

``python -m bench.train_step_workers tf|torch [--threads N]`` reads one JSON request a line on
stdin, ``{"cmd": "setup" | "run" | "info" | "exit", "args": {...}}``, and answers each with one
line ``@@bench <JSON>`` on stdout (anything a library prints goes to stderr instead). TF and
PyTorch never share a process, so their thread pools never compete; `WorkerClient` is the
parent's side of the protocol. `WORKERS` names the processes a run may start: ``tf`` (the
library's defaults: rdc_keras is imported before TensorFlow, so oneDNN is on), ``tf_eigen``
(``TF_ENABLE_ONEDNN_OPTS=0``), ``tf_inter1`` (one inter-op thread; also the GAN profile's) and
``torch``; a case's suffix (``_eigen``, ``_inter1``) names its worker (`base_case`).

A worker builds each contender once (`Worker.setup`: build, trace, warm up) and then times blocks
of calls on request (`Worker.run`). `TFWorker` holds our training steps, the frozen encoder's
forward pass and the matmul peak; `TorchWorker` the PyTorch reference steps
(bench/torch_reference.py). Both train on the same POOL_BATCHES fixed batches of uniform random
images and random labels (the step does not depend on pixel values). TensorFlow and torch are
imported by the worker that needs them, never by the parent.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import itertools
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable, Sequence
from typing import Any

try:
    from bench import common
except ImportError:  # run as a script: python bench/train_step_workers.py
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    from bench import common

__all__ = [
    "CASES",
    "WORKERS",
    "Contender",
    "TFWorker",
    "TorchWorker",
    "Worker",
    "WorkerClient",
    "base_case",
    "main",
    "worker_env",
]

BATCH, LATENT_DIM, NUM_LEVELS = 64, 3, 3
LAMBDA_C, LAMBDA_P = 0.015, 0.015
POOL_BATCHES = 16
SEED = 0
PREFIX = "@@bench "

# worker -> (kind, environment overrides, inter-op threads or None for TF's default). Every
# worker is its own process; "tf" runs with the library's defaults (rdc_keras turns oneDNN on).
WORKERS: dict[str, tuple[str, dict[str, str], int | None]] = {
    "tf": ("tf", {}, None),
    "tf_eigen": ("tf", {"TF_ENABLE_ONEDNN_OPTS": "0"}, None),
    "tf_inter1": ("tf", {}, 1),
    "torch": ("torch", {}, None),
}
# Suffix of a case run by another worker than its base case (the same contender otherwise).
_WORKER_SUFFIXES = {"_eigen": "tf_eigen", "_inter1": "tf_inter1"}

# case -> (worker, description)
CASES: dict[str, tuple[str, str]] = {
    "tf_joint": ("tf", "ours, joint schedule, float32, in-memory batches"),
    "torch_joint": ("torch", "PyTorch, joint schedule, float32"),
    "tf_alternate": ("tf", "ours, paper's alternate schedule, float32"),
    "torch_alternate": ("torch", "PyTorch, paper's alternate schedule, float32"),
    "torch_joint_cl": ("torch", "PyTorch, joint, float32, channels_last memory format"),
    "torch_alternate_cl": ("torch", "PyTorch, alternate, float32, channels_last memory format"),
    "tf_joint_bf16": ("tf", "ours, joint, mixed_bfloat16"),
    "tf_joint_xla": ("tf", "ours, joint, float32, jit_compile=True"),
    "tf_joint_tfdata": ("tf", "ours, joint, float32, tf.data prefetch + Keras train function"),
    "tf_rdc": ("tf", "ours, RDC-only phase-1 step (lambda_p = 0), float32: the study's E2E step"),
    "tf_rdc_phase2": ("tf", "ours, RDC-only step on a frozen encoder (a universal head), float32"),
    "tf_encoder_forward": ("tf", "the frozen encoder's inference forward pass alone, float32"),
    "matmul_f32": ("tf", "square tf.linalg.matmul, float32"),
    "matmul_bf16": ("tf", "square tf.linalg.matmul, bfloat16"),
    # Issue 18: the GAN alternate step and its levers.
    "tf_alternate_bf16": ("tf", "ours, alternate, mixed_bfloat16"),
    "tf_alternate_concat": (
        "tf",
        "lever: alternate, one critic call on the concatenated real/fake/interpolate batch",
    ),
    "tf_alternate_eigen": ("tf_eigen", "ours, alternate, float32, oneDNN off (Eigen kernels)"),
    "tf_rdc_eigen": ("tf_eigen", "ours, RDC-only phase-1 step, float32, oneDNN off"),
    "matmul_f32_eigen": ("tf_eigen", "square tf.linalg.matmul, float32, oneDNN off"),
    "tf_alternate_inter1": ("tf_inter1", "ours, alternate, float32, one inter-op thread"),
}
# Our phase-1 steps: case -> (schedule, precision, jit_compile, feed).
TF_STEP_CASES: dict[str, tuple[str, str, bool, str]] = {
    "tf_joint": ("joint", "float32", False, "memory"),
    "tf_alternate": ("alternate", "float32", False, "memory"),
    "tf_joint_bf16": ("joint", "mixed_bfloat16", False, "memory"),
    "tf_joint_xla": ("joint", "float32", True, "memory"),
    "tf_joint_tfdata": ("joint", "float32", False, "tfdata"),
    "tf_alternate_bf16": ("alternate", "mixed_bfloat16", False, "memory"),
}


def base_case(case: str) -> str:
    """The contender a case builds: `case` without the suffix naming its worker."""
    for suffix in _WORKER_SUFFIXES:
        if case.endswith(suffix):
            return case[: -len(suffix)]
    return case


def pool_arrays():
    """POOL_BATCHES * BATCH fixed images [N, 28, 28, 1] in [0, 1) and int64 labels [N] (numpy)."""
    import numpy as np

    rng = np.random.RandomState(SEED)
    images = rng.uniform(size=(POOL_BATCHES * BATCH, 28, 28, 1)).astype("float32")
    labels = rng.randint(0, 10, size=POOL_BATCHES * BATCH).astype("int64")
    return images, labels


def pool_batches() -> list[tuple[Any, Any]]:
    """`pool_arrays` cut into POOL_BATCHES (images, labels) numpy batches of BATCH."""
    images, labels = pool_arrays()
    return [
        (images[i * BATCH : (i + 1) * BATCH], labels[i * BATCH : (i + 1) * BATCH])
        for i in range(POOL_BATCHES)
    ]


def _cycling(fn: Callable[[Any], Any], batches: Sequence[Any]) -> Callable[[], Any]:
    """A call of `fn` on the next of `batches`, round and round."""
    cycle = itertools.cycle(batches)
    return lambda: fn(next(cycle))


def _loss(logs: dict[str, Any]) -> float:
    return float(logs["loss"])


def _first_element(tensor: Any) -> float:
    return float(tensor[0, 0])


@dataclasses.dataclass
class Contender:
    """One built contender: the call to time, how to fetch its result, work units per call.

    `fetch` forces the last result (a host transfer), so a block's time includes the work.
    `units` are images per call (FLOPs for a matmul). `function` is the `tf.function` whose
    tracing count `run` reports (None: not reported); `extra` goes into the setup reply.
    """

    call: Callable[[], Any]
    fetch: Callable[[Any], float]
    units: float
    function: Any = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def time(self, calls: int) -> dict[str, float]:
        """Wall and process-CPU seconds of `calls` back-to-back calls and one fetch."""
        start, start_cpu = time.perf_counter(), time.process_time()
        result = None
        for _ in range(calls):
            result = self.call()
        self.fetch(result)
        return {"wall": time.perf_counter() - start, "cpu": time.process_time() - start_cpu}

    def traces(self) -> int | None:
        count = getattr(self.function, "experimental_get_tracing_count", None)
        return count() if count else None


class Worker:
    """The contenders of one worker process and its requests: setup, run, info."""

    kind = ""

    def __init__(self) -> None:
        self.contenders: dict[str, Contender] = {}

    def build(self, case: str, **options: Any) -> Contender:
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        raise NotImplementedError

    def profile(self, case: str, contender: Contender, profile_dir: str) -> None:
        """Writes profiler traces of a few calls (TF only)."""

    def extra_handlers(self) -> dict[str, Callable[..., dict[str, Any]]]:
        """Requests beyond setup/run/info this worker answers."""
        return {}

    def setup(
        self, case: str, warmup: int, profile_dir: str | None = None, **options: Any
    ) -> dict[str, Any]:
        """Builds `case`, traces it, warms it up; returns the seconds taken and units per call."""
        if WORKERS.get(CASES.get(case, ("",))[0], ("",))[0] != self.kind:
            raise ValueError(f"{case!r} is not a {self.kind} case")
        start = time.perf_counter()
        contender = self.build(case, **options)
        contender.fetch(contender.call())  # trace (and XLA-compile) outside the timing
        traced = time.perf_counter()
        warm = contender.time(warmup) if warmup else None
        self.contenders[case] = contender
        if profile_dir:
            self.profile(case, contender, profile_dir)
        return {
            "trace_seconds": traced - start,
            "warm_seconds_per_call": warm["wall"] / warmup if warm else None,
            "units_per_call": contender.units,
            **contender.extra,
        }

    def run(self, case: str, steps: int) -> dict[str, Any]:
        """Times one block of `steps` calls of a contender set up before."""
        contender = self.contenders[case]
        return {**contender.time(steps), "traces": contender.traces()}

    def serve(self) -> None:
        """Answers requests from stdin until "exit" (or end of input)."""
        protocol = os.fdopen(os.dup(1), "w", buffering=1)
        os.dup2(2, 1)  # anything a library prints goes to stderr, never into the protocol
        handlers = {"setup": self.setup, "run": self.run, "info": self.info}
        handlers.update(self.extra_handlers())
        for line in sys.stdin:
            request = json.loads(line)
            if request["cmd"] == "exit":
                break
            try:
                reply = handlers[request["cmd"]](**request.get("args", {}))
            except Exception as error:  # reported to the parent, which skips the case
                reply = {"error": f"{type(error).__name__}: {error}".splitlines()[0][:300]}
            protocol.write(PREFIX + json.dumps(reply) + "\n")


def _concatenated_critic_update(self: Any, images: Any, x_hat: Any, index: int = 0) -> None:
    """Lever: `RDCTrainer._critic_update` with one critic call on [real; fake; interpolates].

    The critic has no batch coupling, so the scores and the penalty's input gradient equal
    those of three separate calls; the penalty's epsilon stream is the trainer's own.
    """
    import tensorflow as tf

    from rdc_keras import losses
    from rdc_keras.trainers import rdc

    x_hat = tf.stop_gradient(x_hat)
    batch = tf.shape(images)[0]
    epsilon = tf.random.stateless_uniform(
        [batch, 1, 1, 1],
        seed=self._stream_seed(rdc._PENALTY_STREAM, self._step * self.n_critic + index),
    )
    interpolates = epsilon * images + (1.0 - epsilon) * x_hat
    with tf.GradientTape() as tape:
        with tf.GradientTape() as inner:
            inner.watch(interpolates)
            together = tf.concat([images, x_hat, interpolates], axis=0)
            scores = tf.cast(self.critic(together, training=True), tf.float32)[:, 0]
            real, fake, middle = scores[:batch], scores[batch : 2 * batch], scores[2 * batch :]
        gradients = inner.gradient(middle, interpolates)
        squared = tf.reduce_sum(tf.square(tf.reshape(gradients, [batch, -1])), 1)
        norms = tf.sqrt(squared + losses._GP_NORM_EPSILON)  # the trainer's penalty, batched
        penalty = tf.square(norms - 1.0)
        per_example = fake - real + self.gp_weight * penalty
        loss = tf.nn.compute_average_loss(per_example)
    self._apply(self.critic_optimizer, tape, loss, self.critic.trainable_variables)
    self._trackers["critic_loss"].update_state(per_example)
    self._trackers["gradient_penalty"].update_state(penalty)
    self._trackers["w1"].update_state(real - fake)


def _config(**changes: Any) -> Any:
    """The benchmark's resolved MNIST TrainConfig (d=3, L=3, seed 0) with `changes`."""
    from rdc_keras.config import TrainConfig

    return TrainConfig(
        workdir="unused",
        dataset="mnist",
        latent_dim=LATENT_DIM,
        num_levels=NUM_LEVELS,
        seed=SEED,
        **changes,
    ).resolved()


class TFWorker(Worker):
    """Our steps (`RDCTrainer.train_step` from `build_trainer`), the encoder forward, matmuls."""

    kind = "tf"

    def __init__(self, threads: int | None, inter_op_threads: int | None = None) -> None:
        super().__init__()
        # rdc_keras before TensorFlow, as a user's script: its import sets the oneDNN default.
        importlib.import_module("rdc_keras")
        import tensorflow as tf

        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
        if inter_op_threads:
            tf.config.threading.set_inter_op_parallelism_threads(inter_op_threads)
        self.tf = tf
        self.pool = [(tf.constant(x), tf.constant(y)) for x, y in pool_batches()]

    def build(self, case: str, matmul_size: int = 4096, **_: Any) -> Contender:
        case = base_case(case)
        if case == "tf_alternate_concat":
            return self._phase1_step("alternate", "float32", False, "memory", concatenated=True)
        if case in ("tf_rdc", "tf_rdc_phase2"):
            return self._rdc_step(frozen=case == "tf_rdc_phase2")
        if case == "tf_encoder_forward":
            return self._encoder_forward()
        if case in ("matmul_f32", "matmul_bf16"):
            return self._matmul(case == "matmul_bf16", matmul_size)
        return self._phase1_step(*TF_STEP_CASES[case])

    def _phase1_trainer(self, schedule: str, precision: str, jit: bool) -> Any:
        """The phase-1 trainer (joint: with a joint classifier), built under `precision`."""
        from rdc_keras.tfkeras import keras
        from rdc_keras.trainers.build import build_trainer

        joint = schedule == "joint"
        config = _config(
            lambda_c=LAMBDA_C if joint else 0.0,
            lambda_p=LAMBDA_P,
            classifier_mode="joint" if joint else "pretrained",
            schedule=schedule,
            mixed_precision=precision,
            jit_compile=jit,
        )
        keras.utils.set_random_seed(SEED)
        previous = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy(precision)  # as runner.train_run does
        try:
            return build_trainer(config, None)
        finally:
            keras.mixed_precision.set_global_policy(previous)

    def _phase1_step(
        self, schedule: str, precision: str, jit: bool, feed: str, concatenated: bool = False
    ) -> Contender:
        tf = self.tf
        trainer = self._phase1_trainer(schedule, precision, jit)
        if concatenated:
            trainer._critic_update = types.MethodType(_concatenated_critic_update, trainer)
        if feed == "memory":
            fn = tf.function(trainer.train_step, jit_compile=jit)
            return Contender(_cycling(fn, self.pool), _loss, float(BATCH), fn)
        images, labels = pool_arrays()
        dataset = (
            tf.data.Dataset.from_tensor_slices((images, labels))
            .batch(BATCH, drop_remainder=True)
            .repeat()
            .prefetch(tf.data.AUTOTUNE)
        )
        iterator = iter(dataset)
        fn = trainer.make_train_function()
        return Contender(lambda: fn(iterator), _loss, float(BATCH), fn)

    def _rdc_step(self, frozen: bool) -> Contender:
        """The study's step: lambda_p = 0, lambda_c = 0.015, frozen pretrained classifier."""
        from rdc_keras import networks
        from rdc_keras.tfkeras import keras
        from rdc_keras.trainers.build import build_trainer

        config = _config(lambda_c=LAMBDA_C, classifier_mode="pretrained")
        keras.utils.set_random_seed(SEED)
        encoder = networks.encoder("mnist", LATENT_DIM) if frozen else None
        trainer = build_trainer(config, networks.classifier("mnist"), encoder=encoder)
        fn = self.tf.function(trainer.train_step)
        return Contender(_cycling(fn, self.pool), _loss, float(BATCH), fn)

    def _encoder_forward(self) -> Contender:
        from rdc_keras import networks

        encoder = networks.encoder("mnist", LATENT_DIM)
        fn = self.tf.function(lambda images: encoder(images, training=False))
        images = [x for x, _ in self.pool]
        return Contender(_cycling(fn, images), _first_element, float(BATCH), fn)

    def _matmul(self, bf16: bool, size: int) -> Contender:
        tf = self.tf
        dtype = tf.bfloat16 if bf16 else tf.float32
        a = tf.cast(tf.random.stateless_uniform([size] * 2, (1, 2)), dtype)
        b = tf.cast(tf.random.stateless_uniform([size] * 2, (3, 4)), dtype)
        fn = tf.function(tf.linalg.matmul)
        return Contender(lambda: fn(a, b), _first_element, 2.0 * size**3, fn)

    def profile(self, case: str, contender: Contender, profile_dir: str) -> None:
        if case.startswith("matmul"):
            return
        self.tf.profiler.experimental.start(str(pathlib.Path(profile_dir) / case))
        contender.time(3)
        self.tf.profiler.experimental.stop()

    def extra_handlers(self) -> dict[str, Callable[..., dict[str, Any]]]:
        return {"profile_gan": self.profile_gan}

    def profile_gan(self, pairs: int = 10, warmup: int = 3) -> dict[str, Any]:
        """The per-op profile of the alternate GAN step (bench/gan_profile.py), `pairs` pairs.

        The critic and generator turns run as two functions (the step's `tf.cond` branches),
        traced in two profiler sessions; their wall time per pair is measured untraced first.
        """
        from bench import gan_profile

        tf = self.tf
        trainer = self._phase1_trainer("alternate", "float32", False)
        critic_turn = tf.function(trainer._critic_turn)
        generator_turn = tf.function(trainer._generator_turn)
        batches = itertools.cycle(self.pool)

        def pair() -> Any:
            critic_turn(next(batches))
            return generator_turn(next(batches))

        for _ in range(warmup + 1):
            _loss(pair())
        start = time.perf_counter()
        for _ in range(pairs):
            logs = pair()
        _loss(logs)
        wall = (time.perf_counter() - start) / pairs
        turns = []
        with tempfile.TemporaryDirectory(prefix="gan_profile_") as root:
            for turn, function in (
                (gan_profile.CRITIC, critic_turn),
                (gan_profile.GENERATOR, generator_turn),
            ):
                trace_dir = pathlib.Path(root) / turn.replace(" ", "_")
                tf.profiler.experimental.start(str(trace_dir))
                for _ in range(pairs):
                    logs = function(next(batches))
                _loss(logs)
                tf.profiler.experimental.stop()
                turns.append((turn, gan_profile.op_events(trace_dir)))
        return {
            "rows": gan_profile.profile_rows(turns, pairs),
            "wall_ms_per_pair": 1e3 * wall,
            "op_ms_per_pair": 1e3 * sum(d for _, events in turns for _, _, d in events) / pairs,
            "inter_op_threads": self.tf.config.threading.get_inter_op_parallelism_threads(),
            "top_ops": gan_profile.top_ops(turns, pairs, 15),
        }

    def info(self) -> dict[str, Any]:
        """Versions, thread pools, FLOP counts and the preset's optimiser settings."""
        import numpy as np
        from tensorflow.python.util import _pywrap_util_port

        from rdc_keras import config, networks

        tf = self.tf
        models = {
            "encoder": common.model_flops(networks.encoder("mnist", LATENT_DIM)),
            "decoder": common.model_flops(networks.decoder("mnist", LATENT_DIM)),
            "critic": common.model_flops(networks.critic("mnist")),
            "classifier": common.model_flops(networks.classifier("mnist")),
        }
        e, d, c, k = (models[name] for name in ("encoder", "decoder", "critic", "classifier"))
        preset = config.preset_defaults("mnist")
        return {
            # The torch worker takes its optimiser settings from here (one source of truth).
            "preset": {
                "generator_learning_rate": preset.generator_learning_rate,
                "critic_learning_rate": preset.critic_learning_rate,
                "classifier_learning_rate": preset.classifier_learning_rate,
                "beta_1": preset.beta_1,
                "beta_2": preset.beta_2,
                "adam_epsilon": preset.adam_epsilon,
                "gp_weight": preset.gp_weight,
                "sigma": preset.quantizer_sigma(NUM_LEVELS),
                "batch_size": preset.batch_size,
            },
            "tf": tf.__version__,
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads()
            or common.thread_count(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads()
            or common.thread_count(),
            "onednn": bool(_pywrap_util_port.IsMklEnabled()),
            "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset"),
            "model_forward_flops": {name: m.forward for name, m in models.items()},
            "step_flops_per_image": {
                "joint": common.train_step_flops(e, d, c, k, "joint"),
                "alternate": common.train_step_flops(e, d, c, k, "alternate"),
                "rdc": common.rdc_step_flops(e, d, k, frozen_encoder=False),
                "rdc_phase2": common.rdc_step_flops(e, d, k, frozen_encoder=True),
            },
            "numpy": np.__version__,
        }


class TorchWorker(Worker):
    """The PyTorch reference steps, with the TF worker's preset settings (`setup(preset=...)`)."""

    kind = "torch"

    def __init__(self, threads: int) -> None:
        super().__init__()
        import numpy as np
        import torch

        torch.set_num_threads(threads)
        self.torch = torch
        self.pool = [
            (
                torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).contiguous(),
                torch.from_numpy(y),
            )
            for x, y in pool_batches()
        ]

    def build(self, case: str, preset: dict[str, float] | None = None, **_: Any) -> Contender:
        from bench.torch_reference import TorchRDC

        if preset is None:
            raise ValueError("the torch worker needs the TF worker's preset settings")
        self.torch.manual_seed(SEED)
        model = TorchRDC(
            LATENT_DIM,
            NUM_LEVELS,
            lambda_c=LAMBDA_C,
            lambda_p=LAMBDA_P,
            generator_lr=preset["generator_learning_rate"],
            critic_lr=preset["critic_learning_rate"],
            classifier_lr=preset["classifier_learning_rate"],
            betas=(preset["beta_1"], preset["beta_2"]),
            eps=preset["adam_epsilon"],
            gp_weight=preset["gp_weight"],
            sigma=preset["sigma"],
            channels_last=case.endswith("_cl"),
        )
        step = model.joint_step if case.startswith("torch_joint") else model.alternate_step
        batches = [(model.to_memory_format(x), y) for x, y in self.pool]
        return Contender(
            _cycling(lambda batch: step(*batch), batches),
            float,
            float(BATCH),
            extra={"params": model.parameter_counts()},
        )

    def info(self) -> dict[str, Any]:
        torch = self.torch
        return {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
            "mkldnn": bool(torch.backends.mkldnn.is_available()),
        }


# --------------------------------------------------------------------------------------------------
# The parent's side.


def worker_env(overrides: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a worker: quiet TF, the repository on PYTHONPATH, then `overrides`."""
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = env.get("TF_CPP_MIN_LOG_LEVEL", "3")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(common.REPO_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    env.update(overrides or {})
    return env


class WorkerClient:
    """A worker subprocess answering `call(cmd, **args)` requests one at a time."""

    def __init__(
        self,
        kind: str,
        threads: int | None,
        env: dict[str, str] | None = None,
        inter_op_threads: int | None = None,
    ) -> None:
        self.kind = kind
        command = [sys.executable, "-m", "bench.train_step_workers", kind]
        if threads:
            command += ["--threads", str(threads)]
        if inter_op_threads:
            command += ["--inter_op_threads", str(inter_op_threads)]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=common.REPO_ROOT,
            env=worker_env() if env is None else env,
        )

    def call(self, cmd: str, **args: Any) -> dict[str, Any]:
        self.process.stdin.write(json.dumps({"cmd": cmd, "args": args}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line.startswith(PREFIX):
            raise RuntimeError(f"{self.kind} worker died (exit code {self.process.poll()})")
        reply = json.loads(line[len(PREFIX) :])
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write(json.dumps({"cmd": "exit"}) + "\n")
                self.process.stdin.flush()
                self.process.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


def main(argv: list[str] | None = None) -> None:
    """Serves one worker until its parent sends "exit"."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("tf", "torch"))
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads")
    parser.add_argument("--inter_op_threads", type=int, default=None, help="TF inter-op threads")
    args = parser.parse_args(argv)
    if args.kind == "tf":
        TFWorker(args.threads, args.inter_op_threads).serve()
    else:
        TorchWorker(args.threads or common.thread_count()).serve()


if __name__ == "__main__":
    main()
