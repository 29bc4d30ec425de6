"""What flushing checkpoints to disk costs: save_checkpoint of the LeNet (weights, Momentum state, the seen
mask of the report's 32,463-image subset) with and without its fsyncs, alternated, in one process.

    python benchmarks/checkpoint_fsync.py [repeats]

One checkpoint is saved per epoch; a stage's other writes (weights, log, summary, metrics) are a handful of
files more, each with one fsync of the file and one of its directory.
"""

import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import paddle

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.lib import files  # noqa: E402
from stages.lib.checkpoints import Resumed, save_checkpoint  # noqa: E402
from stages.lib.model import LeNet  # noqa: E402

SUBSET_IMAGES = 32463


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    model = LeNet()
    optimizer = paddle.optimizer.Momentum(learning_rate=0.01, momentum=0.9, parameters=model.parameters())
    model(paddle.ones([2, 1, 28, 28])).sum().backward()
    optimizer.step()  # so the optimizer has its velocity to save
    progress = Resumed([{"epoch": 1, "loss": 0.1}], np.zeros(SUBSET_IMAGES, dtype=bool))
    timings = {"with fsync": [], "without fsync": []}
    with tempfile.TemporaryDirectory(dir=".") as root:
        for _ in range(repeats):
            for label in timings:  # alternated, so drifting load hits both sides alike
                patch = mock.patch.object(files, "_fsync") if label == "without fsync" else mock.MagicMock()
                with patch:
                    start = time.perf_counter()
                    save_checkpoint(Path(root) / "checkpoint", "fingerprint", model, optimizer, progress)
                    timings[label].append(time.perf_counter() - start)
    for label, values in timings.items():
        print(f"save_checkpoint {label}: median {statistics.median(values) * 1e3:.2f} ms over {repeats}")
    extra = statistics.median(timings["with fsync"]) - statistics.median(timings["without fsync"])
    print(f"fsync adds {extra * 1e3:.2f} ms per epoch")


if __name__ == "__main__":
    main()
