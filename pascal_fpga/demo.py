"""The main job: the whole pipeline on the embedded digits set, with one summary at the end.

For now the pipeline is train and evaluate; each later stage adds its step here. Everything is built
in a temporary folder beside ``out`` and moved into place at the end, so a failed demo leaves no
half-written folder.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from .errors import PascalError

DEMO_SPEC = "digits-cnn.yaml"
DEMO_DATASET = "digits"
DEMO_EPOCHS = 30


def run_demo(out: Path, models_dir: Path, epochs: int | None = None, progress: bool = False) -> dict:
    """Run the demo into ``out`` and print its summary; returns the summary rows."""
    from .train import TrainConfig, evaluate_run, train

    spec_path = models_dir / DEMO_SPEC
    if not spec_path.is_file():
        raise PascalError(f"{spec_path}: the demo's spec is missing (run from a clone of the repo)")
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    summary: dict[str, object] = {}
    started = time.perf_counter()
    try:
        run_dir = staging / "run"
        print(f"[1/2] train {DEMO_SPEC} on {DEMO_DATASET}", flush=True)
        metrics = train(TrainConfig(spec=str(spec_path), dataset=DEMO_DATASET, out=str(run_dir),
                                    epochs=DEMO_EPOCHS if epochs is None else epochs,
                                    batch_size=64, lr=2e-3, seed=0), progress=progress)
        print("[2/2] evaluate the trained QCFS network", flush=True)
        result = evaluate_run(run_dir)
        summary = {
            "spec": DEMO_SPEC,
            "dataset": f"{DEMO_DATASET} ({metrics['train_images']} train / "
                       f"{result['test_images']} test)",
            "epochs": metrics["epochs"],
            "train seconds": f"{metrics['train_seconds']:.1f}",
            "L per QCFS layer": " ".join(str(layer["levels"]) for layer in metrics["levels"]),
            "QCFS test accuracy": f"{100 * result['test_accuracy']:.2f}%",
        }
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    summary["run directory"] = str(out / "run")
    summary["total seconds"] = f"{time.perf_counter() - started:.1f}"
    width = max(len(key) for key in summary)
    print("\npascal-fpga demo summary")
    for key, val in summary.items():
        print(f"  {key:<{width}}  {val}")
    return summary
