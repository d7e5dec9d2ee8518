"""Maintain the model zoo (models/zoo/): add a trained run, or check every entry.

    python scripts/zoo.py add RUN NAME --command "pascal-fpga train ..." [--command ...]
    python scripts/zoo.py check

``add`` copies RUN's spec.yaml and metrics.json into models/zoo/NAME/ with a slim checkpoint.pt
(the model, the spec, the history and the config: no optimizer state, so about a third of a
training checkpoint; it can be evaluated, converted, exported and compiled, not resumed), runs
the integer network on every test image and the PASCAL SNN on --snn-samples of them, and records
the commands, accuracies, mean L and SHA-256 of every file in models/zoo/zoo.json. An entry that
does not convert with 0 SNN/ANN differences is refused. ``check`` recomputes the checksums.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

ZOO = REPO / "models" / "zoo"
MANIFEST = ZOO / "zoo.json"
FILES = ("spec.yaml", "checkpoint.pt", "metrics.json")
OPTIONAL = ("adapt.json",)  # the AL plan, for adapted runs


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_manifest() -> dict:
    return json.loads(MANIFEST.read_text()) if MANIFEST.is_file() else {"models": []}


TEST_SUBSET = 1000  # tests/test_zoo.py reruns the integer network on the first 1000 test images


def integer_accuracy(run: Path, limit: int | None = None) -> tuple[float, int]:
    """(accuracy of the integer network on every test image, or the first ``limit``; images)."""
    # deferred: torch and Brevitas (``zoo.py check`` needs only the checksums)
    import torch

    from pascal_fpga.snn.convert import convert
    from pascal_fpga.train.trainer import images_to_tensor, load_run, run_dataset

    spec, net, metrics = load_run(run)
    data = run_dataset(run, spec, metrics)
    inet = convert(net)
    images = images_to_tensor(data.test_images[:limit])
    labels = torch.from_numpy(data.test_labels[:limit])
    correct = 0
    for start in range(0, len(images), 500):
        out, _ = inet.run(images[start:start + 500])
        correct += int((out.argmax(1) == labels[start:start + 500]).sum())
    return correct / len(images), len(images)


def add(run: Path, name: str, commands: list[str], snn_samples: int, note: str,
        threads: int | None = None) -> dict:
    # deferred: torch and Brevitas (``zoo.py check`` needs only the checksums)
    from pascal_fpga.snn.report import snn_report
    from pascal_fpga.train.trainer import load_checkpoint, save_checkpoint

    if not name.replace("-", "").isalnum():
        raise SystemExit(f"zoo.py: name {name!r}: letters, digits and '-' only")
    dest = ZOO / name
    ZOO.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ZOO) as tmp:
        staging = Path(tmp) / name
        staging.mkdir()
        shutil.copy(run / "spec.yaml", staging / "spec.yaml")
        metrics = json.loads((run / "metrics.json").read_text())
        state = load_checkpoint(run / "checkpoint.pt")
        slim = {k: v for k, v in state.items() if k != "optimizer"}
        save_checkpoint(staging / "checkpoint.pt", slim)
        (staging / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        files = list(FILES)
        for extra in OPTIONAL:
            if (run / extra).is_file():
                shutil.copy(run / extra, staging / extra)
                files.append(extra)
        int_acc, test_images = integer_accuracy(staging)
        subset_acc, subset = integer_accuracy(staging, TEST_SUBSET)
        report = snn_report(staging, samples=snn_samples, float_mode=False, progress=True,
                            timesteps=(1,))  # the baseline conversion is not recorded
        shutil.rmtree(staging / "snn", ignore_errors=True)  # snn_report's plots: not kept
        if report["mismatched_samples"]:
            raise SystemExit(f"zoo.py: {run}: {report['mismatched_samples']} samples differ "
                             f"between the SNN and the integer ANN; not added")
        config = state.get("config", {})
        entry = {
            "name": name,
            "network": metrics["name"],
            "dataset": metrics["dataset"],
            "note": note,
            "commands": commands,
            "seed": config.get("seed"),
            "device": metrics.get("device", "cpu"),
            # torch CPU threads of the training (None: not recorded); a command repeats the run
            # bit for bit with the same count
            "threads": metrics.get("threads", threads),
            "epochs": metrics["epochs"],
            "test_accuracy": metrics["test_accuracy"],
            "integer_accuracy": int_acc,
            "test_images": test_images,
            "integer_correct_first": {"images": subset, "correct": round(subset_acc * subset)},
            "snn_accuracy": report["snn_accuracy"],
            "snn_samples": report["samples"],
            "snn_mismatched_samples": report["mismatched_samples"],
            "levels": [layer["levels"] for layer in metrics["levels"]],
            "mean_levels": metrics["mean_levels"],
            "train_seconds": metrics["train_seconds"],
            "files": {f: sha256(staging / f) for f in files},
            "bytes": sum((staging / f).stat().st_size for f in files),
        }
        listed = any(m["name"] == name for m in load_manifest()["models"])
        if dest.exists():
            if not listed or not (dest / "checkpoint.pt").is_file():
                raise SystemExit(f"zoo.py: {dest} exists and is not a zoo entry; not replaced")
            shutil.rmtree(dest)
        staging.rename(dest)
    manifest = load_manifest()
    manifest["models"] = [m for m in manifest["models"] if m["name"] != name] + [entry]
    manifest["models"].sort(key=lambda m: m["name"])
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    return entry


def check() -> int:
    bad = 0
    for entry in load_manifest()["models"]:
        for file, digest in entry["files"].items():
            path = ZOO / entry["name"] / file
            if not path.is_file() or sha256(path) != digest:
                print(f"{path}: checksum differs from zoo.json")
                bad += 1
    print("zoo: all checksums match" if not bad else f"zoo: {bad} files differ")
    return 1 if bad else 0


def table() -> str:
    """The README's zoo table, from zoo.json."""
    rows = ["| model | data set | Brevitas (all test images) | integer network (all) | SNN samples "
            "differing from it | L per layer (mean) | epochs | size | SHA-256 of checkpoint.pt |",
            "|---|---|---|---|---|---|---|---|---|"]
    for m in load_manifest()["models"]:
        epochs = f"{m['epochs']}" + (" (fine-tune)" if len(m["commands"]) > 1 else "")
        rows.append(
            f"| `{m['name']}` | {m['dataset']} | {100 * m['test_accuracy']:.2f}% | "
            f"{100 * m['integer_accuracy']:.2f}% | {m['snn_mismatched_samples']} of "
            f"{m['snn_samples']} | {' '.join(map(str, m['levels']))} ({m['mean_levels']:.2f}) | "
            f"{epochs} | {m['bytes'] // 1024} KiB | `{m['files']['checkpoint.pt'][:12]}` |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("add")
    p.add_argument("run", type=Path)
    p.add_argument("name")
    p.add_argument("--command", action="append", required=True,
                   help="a command that produced the run, in order (repeat)")
    p.add_argument("--snn-samples", type=int, default=1000)
    p.add_argument("--note", default="")
    p.add_argument("--threads", type=int,
                   help="torch CPU threads of the training, for a run whose metrics lack them")
    sub.add_parser("check")
    sub.add_parser("table")
    sub.add_parser("subset", help="(re)compute integer_correct_first of every entry")
    args = parser.parse_args()
    if args.what == "add":
        entry = add(args.run, args.name, args.command, args.snn_samples, args.note, args.threads)
        print(json.dumps({k: v for k, v in entry.items() if k != "files"}, indent=2))
        return 0
    if args.what == "subset":
        manifest = load_manifest()
        for m in manifest["models"]:
            acc, n = integer_accuracy(ZOO / m["name"], TEST_SUBSET)
            m["integer_correct_first"] = {"images": n, "correct": round(acc * n)}
            print(m["name"], m["integer_correct_first"])
        MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
        return 0
    if args.what == "table":
        print(table())
        return 0
    return check()


if __name__ == "__main__":
    sys.exit(main())
