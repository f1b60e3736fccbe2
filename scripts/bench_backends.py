#!/usr/bin/env python
"""Backend throughput on one task subset: transformers at several batch sizes, in-process vLLM, and the OpenAI
backend against a local `vllm serve`, each through the real runner (`mmhallu_eval.runner.run`).

    python scripts/bench_backends.py --out /tmp/bench --n 256 --max-new-tokens 16 \
        [--model DIR | --model-shape tiny-idefics3|small-idefics3|llava-1.5-1b] [--device cpu|cuda] [--dtype float32|bfloat16]
        [--backends transformers,vllm,openai] [--batch-sizes 1,8,32] [--repeats 3] [--prefetch auto|on|off|both]
        [--vllm-repeats 5] [--gpu-memory-utilization 0.45] [--malloc tuned|default]

Without --model it builds a model with random weights locally (no hub access needed), so generations run to
max_new_tokens and the figures are a pure engine/harness measurement: `tiny-idefics3` (~0.2 M parameters; vLLM's
CPU build runs that architecture; its engine spends ~1.4 ms per question on a 2-core CPU, so the harness's share
is the largest any model shows), `small-idefics3` (the same with a 4-layer, 256-wide language model, ~3.8 M
parameters, ~3.8 ms per question on that CPU: still far less than a real checkpoint on a GPU) or `llava-1.5-1b`
(LLaVA-1.5's vision tower and projector — CLIP ViT-L/14 at 336 px, 576 image tokens — in front of a
TinyLlama-shaped 1.1 B Llama; ~1.4 B parameters, for GPUs), whose
per-sample cost is that of a real VLM, so its harness-overhead share is the one users see. The POPE questions
come from a generated fixture (--n of them). For each configuration it reports samples/s and output tokens/s
over the backend's own generate time, the whole task's wall time, and the harness overhead: the share of the
task's wall time spent outside the backend's generate calls (requests, cache, parsing, scoring, writing, the
manifest entry). Model loading and engine start-up are excluded (they happen before the task starts) and printed
separately; so is reading the task's data, which the runner does before the model loads.
It also checks that every transformers batch size gives the same answers as batch 1, and vLLM/OpenAI the same
as transformers. `--prefetch both` times the transformers backend with and without preparing the next batch in a
worker thread (`Backend.prefetch`), the two alternating within each of `--repeats` rounds on one loaded model, and
reports the median wall time of each. For vLLM it also times raw `LLM.generate` on the exact prompts the backend built, alternating
with the timed task passes (`--vllm-repeats`), and reports the task's time over raw (target: within 3%) two ways:
the medians of all passes, and each task pass over the mean of the raw passes on either side of it (a drift of the
machine's pace then falls on both), with the median of those paired ratios and its 95% bootstrap interval; the
verdict is "within" only when the whole interval is at or below 1.03. It also reports how long each task pass ran on
after the engine handed back its last answer (until `run` returned): the harness's work that cannot overlap the
engine's.
Results go to OUT/bench.json; a Markdown table is printed for docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, proc: subprocess.Popen, timeout: float = 600) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            sys.exit(f"vllm serve exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(2)
    sys.exit(f"vllm serve did not come up at {url} in {timeout:.0f}s")


def bench_one(label: str, backend_name: str, backend_args: dict, model: str, data: Path, out: Path, n: int, max_new: int, batch: int | None,
              backend=None) -> dict:
    """One task run through the real runner; the backend is created here and closed after, unless one is passed in."""
    from mmhallu_eval.backends import create_backend
    from mmhallu_eval.files import iter_jsonl
    from mmhallu_eval.runner import RunConfig, run

    t0 = time.perf_counter()
    owned = backend is None
    if owned:
        backend = create_backend(backend_name, model=model, **backend_args)
    startup = time.perf_counter() - t0
    run_dir = out / label
    cfg = RunConfig(model=model, tasks=["pope"], out=run_dir, backend=backend_name, limit=n, batch_size=batch, max_new_tokens=max_new,
                    task_args={"pope": {"data": str(data), "images": str(data / "images")}}, backend_args=backend_args, overwrite=True, show_progress=False)
    try:
        run(cfg, backend=backend)
        ended = time.perf_counter()
    finally:
        if owned:
            backend.close()
    stats = json.loads((run_dir / "manifest.json").read_text())["tasks"]["pope"]["stats"]
    with sqlite3.connect(run_dir / "cache.sqlite") as conn:
        tokens = conn.execute("SELECT SUM(n_output_tokens) FROM responses").fetchone()[0] or 0
    answers = [row["response"] for _, row in iter_jsonl(run_dir / "pope" / "samples.jsonl")]
    gen_s, total_s = stats["backend_seconds"], stats["total_seconds"]
    return {"label": label, "backend": backend_name, "batch_size": batch, "startup_s": round(startup, 2), "requests": stats["generated"],
            "samples": stats["requested"], "backend_s": gen_s, "total_s": total_s,
            "samples_per_s": round(stats["generated"] / gen_s, 2), "output_tokens_per_s": round(tokens / gen_s, 1),
            "overhead_share": round((total_s - gen_s) / total_s, 4), "overhead_ms_per_sample": round(1000 * (total_s - gen_s) / stats["requested"], 3),
            "answers": answers, "ended_at": ended}


def bench_transformers(model: str, data: Path, out: Path, args: argparse.Namespace, device: str) -> list[dict]:
    """Each batch size `args.repeats` times on one loaded model, after an untimed warm-up; with `--prefetch both`
    the runs with and without the next batch prepared ahead alternate."""
    from mmhallu_eval.backends import create_backend

    t0 = time.perf_counter()
    backend_args = {"device": device, "dtype": args.dtype}
    backend = create_backend("transformers", model=model, **backend_args)
    startup = round(time.perf_counter() - t0, 2)
    modes = {"auto": [backend.prefetch], "on": [True], "off": [False], "both": [True, False]}[args.prefetch]
    rows = []
    try:
        if args.repeats > 1:  # untimed: first kernel launches, allocator growth and clock ramp-up fall on no timed run
            bench_one("transformers-warmup", "transformers", backend_args, model, data, out, min(args.n, 64), args.max_new_tokens,
                      max(int(x) for x in args.batch_sizes.split(",")), backend=backend)
        for b in [int(x) for x in args.batch_sizes.split(",")]:
            for i in range(1, args.repeats + 1):
                for mode in modes if i % 2 else modes[::-1]:  # ABBA: a trend in the machine's pace falls on both alike
                    backend.prefetch = mode
                    label = f"transformers-b{b}" + ("" if args.prefetch == "auto" else "-prefetch" if mode else "-noprefetch") + (f"-{i}" if args.repeats > 1 else "")
                    row = bench_one(label, "transformers", backend_args, model, data, out, args.n, args.max_new_tokens, b, backend=backend)
                    row.update(startup_s=startup, prefetch=mode, round=i)
                    rows.append(row)
    finally:
        backend.close()
    return rows


def _transformers_medians(rows: list[dict]) -> list[dict]:
    """Median wall time, generate time and overhead share per (batch size, prefetch) over the repeated rows; with
    both prefetch settings, the median over rounds of each round's wall-time ratio, with / without."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["backend"] == "transformers":
            groups.setdefault((r["batch_size"], r["prefetch"]), []).append(r)
    out = []
    for (b, p), rs in groups.items():
        m = {"batch_size": b, "prefetch": p, "runs": len(rs), "total_s": round(statistics.median(r["total_s"] for r in rs), 4),
             "backend_s": round(statistics.median(r["backend_s"] for r in rs), 4),
             "overhead_share": round(statistics.median(r["overhead_share"] for r in rs), 4)}
        if p and (b, False) in groups:
            without = {r["round"]: r["total_s"] for r in groups[(b, False)]}
            m["with_over_without"] = round(statistics.median(r["total_s"] / without[r["round"]] for r in rs if r["round"] in without), 3)
        out.append(m)
    return out


