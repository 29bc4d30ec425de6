"""Choosing where Paddle runs: once, at the edge of each stage."""

import paddle

from stages.params import ParamsError


def select_device(name: str) -> str:
    """Set and return Paddle's device for `name` ("auto", "cpu" or "gpu").

    auto takes the GPU when this Paddle is built with CUDA and sees a GPU (paddlepaddle-gpu on a GPU
    machine), else the CPU; gpu without either is an error rather than a silent fall-back.
    """
    has_gpu = paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    if name == "gpu" and not has_gpu:
        raise ParamsError("train.device: 'gpu' is not available: this Paddle "
                          + ("sees no GPU" if paddle.is_compiled_with_cuda() else "is built without CUDA")
                          + "; install paddlepaddle-gpu on a machine with a GPU, or set train.device to "
                          "'auto' or 'cpu'")
    device = "gpu:0" if name == "gpu" or (name == "auto" and has_gpu) else "cpu"
    paddle.set_device(device)
    return device
