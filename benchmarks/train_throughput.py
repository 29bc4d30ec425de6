"""Training and evaluation throughput of the project's Paddle code against a PyTorch eager peer, in one run.

Both sides train the same LeNet with the same loss (cross-entropy), optimizer (Momentum SGD), batch size and
data (the first --images real MNIST training images, held in memory as one tensor, reshuffled each epoch),
and evaluate in batches of evaluate.batch_size. Throughput is steady state: one epoch of warm-up, then the
mean over --epochs epochs.

    python benchmarks/train_throughput.py            # needs data/raw (`dvc repro download`) and
                                                     # PyTorch (`pip install torch==2.13.0`)
"""

import argparse
import os
import platform
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stages import params as P  # noqa: E402
from stages.data import load_split, stream_rng, to_model_input  # noqa: E402


def steady_throughput(run_epoch, epochs: int, images_per_epoch: int) -> float:
    """Images/s over `epochs` calls of run_epoch(epoch) after one warm-up call."""
    run_epoch(0)
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        run_epoch(epoch)
    return epochs * images_per_epoch / (time.perf_counter() - start)


def paddle_throughput(images, labels, test_images, train: P.TrainParams, eval_batch: int, epochs: int):
    import paddle

    from stages.device import select_device
    from stages.evaluate import predict_logits
    from stages.losses import LOSSES
    from stages.train import create_train_state, train_epoch

    select_device("cpu")
    model, optimizer = create_train_state(train, seed=0)
    x_all, y_all = paddle.to_tensor(images), paddle.to_tensor(labels)
    loss_fn = LOSSES["cross_entropy"]

    def run_epoch(epoch):
        order = stream_rng(0, epoch).permutation(len(labels))
        train_epoch(model, optimizer, loss_fn, x_all, y_all, order, train.batch_size)

    train_rate = steady_throughput(run_epoch, epochs, len(labels))
    eval_rate = steady_throughput(lambda _: predict_logits(model, test_images, eval_batch), epochs,
                                  len(test_images))
    # Paddle sets OMP_NUM_THREADS to 1 unless it is set; 2 measured slower for this network on 2 cores.
    return train_rate, eval_rate, f"paddle {paddle.__version__}, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}"


def torch_throughput(images, labels, test_images, train: P.TrainParams, eval_batch: int, epochs: int):
    import torch
    from torch import nn

    class TorchLeNet(nn.Module):
        """The same network as stages.model.LeNet."""

        def __init__(self):
            super().__init__()
            self.conv1, self.pool1 = nn.Conv2d(1, 6, 5), nn.MaxPool2d(2, 2)
            self.conv2, self.pool2 = nn.Conv2d(6, 16, 5), nn.MaxPool2d(2, 2)
            self.conv3, self.fc1, self.fc2 = nn.Conv2d(16, 120, 4), nn.Linear(120, 64), nn.Linear(64, 10)

        def forward(self, x):
            x = torch.sigmoid(self.pool1(torch.sigmoid(self.conv1(x))))
            x = torch.flatten(self.conv3(self.pool2(self.conv2(x))), 1)
            return self.fc2(torch.sigmoid(self.fc1(x)))

    torch.manual_seed(0)
    model = TorchLeNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=train.learning_rate, momentum=train.momentum)
    x_all, y_all = torch.from_numpy(images), torch.from_numpy(labels)

    def run_epoch(epoch):
        order = torch.from_numpy(stream_rng(0, epoch).permutation(len(labels)))
        loss_sum = torch.zeros(())
        for start in range(0, len(order), train.batch_size):
            batch = order[start:start + train.batch_size]
            x, y = x_all.index_select(0, batch), y_all.index_select(0, batch)
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(batch)
        loss_sum.item()

    def run_eval(_):
        with torch.no_grad():
            for start in range(0, len(test_images), eval_batch):
                model(torch.from_numpy(test_images[start:start + eval_batch])).numpy()

    train_rate = steady_throughput(run_epoch, epochs, len(labels))
    eval_rate = steady_throughput(run_eval, epochs, len(test_images))
    return train_rate, eval_rate, f"torch {torch.__version__}, {torch.get_num_threads()} threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000, help="training images per epoch")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs after one warm-up epoch")
    args = parser.parse_args()
    params = P.read_params()
    data = P.section(params, "data", P.DataParams)
    train = P.section(params, "train", P.TrainParams)
    eval_batch = P.section(params, "evaluate", P.EvaluateParams).batch_size
    images, labels = load_split("train", args.images)
    images = to_model_input(images, data.pixel_range)
    test_images = to_model_input(load_split("test")[0], data.pixel_range)

    results = {name: side(images, labels, test_images, train, eval_batch, args.epochs)
               for name, side in (("project (Paddle)", paddle_throughput), ("peer (PyTorch eager)", torch_throughput))}
    peer_train, peer_eval, _ = results["peer (PyTorch eager)"]
    print(f"\n{len(labels)} training images x {args.epochs} epochs after 1 warm-up, batch {train.batch_size}; "
          f"evaluation of {len(test_images)} test images in batches of {eval_batch}; "
          f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, Python {platform.python_version()}\n")
    print("| implementation | train images/s | vs peer | eval images/s | vs peer | versions, threads |")
    print("|---|---:|---:|---:|---:|---|")
    for name, (train_rate, eval_rate, versions) in results.items():
        print(f"| {name} | {train_rate:,.0f} | {train_rate / peer_train:.2f}x | {eval_rate:,.0f} "
              f"| {eval_rate / peer_eval:.2f}x | {versions} |")


if __name__ == "__main__":
    main()
