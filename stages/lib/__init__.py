"""The library the DVC stages share: params, data, model, losses, remedies, samplers, training state, metrics."""
