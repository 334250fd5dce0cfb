"""One large model, two ways: in-process ``ww_ray.analyze`` and a 2-worker local Ray sweep, side by side.

A Llama-shaped bf16 safetensors model (seeded N(0, 1/in) entries, rounded to bf16; ``config.json``
so forward order applies; sharded with ``model.safetensors.index.json`` above ``--shard-gb``) is
written into a temporary folder (``--dir``, default under ``$TMPDIR``) and deleted at the end, also
when something fails. Then, each phase in a fresh child process so no phase inherits another's
memory:

* ``in-process``: ``ww_ray.analyze(folder)`` (all BLAS threads of the machine);
* ``sweep``: the project's own sweep path (``ww_ray.engine.run_config`` on a ``kind: local`` zoo)
  on a real local Ray on 127.0.0.1 with ``--workers`` spectral workers;
* ``floor``: the eigen-solve floor — every analysed matrix's pure eigen-solve
  (``spectral.esd.gram_eigenvalues`` of an N×M float32 matrix, one BLAS thread; timed once per
  distinct shape and multiplied by its count) summed, and that sum divided by the cores: the wall
  time no scheduling can beat.

While a phase runs, this process samples (psutil, every ``--sample-s``) the resident memory of the
child and every process below it — the driver, Ray's GCS and raylet, and each Ray worker process
(``ray::SpectralWorker`` actors, load workers) — and keeps each one's peak; the sweep child also polls
Ray's object store (``memory_summary(stats_only=True)``) for its peak. Printed: wall time (the sweep
also after start-up), peak RSS of every process, object-store peak, the floor, the load average.

Targets (2 cores, 24 GB): on the 1.1B shape every process ≤ 1.5 GB and the sweep after start-up
≤ 1.15× in-process; the 7B shape completes in a sweep with every process ≤ 2.5 GB.

    python benchmarks/large_model.py                          # TinyLlama shape, ≈1.1B parameters, 2.2 GB
    python benchmarks/large_model.py --shape tiny             # smoke run (seconds)
    nice -n 10 python benchmarks/large_model.py --shape 7b --skip-in-process --dir /work/tmp   # 13.5 GB
    python benchmarks/large_model.py --json results.json      # also write the numbers as JSON
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Llama shapes: hidden, intermediate, layers, vocab, attention heads, key/value heads.
SHAPES: dict[str, dict[str, int]] = {
    "tiny": {"hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4, "vocab_size": 2000,
             "num_attention_heads": 8, "num_key_value_heads": 2},
    "1.1b": {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22, "vocab_size": 32000,
             "num_attention_heads": 32, "num_key_value_heads": 4},
    "7b": {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "vocab_size": 32000,
           "num_attention_heads": 32, "num_key_value_heads": 32},
}
MODEL_NAME = "llama-shaped"
GB = 1 << 30


# ---- the model -----------------------------------------------------------------------------------

def llama_config(shape: dict[str, int]) -> dict[str, Any]:
    """``config.json`` of a Llama model of this shape (transformers' LlamaForCausalLM, untied head)."""
    return {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "max_position_embeddings": 2048,
            "rms_norm_eps": 1e-5, "tie_word_embeddings": False, "torch_dtype": "bfloat16", **shape}


def llama_tensors(shape: dict[str, int]) -> list[tuple[str, tuple[int, ...]]]:
    """``(name, shape)`` of every tensor of a Llama checkpoint, in forward order."""
    h, i, v = shape["hidden_size"], shape["intermediate_size"], shape["vocab_size"]
    kv = h // shape["num_attention_heads"] * shape["num_key_value_heads"]
    out = [("model.embed_tokens.weight", (v, h))]
    for n in range(shape["num_hidden_layers"]):
        p = f"model.layers.{n}."
        out += [(p + "input_layernorm.weight", (h,)), (p + "self_attn.q_proj.weight", (h, h)),
                (p + "self_attn.k_proj.weight", (kv, h)), (p + "self_attn.v_proj.weight", (kv, h)),
                (p + "self_attn.o_proj.weight", (h, h)), (p + "post_attention_layernorm.weight", (h,)),
                (p + "mlp.gate_proj.weight", (i, h)), (p + "mlp.up_proj.weight", (i, h)),
                (p + "mlp.down_proj.weight", (h, i))]
    return out + [("model.norm.weight", (h,)), ("lm_head.weight", (v, h))]


def _bf16_bytes(name_index: int, dims: tuple[int, ...], seed: int) -> bytes:
    """Seeded N(0, 1/in) entries (ones for norms) rounded to bf16, as little-endian bytes."""
    import numpy as np
    import torch

    if len(dims) == 1:
        values = np.ones(dims, dtype=np.float32)
    else:
        rng = np.random.default_rng([seed, name_index])
        values = rng.standard_normal(dims, dtype=np.float32)
        values *= np.float32(1.0 / np.sqrt(dims[1]))
    return torch.from_numpy(values).to(torch.bfloat16).view(torch.int16).numpy().tobytes()


def _write_safetensors(path: Path, items: list[tuple[int, str, tuple[int, ...]]], seed: int) -> None:
    """One safetensors file, written tensor by tensor (never the whole file in memory)."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for _, name, dims in items:
        size = 2 * _prod(dims)
        header[name] = {"dtype": "BF16", "shape": list(dims), "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(blob)))
        handle.write(blob)
        for index, _, dims in items:
            handle.write(_bf16_bytes(index, dims, seed))


def _prod(dims: tuple[int, ...]) -> int:
    out = 1
    for d in dims:
        out *= d
    return out


def write_model(folder: Path, shape_name: str, shard_bytes: int, seed: int = 0) -> Path:
    """The model folder: ``config.json`` and bf16 safetensors (sharded with an index above ``shard_bytes``)."""
    shape = SHAPES[shape_name]
    model = folder / MODEL_NAME
    model.mkdir(parents=True, exist_ok=True)
    (model / "config.json").write_text(json.dumps(llama_config(shape), indent=1))
    tensors = [(k, name, dims) for k, (name, dims) in enumerate(llama_tensors(shape))]
    parts: list[list[tuple[int, str, tuple[int, ...]]]] = [[]]
    size = 0
    for item in tensors:
        nbytes = 2 * _prod(item[2])
        if parts[-1] and size + nbytes > shard_bytes:
            parts.append([])
            size = 0
        parts[-1].append(item)
        size += nbytes
    if len(parts) == 1:
        _write_safetensors(model / "model.safetensors", parts[0], seed)
        return model
    weight_map = {}
    for number, part in enumerate(parts, start=1):
        file = f"model-{number:05d}-of-{len(parts):05d}.safetensors"
        _write_safetensors(model / file, part, seed)
        weight_map.update({name: file for _, name, _ in part})
        _say(f"wrote {file} ({len(part)} tensors)")
    total = sum(2 * _prod(dims) for _, _, dims in tensors)
    (model / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    return model


# ---- phases (each in its own child process) ------------------------------------------------------

def phase_in_process(model: Path, preset: str) -> dict[str, Any]:
    import ww_ray

    started = time.perf_counter()
    # progress=False (the default off a terminal): with a bar every layer is its own batch, so each matrix
    # is solved alone with multi-threaded BLAS instead of one single-threaded solve per core.
    rows = ww_ray.analyze(str(model), preset=preset, progress=False)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": len(rows), "ok": int((rows["status"] == "ok").sum()),
            "failed": rows.loc[rows["status"] == "failed", "error"].tolist()[:3],
            "shapes": _shape_counts(rows)}


def _shape_counts(rows) -> list[list[int]]:
    ok = rows[rows["status"] == "ok"]
    counts = ok.groupby(["N", "M"]).size()
    return [[int(n), int(m), int(c)] for (n, m), c in counts.items()]


def phase_sweep(model: Path, preset: str, workers: int, out: Path) -> dict[str, Any]:
    from ww_ray.config import parse_config
    from ww_ray.engine import run_config
    from ww_ray.store import read_table

    store = _ObjectStorePeak()
    store.start()
    config = parse_config({"zoos": [{"kind": "local", "path": str(model.parent)}], "out": str(out),
                           "preset": preset, "ray": {"workers": workers, "max_models_in_flight": 1}},
                          base_dir=out.parent)
    started = time.perf_counter()
    result = run_config(config, progress=True)
    store.stop()
    seconds = result.seconds              # run_sweep's own clock: after the zoo is listed
    layers = read_table(str(out), "layers")
    return {"seconds": seconds, "seconds_listing": time.perf_counter() - started - result.seconds,
            "seconds_startup": result.seconds_startup, "counts": result.counts,
            "errors": [r.error for r in result.results if r.error][:3], "pool": result.pool,
            "rows": len(layers), "ok": int((layers["status"] == "ok").sum()), "shapes": _shape_counts(layers),
            "object_store_peak_bytes": store.peak, "object_store_samples": store.samples,
            "object_store_error": store.error}


class _ObjectStorePeak(threading.Thread):
    """Polls the local Ray's object store usage (``memory_summary(stats_only=True)``) and keeps the peak."""

    def __init__(self, every_s: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.every_s = every_s
        self.peak = 0
        self.samples = 0
        self.error = ""
        self._halt = threading.Event()

    def run(self) -> None:
        import ray
        from ray._private.internal_api import memory_summary

        while not self._halt.is_set():
            if ray.is_initialized():
                try:
                    # this session's GCS: other Ray instances on the machine would make the lookup ambiguous
                    text = memory_summary(address=ray.get_runtime_context().gcs_address, stats_only=True)
                except Exception as exc:  # the session is starting or stopping: try again next time
                    text, self.error = "", f"{type(exc).__name__}: {exc}"[:200]
                match = re.search(r"Plasma memory usage (\d+) MiB", text)
                if match:
                    self.samples += 1
                    self.peak = max(self.peak, int(match.group(1)) << 20)
            self._halt.wait(self.every_s)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)


def phase_floor(shapes: list[list[int]], cores: int) -> dict[str, Any]:
    """Σ over analysed matrices of one single-threaded eigen-solve of its shape (timed once per shape)."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    from ww_ray.spectral.esd import gram_eigenvalues

    per_shape = []
    total = 0.0
    rng = np.random.default_rng(0)
    with threadpool_limits(limits=1):
        for n, m, count in shapes:
            matrix = rng.standard_normal((1, n, m), dtype=np.float32)
            started = time.perf_counter()
            gram_eigenvalues(matrix, device="cpu")
            seconds = time.perf_counter() - started
            del matrix
            per_shape.append({"N": n, "M": m, "count": count, "seconds_each": seconds})
            total += seconds * count
            _say(f"floor: {n}x{m} solve {seconds:.2f} s x {count}")
    return {"core_seconds": total, "cores": cores, "wall_seconds": total / max(1, cores), "per_shape": per_shape}


# ---- watching a child process tree ---------------------------------------------------------------

@dataclass
class _Proc:
    pid: int
    label: str
    peak: int = 0


class TreeWatcher(threading.Thread):
    """Samples the RSS of a process and all its descendants; keeps each process's peak."""

    def __init__(self, root_pid: int, every_s: float, report_every_s: float) -> None:
        super().__init__(daemon=True)
        self.root_pid = root_pid
        self.every_s = every_s
        self.report_every_s = report_every_s
        self.procs: dict[int, _Proc] = {}
        self._halt = threading.Event()

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.root_pid)
        except psutil.NoSuchProcess:
            return
        started = last_report = time.monotonic()
        while not self._halt.is_set():
            try:
                tree = [root] + root.children(recursive=True)
            except psutil.NoSuchProcess:
                return
            for proc in tree:
                try:
                    rss = proc.memory_info().rss
                    label = _label(proc, self.root_pid)
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    continue
                seen = self.procs.setdefault(proc.pid, _Proc(proc.pid, label))
                known = seen.label.split("/")
                if not any(k.startswith(label) or label.startswith(k) for k in known) \
                        and label not in ("ray::IDLE", "python"):
                    # a Ray worker renames itself for each task: keep every role it had
                    seen.label = label if seen.label in ("ray::IDLE", "python") else f"{seen.label}/{label}"
                seen.peak = max(seen.peak, rss)
            now = time.monotonic()
            if now - last_report >= self.report_every_s:
                last_report = now
                top = sorted(self.procs.values(), key=lambda p: -p.peak)[:4]
                _say(f"  … {now - started:.0f} s, load {_load()}, peaks: "
                     + ", ".join(f"{p.label} {p.peak / GB:.2f} GB" for p in top))
            self._halt.wait(self.every_s)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)


