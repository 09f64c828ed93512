"""Benchmark: real `.rdc` sizes vs the fixed-rate bound d * log2 L (issue 7, item 5).

For each (d, L) it trains a short run (or takes one with --run), exports it with the prior counted
on the training split, compresses the test split with `rdc_keras.codec` and reports:

* payload bits per image of the whole test split (range-coded or packed, whichever is smaller)
  against the bound d * log2 L (`ratio` < 1 means the entropy coder saved bits);
* file bytes per image including the container (format version 2: 27 bytes or a few more
  around the payload), for batches of 1, 100 and 2,000 images (the test split is cut into
  consecutive batches of that size, at most 100 files per size; the value is total bytes /
  total images), against the bound in bytes, d * log2 L / 8; and the same files' size in format
  version 1's 62-byte container (`codec.V1_OVERHEAD_BYTES`; same payloads), for comparison.

Every file is decoded again and checked bit for bit against the head applied to the encoder's
indices. Usage (MNIST-10k, the issue's three settings):

    python -m bench.bench_rate --dataset=mnist_idx --data_dir=../shared/data/mnist \
        --configs=3x3,3x4,4x4 --workdir=bench/runs/rate

or with trained runs: `--run=3x3=runs/a --run=3x4=runs/b ...` (then no training happens).
Writes bench/results/rate.json: a list of records with keys name, value, unit, baseline, ratio,
command, machine, date.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

try:
    from bench import common
except ImportError:  # run as a script: python bench/bench_rate.py
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    from bench import common

from rdc_keras import codec, data, export
from rdc_keras.layers import image_seeds, nearest_index, rate_bits

__all__ = ["main", "measure"]

BATCHES = (1, 100, 2000)
MAX_FILES_PER_BATCH = 100


def _parse_config(text: str) -> tuple[int, int]:
    try:
        d, levels = (int(v) for v in text.lower().split("x"))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected DxL such as 3x4, got {text!r}") from error
    return d, levels


def _train(args, d: int, levels: int, classifier_dir: str | None) -> pathlib.Path:
    from rdc_keras.config import TrainConfig
    from rdc_keras.trainers.runner import train_run

    workdir = pathlib.Path(args.workdir) / f"d{d}-L{levels}"
    train_run(
        TrainConfig(
            workdir=str(workdir),
            dataset=args.dataset,
            data_dir=args.data_dir,
            latent_dim=d,
            num_levels=levels,
            lambda_c=args.lambda_c,
            epochs=args.epochs,
            steps_per_epoch=args.steps_per_epoch,
            classifier_dir=classifier_dir,
            seed=args.seed,
            verbose=args.verbose,
        )
    )
    return workdir


def measure(
    encoder: export.ExportedModel,
    head: export.ExportedModel,
    images: np.ndarray,
    seed: int,
    batches: tuple[int, ...] = BATCHES,
) -> dict[str, Any]:
    """Compresses `images` whole and in batches; returns sizes (bits and bytes per image)."""
    seeds = image_seeds(seed, len(images))
    expected = head.decode(encoder.encode(images, seeds), seeds)
    methods = {}
    for method in ("fixed", "range", "dithered", "auto"):
        blob = codec.compress(images, encoder, seed=seed, method=method)
        if not np.array_equal(codec.decompress(blob, encoder, head), expected):
            raise AssertionError(f"{method}: decoded images differ from the in-memory path")
        methods[method] = codec.describe(blob)
    whole = methods.pop("auto")
    result = {"whole": whole, "methods": methods, "batches": {}}
    for size in batches:
        size = min(size, len(images))
        total_bytes = total_images = v1_bytes = 0
        for start in range(0, len(images) - size + 1, size):
            if total_images // size >= MAX_FILES_PER_BATCH:
                break
            part = codec.compress(images[start : start + size], encoder, seed=seed + start)
            total_bytes += len(part)
            v1_bytes += len(codec.parse(part)[1]) + codec.V1_OVERHEAD_BYTES
            total_images += size
        result["batches"][size] = {
            "files": total_images // size,
            "bytes_per_image": total_bytes / total_images,
            "format1_bytes_per_image": v1_bytes / total_images,
        }
    result["bound_bits"] = rate_bits(encoder.latent_dim, encoder.num_levels)
    return result


def index_entropies(
    run_dir: pathlib.Path, images: np.ndarray, args: argparse.Namespace, seed: int
) -> dict[str, float]:
    """Ideal code lengths (bits/image) of the test indices under priors fitted on the train split.

    What an entropy coder of the quantization indices could reach at best, for four priors, all
    add-one/half smoothed and scored by cross-entropy on the test indices (seeds seed + i):
    ``marginal`` per-dimension P(k) (what the `range` method codes with), ``joint`` P(k_1..k_d)
    over the L**d tuples, ``dithered`` per-dimension P(k | u) and ``joint_dithered``
    P(k_1..k_d | u), the last two counted over every training latent shifted by the test image's
    dither (Monte Carlo over f(x) of the train split, the rate H(K | U) of universal
    quantization). The training indices use seeds 10**9 + i, never the test seeds.
    """
    from rdc_keras import runs
    from rdc_keras.layers import dither

    encoder, description = runs.load_encoder(runs.RunDir(run_dir).encoder_source())
    d, levels = description["latent_dim"], description["num_levels"]

    def quantize(values: np.ndarray) -> np.ndarray:
        return nearest_index(values, levels).astype(np.int64)

    train = data.load_arrays(args.dataset, "train", data_dir=args.data_dir)[0]
    y_train = encoder.predict(train, batch_size=1000, verbose=0).astype(np.float64)
    y_test = encoder.predict(images, batch_size=1000, verbose=0).astype(np.float64)
    u_train = dither(image_seeds(10**9, len(y_train)), d, levels).numpy()
    u_test = dither(image_seeds(seed, len(y_test)), d, levels).numpy()
    k_train, k_test = quantize(y_train + u_train), quantize(y_test + u_test)
    weights = levels ** np.arange(d)
    out = {"marginal": 0.0, "dithered": 0.0}
    for j in range(d):
        counts = np.bincount(k_train[:, j], minlength=levels) + 1.0
        out["marginal"] -= np.log2(counts[k_test[:, j]] / counts.sum()).mean()
    counts = np.bincount(k_train @ weights, minlength=levels**d) + 1.0
    out["joint"] = float(-np.log2(counts[k_test @ weights] / counts.sum()).mean())
    joint_dithered = 0.0
    for i in range(len(y_test)):
        shifted = quantize(y_train + u_test[i])  # every training latent under this dither
        tuple_counts = np.bincount(shifted @ weights, minlength=levels**d) + 0.5
        joint_dithered -= np.log2(tuple_counts[k_test[i] @ weights] / tuple_counts.sum())
        for j in range(d):
            dim_counts = np.bincount(shifted[:, j], minlength=levels) + 0.5
            out["dithered"] -= np.log2(dim_counts[k_test[i, j]] / dim_counts.sum())
    out["dithered"] /= len(y_test)
    out["joint_dithered"] = joint_dithered / len(y_test)
    return {key: float(value) for key, value in out.items()}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Measures every configuration, prints a summary line each and writes the JSON records."""
    from rdc_keras import runs

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="mnist_idx")
    parser.add_argument("--data_dir", default=str(common.DEFAULT_DATA_DIR))
    parser.add_argument("--configs", default="3x3,3x4,4x4", help="comma-separated DxL")
    parser.add_argument("--run", action="append", default=[], help="DxL=RUN_DIR (skip training)")
    parser.add_argument("--workdir", default=str(common.REPO_ROOT / "bench" / "runs" / "rate"))
    parser.add_argument("--epochs", type=int, default=None, help="default: the preset's")
    parser.add_argument("--steps_per_epoch", type=int, default=None)
    parser.add_argument("--lambda_c", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=1)
    parser.add_argument("--output", default=str(common.default_output("rate.json", quick=False)))
    args = parser.parse_args(argv)
    if args.dataset == "digits":
        args.data_dir = None
    configs = [_parse_config(c) for c in args.configs.split(",") if c]
    given = {}
    for item in args.run:
        key, _, path = item.partition("=")
        given[_parse_config(key)] = pathlib.Path(path)
    images = data.load_arrays(args.dataset, "test", data_dir=args.data_dir)[0]
    records = common.Records(common.command_line("bench.bench_rate", argv))
    classifier_dir = None
    for d, levels in configs:
        run_dir = given.get((d, levels)) or _train(args, d, levels, classifier_dir)
        own_judge = runs.RunDir(run_dir).classifier_dir
        if classifier_dir is None and own_judge.is_dir():
            classifier_dir = str(own_judge)  # one judge for every setting
        name = f"{args.dataset}-d{d}-L{levels}"
        root = pathlib.Path(args.workdir) / "exports" / name
        manifest = export.export_run(run_dir, root.parent, name)
        if (manifest["latent_dim"], manifest["num_levels"]) != (d, levels):
            raise ValueError(
                f"{run_dir} holds d={manifest['latent_dim']}, L={manifest['num_levels']}"
            )
        encoder = export.load_encoder(root)
        head_path = next(iter(common.export_head_paths(root, manifest).values()))
        result = measure(encoder, export.load_head(head_path, encoder), images, args.seed)
        bound = result["bound_bits"]
        whole = result["whole"]
        for method, entry in result["methods"].items():
            chosen = " (auto's choice)" if method == whole["method"] else ""
            records.add(
                f"payload_bits_per_image[{name},n={whole['count']},{method}]",
                entry["payload_bits_per_image"],
                f"bits/image{chosen}",
                bound,
            )
        for estimate, bits in index_entropies(run_dir, images, args, seed=args.seed).items():
            records.add(
                f"index_entropy_bits[{name},{estimate}]",
                bits,
                "bits/image (ideal code length on the test split; see docstring)",
                bound,
            )
        for size, entry in result["batches"].items():
            records.add(
                f"file_bytes_per_image[{name},batch={size},files={entry['files']}]",
                entry["bytes_per_image"],
                "bytes/image (incl. the format 2 container)",
                bound / 8,
            )
            records.add(
                f"file_bytes_per_image_format1[{name},batch={size},files={entry['files']}]",
                entry["format1_bytes_per_image"],
                f"bytes/image (same payloads, format 1's {codec.V1_OVERHEAD_BYTES}-byte container)",
                bound / 8,
            )
        print(
            f"{name}: {whole['payload_bits_per_image']:.3f} bits/image ({whole['method']}) vs "
            f"bound {bound:.3f}; "
            + ", ".join(
                f"{m} {e['payload_bits_per_image']:.3f}" for m, e in result["methods"].items()
            )
            + "; "
            + ", ".join(
                f"batch {s}: {e['bytes_per_image']:.3f} B/image"
                for s, e in result["batches"].items()
            ),
            flush=True,
        )
    output = common.write_results(args.output, records.records)
    print(f"wrote {output}")
    return records.records


if __name__ == "__main__":
    main()