def _reset_vllm_caches(llm) -> None:
    """Prefix and multimodal caches would let a second pass over the same prompts skip work the first one did."""
    for name in ("reset_prefix_cache", "reset_mm_cache"):
        if hasattr(llm, name):
            getattr(llm, name)()


def bench_vllm(model: str, data: Path, out: Path, n: int, max_new: int, dtype: str, gpu_mem: float, repeats: int = 1) -> list[dict]:
    """The vLLM backend through the runner against raw `LLM.generate` on the very prompts the backend built (the
    same engine, caches reset before each timed pass): an untimed warm-up task, then raw and the timed task in
    turn, `repeats` times, ending with raw."""
    from mmhallu_eval.backends import create_backend
    from mmhallu_eval.files import iter_jsonl
    from mmhallu_eval.heap import frozen_heap

    t0 = time.perf_counter()
    backend = create_backend("vllm", model=model, dtype=dtype, gpu_memory_utilization=gpu_mem)
    startup = time.perf_counter() - t0
    seen: list[tuple[list, list, list, bool]] = []  # (requests, prompts, params, add_special_tokens) as queued
    inner = backend._enqueue

    def recording(requests, prompts, params, add_special, idx, failed):
        seen.append((requests, prompts, params, add_special))
        return inner(requests, prompts, params, add_special, idx, failed)

    backend._enqueue = recording
    handed: list[float] = []  # when each group of answers was handed back
    stream = backend.generate_stream

    def timed_stream(requests):
        for group in stream(requests):
            handed.append(time.perf_counter())
            yield group

    backend.generate_stream = timed_stream

    def texts_of(run: str) -> list[str]:
        by_id = {row["id"]: row["response"] for _, row in iter_jsonl(out / run / "pope" / "samples.jsonl")}
        return [by_id[r.id] for rs, _, _, _ in seen for r in rs]

    def raw(label: str) -> dict:
        _reset_vllm_caches(backend.llm)
        with frozen_heap():  # as the runner does around its tasks, so that neither side pays for a full collection
            t = time.perf_counter()
            outputs = backend.llm.generate(prompts, params, use_tqdm=False, tokenization_kwargs={"add_special_tokens": add_special})
            secs = time.perf_counter() - t
        texts = [backend.decode(list(o.outputs[0].token_ids))[0] for o in outputs]
        tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
        return {"label": label, "backend": "vllm LLM.generate", "batch_size": None, "startup_s": None, "requests": len(prompts),
                "samples": len(prompts), "backend_s": round(secs, 4), "total_s": round(secs, 4), "samples_per_s": round(len(prompts) / secs, 2),
                "output_tokens_per_s": round(tokens / secs, 1), "overhead_share": 0.0, "overhead_ms_per_sample": 0.0,
                "same_texts_as_backend": texts == backend_texts}

    try:
        bench_one("vllm-warmup", "vllm", {}, model, data, out, n, max_new, None, backend=backend)
        prompts = [p for _, ps, _, _ in seen for p in ps]
        params = [q for _, _, qs, _ in seen for q in qs]
        rules = {a for _, _, _, a in seen}
        if len(rules) != 1:
            sys.exit("the model's prompts follow two special-token rules; raw LLM.generate takes one")
        (add_special,) = rules
        backend_texts = texts_of("vllm-warmup")
        rows = [raw("vllm-raw-generate-1")]
        for i in range(1, repeats + 1):
            seen.clear()
            _reset_vllm_caches(backend.llm)
            label = "vllm" if i == 1 else f"vllm-{i}"
            handed.clear()
            task = bench_one(label, "vllm", {"dtype": dtype}, model, data, out, n, max_new, None, backend=backend)
            # what the harness still does after the engine's last answer: the part of its work that cannot overlap
            task["after_last_answer_ms"] = round(1000 * (task["ended_at"] - handed[-1]), 2)
            task["startup_s"] = round(startup, 2)
            task["same_texts_as_warmup"] = texts_of(label) == backend_texts
            rows += [task, raw(f"vllm-raw-generate-{i + 1}")]
    finally:
        backend.close()
    return rows


