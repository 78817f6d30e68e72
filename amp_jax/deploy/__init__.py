"""Deploying a policy: ONNX export with a runner's metadata, and its check in C MuJoCo (sim-to-sim)."""
