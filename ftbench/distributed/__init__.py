"""Runs beyond one process: torchrun data-parallel runs (`launch`, `worker`) and a queue of
runs spread over local devices (`parallel`); events travel to the parent as JSON lines over a
127.0.0.1 socket (`wire`). Nothing here imports torch at module import."""
