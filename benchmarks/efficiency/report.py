"""The efficiency benchmark's figure and summary, rendered from efficiency.csv (no measuring here).

`python -m benchmarks.efficiency --from-csv results/efficiency.csv` re-renders them; benchmark.py
measures (through measure.py) and then calls `render`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from benchmarks.efficiency.models import DILATED, FAST_PATHS, HEADLINE, MODELS, VOC_IMAGE
from benchmarks.report.summaries import protocol_link
from refinenet.atomic import atomic_path, write_text_atomic

GIB = 2**30


def render(args, csv_path: Path) -> int:
    """The figure and the summary, from the CSV (and the run's notes beside it)."""
    import pandas as pd

    table = pd.read_csv(csv_path)
    first = table.iloc[0]
    common = {k: first[k] for k in ("device", "device_type", "torch", "code_version", "date")}
    notes_path = csv_path.with_name("efficiency-run.json")
    notes = json.loads(notes_path.read_text()) if notes_path.exists() else {}
    plot(table, args.out / "efficiency.png", common["device"])
    write_text_atomic(args.out / "efficiency.md", summary(table, args, common, notes))
    return 0


def plot(table, path: Path, device: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("train_saved_activation_bytes", "any", GIB, "training activations (GiB, counted)"),
        ("train_peak_rss" if "train_peak_rss" in set(table.measurement) else "train_cuda_max_memory_allocated",
         "channels_last", GIB, "training-step peak memory (GiB)"),
        ("inference_time", "channels_last", 1, "inference time (s / image)"),
        ("train_step_time", "channels_last", 1, "training step time (s)"),
    ]
    colors = {model: f"C{i}" for i, model in enumerate(MODELS)}  # one colour per model in every panel
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2))
    for ax, (measurement, setting, scale, title) in zip(axes, panels):
        sel = table[(table.measurement == measurement) & (table.setting == setting)]
        for model, group in sel.groupby("model", sort=False):
            # A size measured twice (model sweep and fast-path job share fp32 channels_last): keep the
            # fastest / smallest, the one least disturbed by other work on the machine.
            group = group.assign(input_size=group.input_size.astype(int), value=group.value.astype(float))
            group = group.groupby("input_size", as_index=False).value.min()
            ax.plot(group.input_size, group.value / scale, marker="o", label=model,
                    color=colors.get(model))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("input size (pixels per side)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"RefineNet vs dilated ResNet-101 (DeepLab-v2 ASPP) vs FCN-32s, batch 1, fp32 — {device}",
                 fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def _value(table, model, size, setting, measurement):
    sel = table[(table.model == model) & (table.input_size.astype(str) == str(size)) & (table.setting == setting)
                & (table.measurement == measurement)]
    return float(sel.value.astype(float).min()) if len(sel) else float("nan")  # duplicates: see plot()


def summary(table, args, common: dict, notes: dict) -> str:
    """efficiency.md: how it was measured, then one section per comparison."""
    models = [m for m in dict.fromkeys(table.model) if m in MODELS]  # not the "fp32-GEMM" row
    ref = HEADLINE if HEADLINE in models else models[0]  # --quick / --models runs may leave RefineNet-101 out
    on_cpu = common["device_type"] == "cpu"
    peaks = ("train_peak_rss", "inference_peak_rss") if on_cpu else \
        ("train_cuda_max_memory_allocated", "inference_cuda_max_memory_allocated")
    image = "x".join(map(str, VOC_IMAGE if not args.quick else (48, 64)))
    lines = _introduction(args, common, notes, _layout_ratio(table, args, ref)) + [protocol_link(), ""]
    lines += _headline_comparison(table, args, ref, peaks)
    lines += _every_model(table, args, models, peaks[0])
    lines += _against_peer(table, args, ref)
    lines += _fast_paths(table, args, ref, common, image)
    lines += _memory_lean(table, args, ref, peaks[0])
    lines += _multi_scale_and_crf(table, ref, image)
    skipped = notes.get("skipped", [])
    if skipped:
        lines += ["## Not measured in this run", ""] + [f"- {s}" for s in skipped] + [""]
    return "\n".join(lines)


def _introduction(args, common: dict, notes: dict, layout: str) -> list[str]:
    total_s = notes.get("minutes", float("nan")) * 60
    load = notes.get("load_average")
    return [
        "# Efficiency: RefineNet against dilated networks",
        "",
        f"Device: **{common['device']}** ({common['device_type']}); torch {common['torch']};"
        f" code {common['code_version']}; {common['date']}. Batch {args.batch}, random weights, 21 classes."
        f" Produced by `python -m benchmarks.efficiency{' --quick' if args.quick else ''}` (`nox -s bench`)"
        f" in {total_s / 60:.1f} min; every number below is in"
        " `efficiency.csv`."
        + (f" Load average (1/5/15 min) at the start {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}, at the end"
           f" {notes['load_average_end'][0]:.1f} ({os.cpu_count()} cores)." if load else "")
        # The end's load includes the benchmark's own threads; only the start's says whether other work ran.
        + (" Other work kept the cores busy when it started, so CPU times may be inflated by contention;"
           " ratios between models measured back to back less so."
           if load and load[0] > 0.5 * os.cpu_count() else ""),
        "",
        f"Timing: median of {args.repeats} repeats after {args.warmup} warm-up; each timed measurement runs in a fresh"
        " process, so its peak RSS is its own (on CPU the RSS includes the interpreter, torch and the weights"
        " — about 1 GiB — and the gradients). Model comparison timings use fp32 channels_last for every model"
        f" (exact fp32 numbers{layout}). Counted memory and FLOPs"
        f" cover sizes {sorted(set(args.sizes))}; timing covers {sorted(set(args.timed_sizes))} (chosen so the CPU"
        " run stays near 20 minutes on 2 cores). FLOPs are FlopCounterMode's convolution/matmul FLOPs"
        " (2 per multiply-add); training activations are the bytes autograd saves for the backward pass,"
        " counted exactly with saved-tensor hooks (parameters excluded).",
        "",
    ]


def _layout_ratio(table, args, ref: str) -> str:
    """How channels_last's training step compared with NCHW's in this run (it differs between CPUs)."""
    size = args.fast_path_size
    cl, nchw = (_value(table, ref, size, s, "train_step_time") for s in ("channels_last", "eager-fp32"))
    if not (cl > 0 and nchw > 0):
        return ""
    return (f"; on this device {ref}'s training step at {size}x{size} took {cl / nchw:.2f}x the time of the NCHW"
            " step, see the fast paths")


def _headline_comparison(table, args, ref: str, peaks: tuple[str, str]) -> list[str]:
    size = args.size
    lines = [
        f"## RefineNet-101 vs dilated ResNet-101 (output stride 8, ASPP) at {size}x{size}",
        "",
        "| measurement | RefineNet-101 | dilated ResNet-101 OS8 | ratio |",
        "|---|---|---|---|",
    ]
    rows = [
        ("score map resolution", "output_height", "any", 1, "{:.0f}"),
        ("parameters (M)", "params", "any", 1e6, "{:.1f}"),
        ("GFLOPs, forward", "gflops_forward", "any", 1, "{:.0f}"),
        ("GFLOPs, training step", "gflops_train_step", "any", 1, "{:.0f}"),
        ("training activations (GiB, counted)", "train_saved_activation_bytes", "any", GIB, "{:.2f}"),
        ("training-step peak memory (GiB)", peaks[0], "channels_last", GIB, "{:.2f}"),
        ("inference peak memory (GiB)", peaks[1], "channels_last", GIB, "{:.2f}"),
        ("inference time (s)", "inference_time", "channels_last", 1, "{:.3f}"),
        ("training step time (s)", "train_step_time", "channels_last", 1, "{:.3f}"),
    ]
    for label, measurement, setting, scale, fmt in rows:
        a = _value(table, ref, size, setting, measurement)
        b = _value(table, DILATED, size, setting, measurement)
        lines.append(f"| {label} | {fmt.format(a / scale)} | {fmt.format(b / scale)} | {a / b:.2f} |")
    return lines


def _every_model(table, args, models: list[str], train_peak: str) -> list[str]:
    sizes, timed = sorted(set(args.sizes)), sorted(set(args.timed_sizes))
    lines = ["", "All models, counted at each size (GFLOPs forward / training activations GiB):", "",
             "| model | params (M) | " + " | ".join(f"{s}" for s in sizes) + " |",
             "|---|---|" + "---|" * len(sizes)]
    for model in models:
        cells = [f"{_value(table, model, s, 'any', 'gflops_forward'):.0f} / "
                 f"{_value(table, model, s, 'any', 'train_saved_activation_bytes') / GIB:.2f}"
                 for s in sizes]
        params = _value(table, model, args.size, "any", "params") / 1e6
        lines.append(f"| {model} | {params:.1f} | " + " | ".join(cells) + " |")
    lines += ["", "Timed (fp32 channels_last; inference s / training step s / training peak memory GiB):", "",
              "| model | " + " | ".join(str(s) for s in timed) + " |",
              "|---|" + "---|" * len(timed)]
    for model in models:
        cells = [f"{_value(table, model, s, 'channels_last', 'inference_time'):.3f} / "
                 f"{_value(table, model, s, 'channels_last', 'train_step_time'):.3f} / "
                 f"{_value(table, model, s, 'channels_last', train_peak) / GIB:.2f}"
                 for s in timed]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return lines


def _fast_paths(table, args, ref: str, common: dict, image: str) -> list[str]:
    fp_size = args.fast_path_size
    value = lambda setting, measurement: _value(table, ref, fp_size, setting, measurement)
    lines = ["", f"## Fast paths, RefineNet-101 at {fp_size}x{fp_size}", "",
             "| setting | inference s | speed-up | training step s | speed-up | training GFLOP/s (of fp32 GEMM) |"
             " compile s (inf / train) | rel. error vs fp32 | argmax agreement |", "|---" * 9 + "|"]
    base_inf, base_train = value("eager-fp32", "inference_time"), value("eager-fp32", "train_step_time")
    for setting in FAST_PATHS:
        inf, train = value(setting, "inference_time"), value(setting, "train_step_time")
        comp = ""
        if "compile" in setting:
            comp = f"{value(setting, 'compile_time_inference'):.0f} / {value(setting, 'compile_time_train_step'):.0f}"
        err = value(setting, "output_relative_error_vs_eager_fp32")
        agree = value(setting, "argmax_agreement_vs_eager_fp32")
        gemm_fraction = value(setting, "train_step_fraction_of_fp32_gemm")
        rate = f"{value(setting, 'train_step_gflops_per_s'):.0f} ({gemm_fraction:.2f})"
        lines.append(f"| {setting} | {inf:.3f} | {base_inf / inf:.2f}x | {train:.3f} | {base_train / train:.2f}x |"
                     f" {rate} | {comp} | {err:.1e} | {agree:.4f} |")
    lines += ["", "Defaults (refinenet/fastpath.py): fp32 everywhere (bf16 only with `--amp bf16`); channels_last on"
              " CUDA; on a CPU the layout is picked per machine by timing both (refinenet/cpu_layout.py) while"
              " batch norm is frozen, NCHW while it trains. bf16 rows count their FLOPs against the fp32 GEMM,"
              " so their fraction can pass 1.", ""]
    ev = lambda m: _value(table, ref, image, "channels_last", m)
    lines += [f"Evaluation helpers ({image} image, channels_last fp32): forward under no_grad"
              f" {ev('time_forward_no_grad'):.3f} s vs inference_mode {ev('time_forward_inference_mode'):.3f} s;"
              f" confusion-matrix update on the device {ev('time_confusion_matrix_on_device') * 1e3:.1f} ms vs via"
              f" the CPU {ev('time_confusion_matrix_via_cpu') * 1e3:.1f} ms (the same thing on a CPU run).", ""]
    return lines


def _against_peer(table, args, ref: str) -> list[str]:
    """The paper recipe's step under the suite's default against a peer-style eager fp32 step, and the GEMM limit."""
    size = args.fast_path_size
    lines = ["", "## Speed against a peer implementation, and against the machine's limit", ""]
    gemm = table[table.measurement == "fp32_gemm_gflops_per_s"]
    if len(gemm):
        lines.append(f"fp32 GEMM: **{float(gemm.value.iloc[0]):.0f} GFLOP/s** ({gemm.method.iloc[0]}), the practical"
                     " limit every timed step's FLOP/s is compared with below and in the fast-path table.")
    steps = table[(table.model == ref) & (table.measurement == "speed_vs_peer")]
    if not len(steps):
        return lines + ["", "The step against the peer was not measured in this run.", ""]
    lines += ["", f"The paper recipe's training step ({ref}, {size}x{size}, batch {args.batch}, frozen batch norm,"
              " dropout, SGD with momentum and weight decay) under the suite's default fast path against a"
              " peer-style eager fp32 step (NCHW, no fast path) of the same model and weights; the settings' steps"
              " alternate in one process (benchmarks/efficiency/speed.py).", "",
              "| setting | fast path | precision | step s | speed vs peer | GFLOP/s | of fp32 GEMM |",
              "|---" * 7 + "|"]
    for _, row in steps.iterrows():
        step_s, rate, fraction = (_value(table, ref, size, row.setting, m) for m in
                                  ("train_step_time", "train_step_gflops_per_s", "train_step_fraction_of_fp32_gemm"))
        lines.append(f"| {row.setting} | {row['method'].split('; ')[-1]} | {row['dtype']} | {step_s:.3f} |"
                     f" {row.value:.2f}x | {rate:.0f} | {fraction:.2f} |")
    return lines + [""]


def _memory_lean(table, args, ref: str, train_peak: str) -> list[str]:
    size = args.size
    lines = [f"## Memory-lean training (RefineNet-101, {size}x{size}, fp32 channels_last)", "",
             "| | default | memory_lean | ratio |", "|---|---|---|---|"]
    for label, measurement, setting_lean, setting_default, scale, fmt in [
        ("training activations, counted on the meta device (GiB)", "train_saved_activation_bytes", "memory_lean", "any",
         GIB, "{:.3f}"),
        ("training activations, counted in the real step (GiB)", "train_saved_activation_bytes",
         "channels_last+memory_lean", "channels_last", GIB, "{:.3f}"),
        ("training-step peak memory (GiB)", train_peak, "channels_last+memory_lean", "channels_last", GIB, "{:.2f}"),
        ("training step time (s)", "train_step_time", "channels_last+memory_lean", "channels_last", 1, "{:.3f}"),
    ]:
        a = _value(table, ref, size, setting_default, measurement)
        b = _value(table, ref, size, setting_lean, measurement)
        lines.append(f"| {label} | {fmt.format(a / scale)} | {fmt.format(b / scale)} | {b / a:.2f} |")
    lines += ["", "memory_lean recomputes every RefineNet block and every ResNet stage in the backward pass"
              " (non-reentrant torch.utils.checkpoint, RNG state restored) and sums in place where no backward"
              " needs the overwritten tensor; outputs and gradients are bit-identical (tests/test_memory_lean.py)."
              " Counted activations are what the forward pass keeps; the peak also holds one block's recomputed"
              " activations during the backward pass.", ""]
    return lines


def _multi_scale_and_crf(table, ref: str, image: str) -> list[str]:
    ev = lambda m: _value(table, ref, image, "channels_last", m)
    return [f"## Multi-scale and CRF cost, RefineNet-101, one {image} image (fp32 channels_last)", "",
            "| single scale | multi-scale (PAPER_SCALES) | dense CRF alone | multi-scale + dense CRF |",
            "|---|---|---|---|",
            f"| {ev('time_single_scale'):.2f} s | {ev('time_multi_scale'):.2f} s | {ev('time_dense_crf'):.2f} s |"
            f" {ev('time_multi_scale_crf'):.2f} s |", ""]
