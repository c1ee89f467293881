"""The prediction a run stores in its record (``record.prediction``), made before the model loads."""

from __future__ import annotations

from typing import Any, Callable

from ftbench.spec import RunSpec


def prediction_for_record(spec: RunSpec, device: str, model_kwargs: dict[str, Any],
                          log: Callable[[str, str], None] | None = None) -> dict[str, Any] | None:
    """``predict(spec).to_dict()`` for the device the run uses, or None if planning fails (a
    prediction must never cost a run its record; the failure is logged as a warning).

    Called just before the model loads. On a CPU it then opens the run's host-memory window
    (`ftbench.engine.hostmem`, after planning so planning's own memory is not the run's): the
    RSS baseline the prediction is compared with (``baseline_rss_mb``) and how the peak is read
    (``rss_window``)."""
    doc = _prediction(spec, device, model_kwargs, log)
    from ftbench.engine import hostmem

    if device != "cpu":
        hostmem.close_window()
        if doc is not None:
            doc["baseline_rss_mb"] = _rss_mb()
        return doc
    window = hostmem.open_window()
    if doc is not None:
        doc["baseline_rss_mb"] = window.baseline_mb
        doc["rss_window"] = window.to_dict()
    return doc


def _prediction(spec: RunSpec, device: str, model_kwargs: dict[str, Any],
                log: Callable[[str, str], None] | None) -> dict[str, Any] | None:
    try:
        from ftbench.plan.device import cpu_device, probe_device
        from ftbench.plan.estimate import predict

        info = probe_device() if device == "cuda" else cpu_device()
        if info.kind != device:  # NVML unreadable on a CUDA run: plan for CUDA, free unknown
            from ftbench.plan.device import DeviceInfo

            info = DeviceInfo(device, None, None, None, "NVML unavailable")
        return predict(spec, info, num_labels=model_kwargs.get("num_labels")).to_dict()
    except Exception as exc:
        if log is not None:
            text = str(exc).strip().splitlines()
            log(f"no prediction for this run: {type(exc).__name__}: {text[0] if text else ''}", "warning")
        return None


def _rss_mb() -> float | None:
    try:
        import psutil

        return round(psutil.Process().memory_info().rss / 2**20, 1)
    except Exception:
        return None