def paired_ratios(task_s: list[float], raw_s: list[float], target: float = 1.03, resamples: int = 10_000) -> dict:
    """Task pass i over the mean of raw passes i and i + 1 (the passes alternate raw, task, raw, ...), so that the
    machine's drift between passes cancels; their median with a 95% percentile-bootstrap interval (seeded), and
    whether the interval lies at or below `target`, above it, or across it."""
    import numpy as np

    ratios = np.array([t / ((raw_s[i] + raw_s[i + 1]) / 2) for i, t in enumerate(task_s)])
    draws = np.random.default_rng(0).choice(ratios, size=(resamples, len(ratios)))
    low, high = np.percentile(np.median(draws, axis=1), [2.5, 97.5])
    verdict = "within" if high <= target else "above" if low > target else "undecided"
    return {"ratios": [round(float(r), 4) for r in ratios], "median": round(float(np.median(ratios)), 4),
            "ci95": [round(float(low), 4), round(float(high), 4)], "target": target, "verdict": verdict}


#: `small-idefics3`'s language model: enough work per token that vLLM's engine, not the main process that feeds it,
#: sets the pace on a 2-core CPU, as a real checkpoint's engine does on a GPU
SMALL_LANGUAGE_MODEL = {"hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 4, "num_attention_heads": 4,
                        "num_key_value_heads": 4, "head_dim": 64}