def _label(proc, root_pid: int) -> str:
    if proc.pid == root_pid:
        return "driver"
    cmdline = proc.cmdline()
    text = " ".join(cmdline)
    if cmdline and cmdline[0].startswith("ray::"):
        return cmdline[0].split(".")[0]          # ray::SpectralWorker, ray::IDLE, ray::load_model
    if "default_worker.py" in text:
        return "python"                          # a Ray worker process that has not taken a task yet
    for name in ("gcs_server", "raylet", "dashboard", "log_monitor", "runtime_env", "monitor.py"):
        if name in text:
            return name
    return proc.name()


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def run_phase(name: str, args: list[str], every_s: float, report_every_s: float) -> tuple[dict[str, Any], dict]:
    """Run one phase in a child process while watching its process tree; its result and the memory peaks."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        result_path = Path(handle.name)
    command = [sys.executable, __file__, "--phase", name, "--result", str(result_path), *args]
    load_before = os.getloadavg()
    started = time.perf_counter()
    child = subprocess.Popen(command)
    watcher = TreeWatcher(child.pid, every_s, report_every_s)
    watcher.start()
    try:
        code = child.wait()
    except BaseException:
        child.terminate()
        child.wait(timeout=60)
        raise
    finally:
        watcher.stop()
    wall = time.perf_counter() - started
    try:
        if code != 0:
            raise RuntimeError(f"phase {name} exited with status {code}")
        result = json.loads(result_path.read_text())
    finally:
        result_path.unlink(missing_ok=True)
    memory = {"processes": sorted(([p.label, p.pid, p.peak] for p in watcher.procs.values()), key=lambda r: -r[2]),
              "wall_s": wall, "load_before": load_before, "load_after": os.getloadavg()}
    return result, memory


# ---- the report ----------------------------------------------------------------------------------

def _memory_lines(memory: dict, limit_gb: float) -> list[str]:
    lines = []
    for label, pid, peak in memory["processes"]:
        if peak < 20 << 20:
            continue
        flag = "" if peak <= limit_gb * GB else f"   ABOVE {limit_gb} GB"
        lines.append(f"    {label:<24} pid {pid:<8} peak RSS {peak / GB:6.2f} GB{flag}")
    return lines


def report(shape: str, model_bytes: int, params: int, results: dict[str, Any], limit_gb: float) -> str:
    cores = os.cpu_count() or 1
    out = [f"large_model.py --shape {shape}: {params / 1e9:.2f}B parameters, {model_bytes / GB:.2f} GB bf16 "
           f"safetensors; {cores} CPUs; load average at the end {_load()}"]
    if "in-process" in results:
        r, m = results["in-process"]
        out.append(f"  in-process ww_ray.analyze: {r['seconds']:.1f} s, {r['ok']} of {r['rows']} matrices ok "
                   f"(load {m['load_before'][0]:.1f} → {m['load_after'][0]:.1f})")
        out += _memory_lines(m, limit_gb)
    if "sweep" in results:
        r, m = results["sweep"]
        after = r["seconds"] - r["seconds_startup"]
        out.append(f"  sweep ({r['pool']['workers']} workers × {r['pool']['num_cpus']} CPU, local Ray on 127.0.0.1): "
                   f"{r['seconds']:.1f} s, {after:.1f} s after start-up ({r['seconds_startup']:.1f} s; listing the "
                   f"zoo before it {r['seconds_listing']:.1f} s), "
                   f"{r['ok']} of {r['rows']} matrices ok, models {r['counts']} "
                   f"(load {m['load_before'][0]:.1f} → {m['load_after'][0]:.1f})")
        if r["errors"]:
            out.append(f"    errors: {r['errors']}")
        out.append(f"    object store peak {r['object_store_peak_bytes'] / (1 << 20):.0f} MiB "
                   f"({r['object_store_samples']} samples"
                   + (f"; last failed poll: {r['object_store_error']}" if r.get("object_store_error") else "") + ")")
        out += _memory_lines(m, limit_gb)
        if "in-process" in results:
            ratio = after / results["in-process"][0]["seconds"]
            out.append(f"  sweep after start-up / in-process: {ratio:.3f} (target ≤ 1.15)")
    if "floor" in results:
        f, _ = results["floor"]
        out.append(f"  eigen-solve floor: {f['core_seconds']:.1f} core-s of single-threaded solves = "
                   f"{f['wall_seconds']:.1f} s on {f['cores']} cores")
        if "sweep" in results:
            r = results["sweep"][0]
            out.append(f"  sweep after start-up / floor: {(r['seconds'] - r['seconds_startup']) / f['wall_seconds']:.2f}")
        if "in-process" in results:
            out.append(f"  in-process / floor: {results['in-process'][0]['seconds'] / f['wall_seconds']:.2f}")
    peaks = [p for name in ("in-process", "sweep") if name in results for _, _, p in results[name][1]["processes"]]
    if peaks:
        out.append(f"  largest process: {max(peaks) / GB:.2f} GB (target ≤ {limit_gb} GB): "
                   + ("met" if max(peaks) <= limit_gb * GB else "MISSED"))
    return "\n".join(out)


def _terminated(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="1.1b")
    parser.add_argument("--dir", type=Path, default=None, help="where the model is written (deleted at the end)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--shard-gb", type=float, default=5.0, help="safetensors shard size (HF's default: 5 GB)")
    parser.add_argument("--skip-in-process", action="store_true")
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--skip-floor", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the model folder")
    parser.add_argument("--sample-s", type=float, default=0.2, help="RSS sampling period")
    parser.add_argument("--report-s", type=float, default=60.0, help="progress line period")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--shapes", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.phase:  # a child: one phase, its result as JSON
        if args.phase == "write":
            model = write_model(args.model, args.shape, int(args.shard_gb * GB))
            result = {"model": str(model)}
        elif args.phase == "in-process":
            result = phase_in_process(args.model, args.preset)
        elif args.phase == "sweep":
            result = phase_sweep(args.model, args.preset, args.workers, args.out)
        else:
            result = phase_floor(json.loads(args.shapes), args.workers)
        args.result.write_text(json.dumps(result))
        return 0

    limit_gb = 2.5 if args.shape == "7b" else 1.5
    signal.signal(signal.SIGTERM, _terminated)  # `kill PID` still deletes the model (the finally below)
    base = Path(tempfile.mkdtemp(prefix="ww-large-", dir=args.dir))
    results: dict[str, Any] = {}
    _say(f"--shape {args.shape}: writing the model under {base} (load {_load()})")
    try:
        written, _ = run_phase("write", ["--model", str(base), "--shape", args.shape, "--shard-gb",
                                         str(args.shard_gb)], 1.0, 1e9)
        model = Path(written["model"])
        files = sorted(model.glob("*.safetensors"))
        model_bytes = sum(f.stat().st_size for f in files)
        params = sum(_prod(d) for _, d in llama_tensors(SHAPES[args.shape]))
        _say(f"model written: {len(files)} file(s), {model_bytes / GB:.2f} GB")
        common = ["--model", str(model), "--preset", args.preset, "--workers", str(args.workers)]
        shapes = None
        if not args.skip_in_process:
            _say("in-process ww_ray.analyze …")
            results["in-process"] = run_phase("in-process", common, args.sample_s, args.report_s)
            shapes = results["in-process"][0]["shapes"]
            _say(f"in-process done in {results['in-process'][0]['seconds']:.1f} s")
        if not args.skip_sweep:
            _say(f"sweep with {args.workers} workers …")
            results["sweep"] = run_phase("sweep", common + ["--out", str(base / "out")], args.sample_s,
                                         args.report_s)
            shapes = shapes or results["sweep"][0]["shapes"]
            _say(f"sweep done in {results['sweep'][0]['seconds']:.1f} s")
        if shapes and not args.skip_floor:
            _say("eigen-solve floor …")
            results["floor"] = run_phase("floor", ["--workers", str(os.cpu_count() or 1), "--shapes",
                                                   json.dumps(shapes)], args.sample_s, 1e9)
        text = report(args.shape, model_bytes, params, results, limit_gb)
        print(text, flush=True)
        if args.json:
            args.json.write_text(json.dumps({"shape": args.shape, "model_bytes": model_bytes, "params": params,
                                             "load": os.getloadavg(), "results": results}, indent=1))
    finally:
        if args.keep:
            _say(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
            _say(f"deleted {base}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
