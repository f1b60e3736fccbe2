"""DPO with TRL on the tiny model: LoRA and full fine-tuning change the weights and reload for generation."""
import json
import shutil
import sys

import pytest
import torch
from safetensors.torch import load_file
from cli_in_process import mmhallu

pytest.importorskip("trl", reason="the [train] extra (trl, peft) is not installed")

CLI = [sys.executable, "-m", "mmhallu_eval.cli"]


@pytest.fixture(scope="module")
def pairs(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("pairs") / "pairs.jsonl"
    proc = mmhallu("pairs", "build", "--strategy", "finer", "--annotations", str(world / "scene_graph_train.json"),
                           "--images", str(world / "images"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def test_lora_dpo_trains_and_reloads(tiny_llava, pairs, tmp_path):
    out = tmp_path / "adapter"
    cfg = tmp_path / "dpo.yaml"
    cfg.write_text("beta: 0.2\nlearning_rate: 0.001\nmax_steps: 4\nbatch_size: 4\nloss_type: [sigmoid, sft]\nloss_weights: [1.0, 0.5]\nwarmup_steps: 1\nlora_target_modules: language-model\n")
    proc = mmhallu("train", "dpo", "--model", str(tiny_llava), "--pairs", str(pairs), "--out", str(out), "--config", str(cfg), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    # --no-progress: no bar and no per-step metrics dicts on stdout/stderr; the losses are in train_log.jsonl
    assert "'loss'" not in proc.stdout + proc.stderr
    assert "it/s" not in proc.stderr, proc.stderr  # nor the loading / dataset progress bars
    weights = load_file(out / "adapter_model.safetensors")
    lora_b = [v for k, v in weights.items() if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b), "LoRA B starts at zero: training must move it"
    # lora_target_modules: language-model — the LLM's linear layers only (vision tower and projector untouched)
    assert all(".language_model." in k for k in weights) and any("mlp.down_proj" in k for k in weights)
    log = [json.loads(l) for l in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [1, 2, 3, 4]
    saved = json.loads((out / "mmhallu_train.json").read_text())
    assert saved["loss_type"] == ["sigmoid", "sft"] and saved["beta"] == 0.2 and saved["extra"] == {"warmup_steps": 1}
    dpo = json.loads((out / "dpo_config.json").read_text())
    assert dpo["max_length"] is None and dpo["loss_weights"] == [1.0, 0.5]
    assert (out / "processor_config.json").exists()
    # PEFT writes its set of target modules in hash order; sorted, a rerun writes the same folder (same fingerprint)
    targets = json.loads((out / "adapter_config.json").read_text())["target_modules"]
    assert len(targets) > 1 and targets == sorted(targets)
    from mmhallu_eval import GenerationConfig, Request, user_message
    from mmhallu_eval.backends import create_backend

    image = json.loads(pairs.read_text().splitlines()[0])["images"][0]
    req = Request("x", user_message("Is there a star in the image?"), [image], GenerationConfig(max_new_tokens=6))
    base = create_backend("transformers", model=str(tiny_llava), device="cpu")
    tuned = create_backend("transformers", model=str(tiny_llava), adapter=str(out), device="cpu")
    assert tuned.fingerprint() != base.fingerprint()
    assert tuned.generate([req])[0].error is None
    merged = create_backend("transformers", model=str(tiny_llava), adapter=str(out), device="cpu", merge_adapter=True)
    assert type(merged.model).__name__ == "LlavaForConditionalGeneration"  # LoRA folded in: no PEFT wrapper left
    assert merged.describe()["adapter_merged"] is True and "adapter_merged" not in tuned.describe()
    assert merged.fingerprint() not in (tuned.fingerprint(), base.fingerprint())  # its cached answers are its own
    assert merged.generate([req])[0].error is None
    # an adapter folder that is damaged, or does not fit the model, is one error line (it was a PEFT or torch traceback)
    from mmhallu_eval.backends.base import BackendError

    for name, damage, says in (("garbled", lambda d: (d / "adapter_model.safetensors").write_bytes(b"<html>"), "its weights file is damaged"),
                               ("rank", lambda d: _edit_json(d / "adapter_config.json", r=4), "does not fit .*size mismatch"),
                               ("targets", lambda d: _edit_json(d / "adapter_config.json", target_modules=["q_prj"]), "does not fit .*q_prj")):
        damaged = tmp_path / name
        shutil.copytree(out, damaged)
        damage(damaged)
        with pytest.raises(BackendError, match=f"--adapter {damaged}.*{says}"):
            create_backend("transformers", model=str(tiny_llava), adapter=str(damaged), device="cpu")
    proc = mmhallu("run", "--model", str(tiny_llava), "--tasks", "pope", "--out", str(tmp_path / "r"), "--merge-adapter")
    assert proc.returncode == 2 and "--merge-adapter merges an --adapter" in proc.stderr and not (tmp_path / "r").exists()


def _edit_json(path, **changes):
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_full_dpo_changes_weights(tiny_llava, pairs, tmp_path):
    out = tmp_path / "full"
    proc = mmhallu("train", "dpo", "--model", str(tiny_llava), "--pairs", str(pairs), "--out", str(out), "--full",
                           "--max-steps", "2", "--batch-size", "2", "--lr", "0.01")
    assert proc.returncode == 0, proc.stderr
    assert "'loss'" in proc.stdout + proc.stderr  # by default TRL's per-step metrics are shown
    before, after = load_file(tiny_llava / "model.safetensors"), load_file(out / "model.safetensors")
    changed = [k for k in before if k in after and not torch.equal(before[k], after[k])]
    assert changed
    from mmhallu_eval.backends import create_backend
    from mmhallu_eval.backends.vllm_layout import unpublished_weights

    assert unpublished_weights(tiny_llava) and unpublished_weights(out) == []  # written under the published names vLLM loads

    assert create_backend("transformers", model=str(out), device="cpu").describe()["architecture"] == "LlavaForConditionalGeneration"


def test_bad_pairs_file_is_clear(tiny_llava, pairs, tmp_path):
    from mmhallu_eval.task import TaskError
    from mmhallu_eval.train.pairs import read_pairs

    bad = tmp_path / "pairs.jsonl"
    bad.write_text('{"images": ["x.png"], "prompt": []}\n')
    proc = mmhallu("train", "dpo", "--model", str(tiny_llava), "--pairs", str(bad), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and f"{bad}:1: a preference pair needs" in proc.stderr
    good = json.loads(pairs.read_text().splitlines()[0])
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("text")
    # each of these met TRL or Arrow deep inside training (a traceback after the model had loaded), or trained on a string's letters
    for change, why in (({"images": good["images"][0]}, "images must be a list of image file names"),
                        ({"images": [3]}, "images must be a list of image file names"),
                        ({"images": good["images"] * 2}, r"the prompt has 1 image placeholder\(s\) .* for 2 image\(s\)"),
                        ({"images": ["nowhere.png"]}, "image not found: nowhere.png"),
                        ({"images": [str(not_an_image)]}, f"{not_an_image}: cannot identify image file"),
                        ({"prompt": "Is there a star?"}, "prompt must be a list of messages"),
                        ({"chosen": "No."}, "chosen must be a list of messages"),
                        ({"rejected": []}, "rejected must be a list of messages"),
                        ({"chosen": [{"role": "assistant", "content": [{"type": "text", "text": None}]}]}, "chosen must be a list of messages"),
                        ({"chosen": [{"role": "assistant", "content": ["No."]}]}, "chosen must be a list of messages"),
                        ({"prompt": [{"role": "user", "content": [{"type": "picture"}]}]}, "prompt must be a list of messages")):
        bad.write_text(json.dumps(good) + "\n" + json.dumps({**good, **change}) + "\n")
        with pytest.raises(TaskError, match=f"{bad}:2: {why}"):
            read_pairs(bad)
    assert len(read_pairs(pairs)) == len(pairs.read_text().splitlines())


def test_lora_targets_resolve_the_language_model(tiny_llava):
    from transformers import AutoModelForImageTextToText

    from mmhallu_eval.task import TaskError
    from mmhallu_eval.train.dpo import lora_targets

    model = AutoModelForImageTextToText.from_pretrained(tiny_llava)
    names = lora_targets(model, "language-model")
    assert names and all("language_model" in n for n in names) and not any(n.endswith("lm_head") for n in names)
    assert lora_targets(model, "all-linear") == "all-linear"
    with pytest.raises(TaskError, match="no linear layers under a language_model"):
        lora_targets(model.model.vision_tower, "language-model")


def test_an_output_folder_that_would_write_over_inputs_or_other_files_is_refused_before_loading(tmp_path):
    from mmhallu_eval.task import TaskError
    from mmhallu_eval.train.dpo import TrainConfig, check_train_out

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    pairs = tmp_path / "data" / "pairs.jsonl"
    pairs.parent.mkdir()
    pairs.write_text("")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README.md").write_text("mine")
    refused = {
        model: "is the model's folder", model / "adapter": "is inside the model's folder", tmp_path: "holds the model's folder",
        pairs.parent: "holds the pairs file", tmp_path / "notes": "holds files that are not a training output (README.md)",
        pairs: "is a file",
    }
    for out, why in refused.items():
        with pytest.raises(TaskError, match=f"--out {out} {why}".replace("(", r"\(").replace(")", r"\)")):
            check_train_out(TrainConfig(model=str(model), pairs=str(pairs), out=str(out)))
    earlier = tmp_path / "adapter"
    earlier.mkdir()
    (earlier / "train_log.jsonl").write_text("")  # an earlier (here: interrupted) training output is replaced
    for out in (earlier, tmp_path / "new"):
        check_train_out(TrainConfig(model=str(model), pairs=str(pairs), out=str(out)))
    proc = mmhallu("train", "dpo", "--model", str(model), "--pairs", str(pairs), "--out", str(model))
    assert proc.returncode == 2 and "is the model's folder" in proc.stderr and sorted(p.name for p in model.iterdir()) == ["config.json"]


def test_training_numbers_that_cannot_train_are_refused_and_yaml_exponents_read_as_numbers(tmp_path):
    from mmhallu_eval.task import TaskError
    from mmhallu_eval.train.dpo import TrainConfig

    base = {"model": "m", "pairs": "p", "out": "o"}
    for bad, why in (({"epochs": 0}, "epochs=0: give a number above 0"), ({"batch_size": 0}, "batch_size=0: give a whole number of at least 1"),
                     ({"learning_rate": -1e-5}, "learning_rate=-1e-05: give a number above 0"), ({"max_steps": 0}, "max_steps=0: give a whole"),
                     ({"beta": "much"}, "beta='much': give a number")):
        with pytest.raises(TaskError, match=f"train setting {why}"):
            TrainConfig(**base, **bad)
    cfg = tmp_path / "dpo.yaml"
    cfg.write_text("learning_rate: 5e-5\nbeta: 1e-1\n")  # YAML 1.1 reads these as text
    loaded = TrainConfig.from_yaml(cfg, **base)
    assert loaded.learning_rate == 5e-5 and loaded.beta == 0.1
    proc = mmhallu("train", "dpo", "--model", "m", "--pairs", "p", "--out", str(tmp_path / "o"), "--epochs", "0")
    assert proc.returncode == 2 and proc.stderr.strip() == "error: train setting epochs=0.0: give a number above 0"


def test_settings_trl_would_refuse_late_are_refused_before_the_model_loads(tmp_path):
    """TRL checks a loss type's name only in the first training step, and DPOConfig's own checks ran after the
    weights had loaded: each is one error line now, before anything loads (`loop` makes the same check before its
    base evaluation)."""
    from mmhallu_eval.task import TaskError
    from mmhallu_eval.train.dpo import TrainConfig, dpo_arguments

    base = {"model": "m", "pairs": "p", "out": str(tmp_path / "o")}
    for bad, why in (({"learning_rate": float("inf")}, "train setting learning_rate=inf: give a number above 0"),
                     ({"loss_weights": ["a"]}, r"train setting loss_weights=\['a'\]: give one number per loss type"),
                     ({"loss_type": [3]}, "train setting loss_type=\\[3\\]: give TRL loss type names")):
        with pytest.raises(TaskError, match=why):
            TrainConfig(**base, **bad)
    for bad, why in (({"loss_type": ["sigmod"]}, r"TRL's DPO has no loss type 'sigmod' \(did you mean sigmoid\?\); it has sigmoid, hinge"),
                     ({"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0]}, "DPOConfig refuses them: `loss_weights` must have the same length"),
                     ({"extra": {"lr_scheduler_type": "sometimes"}}, "DPOConfig refuses them: sometimes is not a valid SchedulerType")):
        with pytest.raises(TaskError, match=why):
            dpo_arguments(TrainConfig(**base, **bad))
    assert dpo_arguments(TrainConfig(**base, loss_type="apo_zero")).loss_type == ["apo_zero"]  # `loss_type: apo_zero` in YAML
    assert not (tmp_path / "o").exists()
    broken = tmp_path / "dpo.yaml"
    broken.write_text("beta: 0.1\nloss_type: [sigmoid\n")
    for config, why in ((broken, f"{broken}:3: not valid YAML"), (tmp_path / "none.yaml", f"--config {tmp_path / 'none.yaml'}: cannot read it")):
        proc = mmhallu("train", "dpo", "--model", "m", "--pairs", "p", "--out", str(tmp_path / "o"), "--config", str(config))
        assert proc.returncode == 2 and proc.stderr.startswith(f"error: {why}"), proc.stderr
    proc = mmhallu("train", "dpo", "--model", "m", "--pairs", "p", "--out", str(tmp_path / "o"), "--loss-weights", "1,half")
    assert proc.returncode == 2 and proc.stderr.startswith("error: --loss-weights '1,half': give numbers separated by commas")


def test_lora_targets_that_match_nothing_are_named(tiny_llava, pairs, tmp_path):
    from mmhallu_eval.task import TaskError
    from mmhallu_eval.train.dpo import TrainConfig, train_dpo

    with pytest.raises(TaskError, match="lora_target_modules='q_prj' names no module of LlavaForConditionalGeneration"):
        train_dpo(TrainConfig(model=str(tiny_llava), pairs=str(pairs), out=str(tmp_path / "o"), lora_target_modules="q_prj", max_steps=1), show_progress=False)


@pytest.mark.slow  # builds and trains a model without a model fixture
def test_template_args_render_the_pairs_as_the_evaluation_renders_its_prompts(pairs, tmp_path):
    """`train dpo --chat-template-arg enable_thinking=false`: TRL renders each pair with the variable (its
    `chat_template_kwargs` column), so a hybrid reasoning model is tuned on the context its evaluation with the same
    variable shows it, the `<think>` block closed; the setting is recorded, and a name the template does not read is
    refused before the model loads."""
    from trl.data_utils import apply_chat_template

    from mmhallu_eval.backends.hf_processor import load_processor
    from mmhallu_eval.train.dpo import to_dataset
    from mmhallu_eval.train.pairs import read_pairs
    from mmhallu_eval.world.families import build_family

    model = build_family("qwen3_5", tmp_path / "qwen3_5")
    processor = load_processor(str(model))
    some = read_pairs(pairs)[:2]
    for args, prompt_end, chosen_start in (({"enable_thinking": False}, "assistant\n<think>\n\n</think>\n\n", some[0]["chosen"][0]["content"][0]["text"]),
                                           (None, "assistant\n<think>\n", "\n</think>\n\n")):
        dataset = to_dataset(some, args)
        assert ("chat_template_kwargs" in dataset.column_names) == bool(args)
        row = {k: v for k, v in dataset[0].items() if k != "images"}
        rendered = apply_chat_template(row, processor)
        assert rendered["prompt"].endswith(prompt_end) and rendered["chosen"].startswith(chosen_start), rendered

    out = tmp_path / "adapter"
    proc = mmhallu("train", "dpo", "--model", str(model), "--pairs", str(pairs), "--out", str(out), "--max-steps", "1",
                           "--batch-size", "2", "--no-progress", "--chat-template-arg", "enable_thinking=false")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "mmhallu_train.json").read_text())["chat_template_args"] == {"enable_thinking": False}
    proc = mmhallu("train", "dpo", "--model", str(model), "--pairs", str(pairs), "--out", str(tmp_path / "bad"), "--max-steps", "1",
                           "--chat-template-arg", "enable_thinkng=false")
    assert proc.returncode == 2 and "--chat-template-arg enable_thinkng: the chat template of" in proc.stderr, proc.stderr
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_pairs_are_tuned_after_the_prompt_an_evaluation_shows(tiny_llava, pairs, tmp_path):
    """TRL takes as the prompt what "prompt + generation prompt" and "prompt + answer" share. Gemma 4's generation
    prompt writes an empty closed reasoning channel that its answered turns lack, LLaVA-OneVision's ends in
    `assistant\\n` where its answered turns begin `assistant \\n`: TRL would tune the answers in a context no
    evaluation shows. There the pairs go to TRL as text, and the ids TRL's collator trains on are the evaluation's
    own prompt ids followed by the answer and the end of its turn; a template without the difference is unchanged."""
    from trl.trainer.dpo_trainer import DataCollatorForVisionPreference

    from mmhallu_eval.backends.hf_processor import load_processor
    from mmhallu_eval.train.dpo import evaluation_prompts, to_dataset
    from mmhallu_eval.train.pairs import read_pairs
    from mmhallu_eval.world.families import build_family, missing_packages

    some = read_pairs(pairs)[:2]
    assert evaluation_prompts(some, load_processor(str(tiny_llava)), {}) == (None, "", "conversation")
    cases = (("llava_onevision", "\n", "<|im_end|>\n"), ("gemma4", "<|channel>thought\n<channel|>", "<turn|>\n"))
    for family, beyond, turn_end in cases[:1] if missing_packages("gemma4") else cases:
        model = build_family(family, tmp_path / family)
        processor = load_processor(str(model))
        rendered, got, how = evaluation_prompts(some, processor, {})
        assert (got, how) == (beyond, "generation-prompt")
        row = dict(to_dataset(some, {}, rendered)[0])
        batch = DataCollatorForVisionPreference(processor)([row])
        ids, mask, completion = (batch[k][0].tolist() for k in ("input_ids", "attention_mask", "completion_mask"))
        prompt_ids = [t for t, m, c in zip(ids, mask, completion) if m and not c]
        chosen_ids = [t for t, c in zip(ids, completion) if c]
        messages = [{"role": "user", "content": [{"type": "image", "image": row["images"][0]}, {"type": "text", "text": some[0]["prompt"][0]["content"][1]["text"]}]}]
        own = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"][0]
        assert prompt_ids == list(own)
        assert processor.tokenizer.decode(chosen_ids) == some[0]["chosen"][0]["content"][0]["text"] + turn_end

    if missing_packages("gemma4"):
        pytest.skip(f"Gemma 4 (tuned here with a reasoning channel) needs {', '.join(missing_packages('gemma4'))} in this transformers")
    out = tmp_path / "adapter"
    proc = mmhallu("train", "dpo", "--model", str(tmp_path / "gemma4"), "--pairs", str(pairs), "--out", str(out), "--max-steps", "1",
                           "--batch-size", "2", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "the pairs go to TRL as text that starts with the evaluation's prompt" in proc.stderr
    saved = json.loads((out / "mmhallu_train.json").read_text())
    assert (saved["prompts"], saved["generation_prompt_beyond_turn"]) == ("generation-prompt", "<|channel>thought\n<channel|>")


@pytest.mark.slow
def test_a_model_without_a_chat_template_is_refused_before_it_loads(world, pairs, pope_fixture, tmp_path):
    """PaliGemma has no chat template and its processor refuses answers without images, which is how TRL's collator
    tokenises them: `train dpo` and `loop` say so in one line before loading the model or evaluating it."""
    from mmhallu_eval.world.families import build_family

    model = build_family("paligemma", tmp_path / "paligemma")
    says = "has no chat template (its processor builds the prompt itself, as PaliGemma's does); TRL's DPO trainer"
    proc = mmhallu("train", "dpo", "--model", str(model), "--pairs", str(pairs), "--out", str(tmp_path / "adapter"), "--max-steps", "1")
    assert proc.returncode == 2 and says in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "adapter").exists()
    proc = mmhallu("loop", "--model", str(model), "--train-data", str(world / "scene_graph_train.json"), "--train-images",
                           str(world / "images"), "--out", str(tmp_path / "loop"), "--tasks", "pope", "--task-arg", f"pope.data={pope_fixture}",
                           "--task-arg", f"pope.images={pope_fixture / 'images'}", "--no-progress")
    assert proc.returncode == 2 and says in proc.stderr, proc.stderr
    assert not (tmp_path / "loop").exists()