def build_llava_15_1b(out: Path, seed: int = 0) -> Path:
    """A random-weight model shaped like LLaVA-1.5 with a 1.1 B language model: the harness overhead measured on
    it is representative of a real checkpoint (the tiny models spend 1-30 ms per sample, real VLMs far more)."""
    from transformers import CLIPVisionConfig, LlamaConfig

    from mmhallu_eval.backends.vllm_layout import publish_weights
    from mmhallu_eval.world.tiny_models import BASE_SPECIAL, build_llava, build_tokenizer

    tok = build_tokenizer(BASE_SPECIAL)
    vision = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, image_size=336,
                              patch_size=14, projection_dim=768)
    text = LlamaConfig(vocab_size=len(tok), hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                       num_key_value_heads=4, max_position_embeddings=2048, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                       bos_token_id=None, tie_word_embeddings=False)
    folder = build_llava(out, vision, text, tok, image_size=336, patch_size=14, vision_feature_layer=-2, seed=seed)
    publish_weights(folder)  # vLLM loads only the published CLIP key names (see mmhallu_eval.backends.vllm_layout)
    return folder


def _print_row(row: dict) -> None:
    """One measurement as a JSON line, without the answers and timestamp kept only for comparisons."""
    print(json.dumps({k: v for k, v in row.items() if k not in ("answers", "ended_at")}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--model", default=None)
    ap.add_argument("--model-shape", choices=["tiny-idefics3", "small-idefics3", "llava-1.5-1b"], default="tiny-idefics3")
    ap.add_argument("--device", default=None, help="transformers backend device (default: cuda when available, else cpu)")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--backends", default="transformers,vllm,openai")
    ap.add_argument("--batch-sizes", default="1,8,32")
    ap.add_argument("--repeats", type=int, default=1, help="rounds of transformers runs per batch size (medians reported)")
    ap.add_argument("--prefetch", choices=["auto", "on", "off", "both"], default="auto",
                    help="transformers: prepare the next batch while one generates (auto: the backend's default, off)")
    ap.add_argument("--vllm-repeats", type=int, default=1, help="timed vLLM task passes, each followed by a raw LLM.generate pass")
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.45,
                    help="vLLM's share of GPU memory, in-process and for vllm serve (below half: the server may start before the in-process engine has freed its share)")
    ap.add_argument("--malloc", choices=["tuned", "default"], default="tuned",
                    help="tuned: glibc malloc keeps freed blocks for reuse, as the mmhallu command sets it (heap.tune_malloc)")
    args = ap.parse_args()
    from mmhallu_eval.heap import tune_malloc

    malloc_tuned = tune_malloc() if args.malloc == "tuned" else False
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    from mmhallu_eval.world.fixtures import build_pope_fixture
    from mmhallu_eval.world.tiny_models import build_tiny_idefics3, build_tiny_model

    if args.model:
        model = args.model
    elif args.model_shape == "llava-1.5-1b":
        model = str(out / "llava-1.5-1b") if (out / "llava-1.5-1b" / "config.json").exists() else str(build_llava_15_1b(out / "llava-1.5-1b"))
    elif args.model_shape == "small-idefics3":
        model = str(build_tiny_idefics3(out / "small-idefics3", text=SMALL_LANGUAGE_MODEL))
    else:
        model = str(build_tiny_model("idefics3", out / "tiny-idefics3"))
    device = args.device or ("cuda" if _cuda() else "cpu")
    data = build_pope_fixture(out / "pope", n_images=max(8, args.n // 6 + 1))  # the first split alone holds --n questions: no duplicates
    wanted = args.backends.split(",")
    rows: list[dict] = []
    if "transformers" in wanted:
        for row in bench_transformers(model, data, out, args, device):
            rows.append(row)
            _print_row(row)
    if "vllm" in wanted:
        for row in bench_vllm(model, data, out, args.n, args.max_new_tokens, args.dtype, args.gpu_memory_utilization, args.vllm_repeats):
            rows.append(row)
            _print_row(row)
    if "openai" in wanted:
        port = _free_port()
        # the server's ZeroMQ socket files (vLLM leaves them behind) go to a folder removed when it stops
        sockets = tempfile.TemporaryDirectory(prefix="bench-vllm-serve-", ignore_cleanup_errors=True)
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"), "VLLM_RPC_BASE_PATH": sockets.name}
        log = (out / "vllm_serve.log").open("w")
        # the module entry point of `vllm serve` (vllm-cpu's `vllm` CLI looks up package metadata named "vllm" and exits)
        proc = subprocess.Popen([sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model, "--port", str(port), "--dtype", args.dtype,
                                 "--served-model-name", "bench", "--gpu-memory-utilization", str(args.gpu_memory_utilization)], stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            _wait_for(f"http://127.0.0.1:{port}/v1/models", proc)
            rows.append(bench_one("openai-vllm-serve", "openai", {"base_url": f"http://127.0.0.1:{port}/v1", "concurrency": 32}, "bench", data, out,
                                  args.n, args.max_new_tokens, None))
            _print_row(rows[-1])
        finally:
            proc.terminate()
            proc.wait(60)
            sockets.cleanup()
    ref = next((r["answers"] for r in rows if "answers" in r), [])
    for r in rows:
        r["same_answers_as_first"] = r.pop("answers") == ref if "answers" in r else None
        r.pop("ended_at", None)
    tf = {r["batch_size"]: r for r in rows if r["backend"] == "transformers"}
    summary = {"platform": platform.platform(), "cpus": os.cpu_count(), "gpu": _gpu_name(), "model": model, "model_shape": None if args.model else args.model_shape,
               "dtype": args.dtype, "n": args.n, "max_new_tokens": args.max_new_tokens, "malloc_tuned": malloc_tuned, "rows": rows}
    medians = _transformers_medians(rows)
    if medians:
        summary["transformers_medians"] = medians
    if 1 in tf and 8 in tf:
        summary["transformers_b8_over_b1"] = round(tf[8]["samples_per_s"] / tf[1]["samples_per_s"], 2)
    raws = [r["backend_s"] for r in rows if r["backend"] == "vllm LLM.generate"]
    tasks = [r for r in rows if r["backend"] == "vllm"]
    if raws and tasks:
        # the target: the whole task through the harness within 3% of raw LLM.generate on the same prompts
        raw_s = statistics.median(raws)
        summary["vllm_task_over_raw_generate"] = round(statistics.median(r["total_s"] for r in tasks) / raw_s, 3)
        summary["vllm_generate_over_raw_generate"] = round(statistics.median(r["backend_s"] for r in tasks) / raw_s, 3)
        summary["vllm_paired"] = {"task": paired_ratios([r["total_s"] for r in tasks], raws),
                                  "generate_calls": paired_ratios([r["backend_s"] for r in tasks], raws)}
        after = [r["after_last_answer_ms"] for r in tasks]
        summary["vllm_after_last_answer_ms"] = {"median": round(statistics.median(after), 2), "min": min(after), "max": max(after)}
    (out / "bench.json").write_text(json.dumps(summary, indent=1))
    print("\n| configuration | samples/s | output tokens/s | harness overhead | overhead per sample | start-up (s) | same answers as first row |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['label']} | {r['samples_per_s']} | {r['output_tokens_per_s']} | {r['overhead_share'] * 100:.1f}% | {r['overhead_ms_per_sample']} ms "
              f"| {r['startup_s']} | {r['same_answers_as_first'] if r['same_answers_as_first'] is not None else 'raw = backend: ' + str(r['same_texts_as_backend'])} |")
    if medians:
        print("\n| batch | prefetch | runs | median task wall (s) | median generate calls (s) | median harness overhead | with / without, median of rounds |")
        print("|---|---|---|---|---|---|---|")
        for m in medians:
            print(f"| {m['batch_size']} | {m['prefetch']} | {m['runs']} | {m['total_s']} | {m['backend_s']} | {m['overhead_share'] * 100:.1f}% "
                  f"| {m.get('with_over_without', '')} |")
    if "transformers_b8_over_b1" in summary:
        print(f"\ntransformers batch 8 / batch 1 throughput: {summary['transformers_b8_over_b1']}×")
    if "vllm_task_over_raw_generate" in summary:
        print(f"vLLM task wall time / raw LLM.generate time (medians over the passes): {summary['vllm_task_over_raw_generate']}× "
              f"(backend generate calls alone: {summary['vllm_generate_over_raw_generate']}×)")
        for name, p in summary["vllm_paired"].items():
            print(f"paired ({name} pass over its neighbouring raw passes), {len(p['ratios'])} passes: median {p['median']}×, "
                  f"95% interval {p['ci95'][0]}–{p['ci95'][1]}×: {p['verdict']} {p['target']}×")
        after = summary["vllm_after_last_answer_ms"]
        print(f"after the engine's last answer, until the task's run returned: median {after['median']} ms ({after['min']}–{after['max']})")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _gpu_name() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


if __name__ == "__main__":
    main()
