"""Know before you run: `ftbench plan` predicts, for each run of a preset, the trainable
parameters, the peak memory by part, the time per step and per run, and whether it fits the
free memory of this machine's GPU (or RAM), with the largest batch that does.

Modules, one job each (none imports torch at import time but `meta` and `trace`, which
`estimate.predict` imports as it plans, after torch):

* `meta`: the run's model with its method applied, on the meta device (config only);
* `weights`: parameter counts (the run's own rule) and weight bytes by dtype (NF4 for QLoRA);
* `trace`: what autograd saves for backward, from one meta forward pass;
* `memory`: the peak from its parts (weights, gradients, AdamW states, master copies,
  activations, workspace and context overhead);
* `timing`: time from the analytic FLOPs and a stated throughput basis;
* `device`: the device and its free memory (NVML, or RAM on a CPU);
* `estimate`: `predict(spec, device) -> Prediction`, the one entry point;
* `record`: the prediction a run stores as ``record.prediction``;
* `render`: the Rich table and JSON of `ftbench plan`.
"""
