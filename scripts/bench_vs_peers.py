#!/usr/bin/env python
"""This harness against lmms-eval on the same POPE questions, the same images and the same local model, whole command
against whole command (start-up, model loading, generation, scoring, writing), interleaved, at batch 1 and batch 8.

    python scripts/bench_vs_peers.py --out /tmp/peers [--model mmhallu_eval/world/demo_weights]
        [--data ../shared/benchmarks/interop/lmms-eval] [--peer-venv .venv-lmms-eval] [--repeats 3] [--batch-sizes 1,8]

--data holds the questions twice: `shapes_pope_{adversarial,popular,random}.json` (official POPE format, read here)
and `pope_test.parquet` (the `lmms-lab/POPE` schema lmms-eval loads, images as PNG bytes). The images are written
once from the parquet, so both tools read the same bytes.

lmms-eval runs in its own venv (--peer-venv; created when missing), offline. What that takes, done by this script:
- install: lmms-eval's requirements without torch/torchvision/timm (its torchvision pulls a CUDA torch; the CPU wheel
  torch==2.13.0 is pinned instead), the lmms-eval wheel with --no-deps, plus `decord` and `filelock<4`;
- data: its `pope` task loads `lmms-lab-encoder/POPE` split `test`; offline, `load_dataset` resolves
  `./lmms-lab-encoder/POPE/data/test-00000-of-00001.parquet` under the working directory, so the parquet is copied there;
- model classes: batch 1 uses `llava_hf` (float32; `device=cpu,device_map=cpu` are needed on a CPU machine, and it refuses
  larger batches); batch 8 uses the generic `huggingface` class, patched in the peer venv in two places — it looks
  the config's `model_type` string up in the auto classes' mappings, which transformers 5 keys by config class, so
  every model falls through to AutoModel (no `generate`): the patch looks up the config's class, image-text-to-text
  first; and it passes `audios=` to processors that reject it. That class always loads bfloat16, so this harness runs batch 8 in bfloat16 too (`--dtype bfloat16`).

Each repeat runs every configuration of both tools once, alternating tools, in fresh output folders (no cache reuse).
Reported: wall times (median over repeats), lmms-eval / this harness, answers identical between the tools (per
question, lmms-eval's doc order is adversarial, popular, random), and both tools' POPE numbers. JSON goes to
OUT/bench_vs_peers.json; a Markdown table is printed for docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LMMS_EVAL_VERSION = "0.7.3"
SPLITS = ("adversarial", "popular", "random")
PATCHES = [  # (old, new) in lmms_eval/models/chat/huggingface.py
    ("        if config.model_type in AutoModelForCausalLM._model_mapping.keys():\n            model_cls = AutoModelForCausalLM\n"
     "        elif config.model_type in AutoModelForImageTextToText._model_mapping.keys():\n            model_cls = AutoModelForImageTextToText\n",
     "        if type(config) in AutoModelForImageTextToText._model_mapping.keys():\n            model_cls = AutoModelForImageTextToText\n"
     "        elif type(config) in AutoModelForCausalLM._model_mapping.keys():\n            model_cls = AutoModelForCausalLM\n"),
    ('            kwargs = {"images": images, "videos": videos, "audios": audios}\n',
     '            kwargs = {"images": images, "videos": videos}\n'),
]


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def pip(venv: Path, *args: str) -> None:
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args], check=True)


def peer_venv(venv: Path, work: Path) -> Path:
    """The lmms-eval venv, created and patched when missing; its python."""
    python = venv / "bin" / "python"
    if not (venv / ".lmms-eval-ready").exists():
        say(f"creating the lmms-eval {LMMS_EVAL_VERSION} venv at {venv} (its requirements without torch/torchvision/timm; CPU torch 2.13.0)")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        wheel_dir = work / "wheel"
        subprocess.run([str(python), "-m", "pip", "download", "-q", "--no-deps", "-d", str(wheel_dir), f"lmms-eval=={LMMS_EVAL_VERSION}"], check=True)
        wheel = next(wheel_dir.glob("lmms_eval-*.whl"))
        import zipfile

        with zipfile.ZipFile(wheel) as z:
            meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
        reqs = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
        keep = [r for r in reqs if r.split(">")[0].split("=")[0].split("<")[0].split(";")[0].strip().lower() not in ("torch", "torchvision", "timm")]
        pip(venv, "torch==2.13.0")
        pip(venv, "torch==2.13.0", "decord", "filelock<4", *keep)
        pip(venv, "--no-deps", str(wheel))
        target = Path(subprocess.run([str(python), "-c", "import lmms_eval, os; print(os.path.dirname(lmms_eval.__file__))"],
                                     check=True, capture_output=True, text=True).stdout.strip()) / "models" / "chat" / "huggingface.py"
        text = target.read_text()
        for old, new in PATCHES:
            if old not in text:
                sys.exit(f"{target}: the code a patch expects is not there (another lmms-eval version?)")
            text = text.replace(old, new)
        target.write_text(text)
        say(f"patched {target}: the auto class chosen by the config's class (image-text-to-text first); no audios= to the processor")
        (venv / ".lmms-eval-ready").write_text(LMMS_EVAL_VERSION)
    return python


def prepare_data(data: Path, work: Path) -> tuple[Path, Path, Path]:
    """(our question folder, the image root, lmms-eval's working directory with its dataset in place)."""
    import pandas as pd

    questions, images, cwd = work / "questions", work / "images", work / "lmms_eval_cwd"
    questions.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        shutil.copy(data / f"shapes_pope_{split}.json", questions / f"shapes_pope_{split}.json")
    frame = pd.read_parquet(data / "pope_test.parquet")
    from PIL import Image

    for _, row in frame.drop_duplicates("image_source").iterrows():
        target = images / "test" / f"{row['image_source']}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.write_bytes(row["image"]["bytes"])
            Image.open(io.BytesIO(row["image"]["bytes"])).verify()
    dataset = cwd / "lmms-lab-encoder" / "POPE" / "data"
    dataset.mkdir(parents=True, exist_ok=True)
    shutil.copy(data / "pope_test.parquet", dataset / "test-00000-of-00001.parquet")
    return questions, images, cwd


def timed(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> float:
    t0 = time.perf_counter()
    with log.open("w") as f:
        done = subprocess.run(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd[:4])} … failed ({done.returncode}); see {log}")
    return wall


def run_ours(model: str, questions: Path, images: Path, out: Path, batch: int, dtype: str, env: dict[str, str]) -> float:
    cmd = [sys.executable, "-m", "mmhallu_eval.cli", "run", "--model", model, "--tasks", "pope", "--out", str(out), "--device", "cpu",
           "--batch-size", str(batch), "--dtype", dtype, "--task-arg", f"pope.data={questions}", "--task-arg", f"pope.images={images}"]
    return timed(cmd, ROOT, env, out.with_suffix(".log"))


def run_peer(python: Path, model: str, cwd: Path, out: Path, batch: int, env: dict[str, str]) -> float:
    model_class, args = ("llava_hf", f"pretrained={model},device=cpu,device_map=cpu") if batch == 1 else ("huggingface", f"pretrained={model},device=cpu,device_map=cpu")
    cmd = [str(python), "-m", "lmms_eval", "--model", model_class, "--model_args", args, "--tasks", "pope", "--batch_size", str(batch),
           "--output_path", str(out), "--log_samples"]
    wall = timed(cmd, cwd, env, out.with_suffix(".log"))
    if not list(out.rglob("*_samples_pope.jsonl")):
        sys.exit(f"lmms-eval wrote no samples log under {out}; see {out.with_suffix('.log')}")
    return wall


def ours_answers(out: Path) -> tuple[list[str], dict]:
    records = [json.loads(x) for x in (out / "pope" / "samples.jsonl").read_text().splitlines()]
    by = {r["id"]: r["response"] for r in records}
    return by, json.loads((out / "pope" / "result.json").read_text())


def peer_answers(out: Path, questions: Path) -> tuple[dict[str, str], dict]:
    log = next(out.rglob("*_samples_pope.jsonl"))
    ids = [f"{s}-{json.loads(x)['question_id']}" for s in SPLITS for x in (questions / f"shapes_pope_{s}.json").read_text().splitlines()]
    answers = {ids[r["doc_id"]]: r["filtered_resps"] if isinstance(r["filtered_resps"], str) else r["filtered_resps"][0]
               for r in map(json.loads, log.read_text().splitlines())}
    results = json.loads(next(out.rglob("*_results.json")).read_text())["results"]["pope"]
    return answers, {k.split(",")[0]: v for k, v in results.items() if k.endswith(",none") and "stderr" not in k}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--model", default=str(ROOT / "mmhallu_eval" / "world" / "demo_weights"))
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "benchmarks" / "interop" / "lmms-eval")
    ap.add_argument("--peer-venv", type=Path, default=ROOT / ".venv-lmms-eval")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-sizes", default="1,8")
    args = ap.parse_args()
    work = args.out.resolve()
    work.mkdir(parents=True, exist_ok=True)
    model = str(Path(args.model).resolve())
    python = peer_venv(args.peer_venv.resolve(), work)
    questions, images, cwd = prepare_data(args.data.resolve(), work)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    batches = [int(b) for b in args.batch_sizes.split(",")]
    walls: dict[tuple[str, int], list[float]] = {}
    last: dict[tuple[str, int], Path] = {}
    for repeat in range(args.repeats):
        for batch in batches:
            dtype = "float32" if batch == 1 else "bfloat16"  # lmms-eval's generic class loads bfloat16
            order = ("ours", "peer") if repeat % 2 == 0 else ("peer", "ours")
            for tool in order:
                out = work / f"{tool}_b{batch}_r{repeat}"
                shutil.rmtree(out, ignore_errors=True)
                wall = run_ours(model, questions, images, out, batch, dtype, env) if tool == "ours" else run_peer(python, model, cwd, out, batch, env)
                walls.setdefault((tool, batch), []).append(wall)
                last[(tool, batch)] = out
                say(f"repeat {repeat} batch {batch} {tool}: {wall:.1f} s")
    rows = []
    for batch in batches:
        ours, our_result = ours_answers(last[("ours", batch)])
        peer, peer_metrics = peer_answers(last[("peer", batch)], questions)
        same = sum(ours.get(i, "").strip() == t.strip() for i, t in peer.items())
        t_ours, t_peer = statistics.median(walls[("ours", batch)]), statistics.median(walls[("peer", batch)])
        rows.append({"batch": batch, "dtype": "float32" if batch == 1 else "bfloat16", "peer_model_class": "llava_hf" if batch == 1 else "huggingface",
                     "wall_ours_s": walls[("ours", batch)], "wall_peer_s": walls[("peer", batch)], "median_ours_s": t_ours, "median_peer_s": t_peer,
                     "peer_over_ours": t_peer / t_ours, "questions": len(peer), "identical_answers": same,
                     "ours": {k: our_result["metrics"][k] for k in ("accuracy", "precision", "recall", "f1", "yes_ratio")},
                     "peer": {k: peer_metrics.get(f"pope_{k}" if k != "f1" else "pope_f1_score") for k in ("accuracy", "precision", "recall", "f1", "yes_ratio")}})
    report = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs", "model": model,
              "lmms_eval": LMMS_EVAL_VERSION, "repeats": args.repeats, "rows": rows}
    (work / "bench_vs_peers.json").write_text(json.dumps(report, indent=2))
    print("| batch | dtype | this harness (s) | lmms-eval (s) | lmms-eval / this | identical answers | accuracy (this / lmms-eval) | yes_ratio (this / lmms-eval) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['batch']} | {r['dtype']} | {r['median_ours_s']:.1f} | {r['median_peer_s']:.1f} | {r['peer_over_ours']:.2f}× | {r['identical_answers']}/{r['questions']} | "
              f"{r['ours']['accuracy']:.4f} / {r['peer']['accuracy']:.4f} | {r['ours']['yes_ratio']:.4f} / {r['peer']['yes_ratio']:.4f} |")


if __name__ == "__main__":
    main()
