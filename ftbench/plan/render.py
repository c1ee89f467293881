"""`ftbench plan` output: one Rich table (a row per method) and its JSON twin."""

from __future__ import annotations

from typing import Any

from ftbench.plan.estimate import MAX_BATCH, Prediction


def format_mb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def format_secs(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 0.01:
        return f"{value * 1000:.2g} ms"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


def _weights(parts: dict[str, float]) -> str:
    return "+".join(f"{v:,.0f}{'' if k == 'fp32' else ' ' + k}" for k, v in parts.items()
                    if v >= 0.5) or "0"


def _count(n: int) -> str:
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def plan_table(preset: str, rows: list[Prediction], references: dict[str, float] | None = None) -> Any:
    # rich only for the table: `ftbench plan --json` imports this module and needs none
    from rich import box
    from rich.table import Table

    first = rows[0]
    dev = first.device
    where = dev.name or dev.kind
    free = f", {dev.free_mb:,.0f} MB free ({dev.source})" if dev.free_mb is not None else ""
    table = Table(title=f"ftbench plan · {preset} · {first.model} · {where}{free}",
                  box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False, show_edge=False)
    cuda = first.device.kind == "cuda"
    columns = ["method", "train", "weights", "grads", "adamw", "activ", "fwd", "other", "PEAK"]
    columns += ["needs"]
    columns += ["reported"] if references else []
    columns += ["step", "run", "fits", "max bs"]
    for col in columns:
        table.add_column(col, justify="left" if col == "method" else "right", no_wrap=True)
    for p in rows:
        m = p.memory.to_dict()
        fits = {True: "[green]yes[/]", False: "[bold red]NO[/]", None: "?"}[p.fits]
        largest = "-" if p.largest_batch is None else (
            f"{p.largest_batch}+" if p.largest_batch >= MAX_BATCH else str(p.largest_batch))
        cells = [p.method, _count(p.trainable), _weights(m["weights_mb"]),
                 format_mb(m["gradients_mb"]), format_mb(m["optimizer_mb"] + m["master_copies_mb"]),
                 format_mb(m["activations_mb"] + m["backward_working_set_mb"]),
                 format_mb(m["forward_working_set_mb"]),
                 format_mb(m["workspace_mb"]), format_mb(p.peak_mb)]
        cells.append(format_mb(p.device_total_mb))
        if references is not None:
            ref = references.get(p.method)
            cells.append(format_mb(ref) if ref is not None else "-")
        cells += [format_secs(p.time.step_s), format_secs(p.time.run_s), fits, largest]
        table.add_row(*cells)
    gc = "with" if first.gradient_checkpointing else "without"
    basis = "; ".join(dict.fromkeys(p.time.basis for p in rows))
    table.caption = (
        f"batch {first.batch_size} x {first.max_length} tokens, {first.precision}, {gc} gradient "
        "checkpointing; memory in MB, weights fp32 unless named; train = trainable parameters; "
        "activ = saved for backward plus the backward working set; fwd = what a forward that "
        "saves nothing holds at once (evaluation at its batch, a frozen backbone): PEAK counts "
        "the larger of activ, grads and fwd. "
        + ("PEAK predicts torch.cuda.max_memory_allocated (other = cuBLAS workspaces); needs adds "
           "the CUDA context and the allocator's reserve slack, and is what must be free (fits). "
           if cuda else "PEAK is what the run holds at its peak (other = the training runtime); "
           "needs adds the heap glibc keeps after freeing: it predicts the process RSS growth "
           "from before the model loads, and is what must be free (fits). ")
        + f"time: {basis}"
        + (". reported: the peak the preset's write-up measured (its model, GPU and tooling)"
           if references else ""))
    return table


def plan_json(preset: str, rows: list[Prediction]) -> dict[str, Any]:
    return {"preset": preset, "runs": [p.to_dict() for p in rows]}
