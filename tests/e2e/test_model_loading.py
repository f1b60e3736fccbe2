"""Checkpoints that cannot be evaluated as they are: each gets a one- or two-line error and exit 2 before anything is
written into an existing run; a checkpoint without a chat template runs with --chat-template FILE."""
import json
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from mmhallu_eval.backends.base import BackendError
from mmhallu_eval.backends.hf_model import auto_class_name
from mmhallu_eval.cli import app
from mmhallu_eval.world.families import build_family
from mmhallu_eval.world.families.llava import LLAVA_TEMPLATE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def llava_dir(tmp_path_factory):
    return build_family("llava", tmp_path_factory.mktemp("m") / "llava")


def _run(model, out, pope_fixture, *extra):
    return CliRunner().invoke(app, [
        "run", "--model", str(model), "--tasks", "pope", "--out", str(out), "--no-progress", "--device", "cpu", "--limit", "2", "--max-new-tokens", "4",
        "--task-arg", f"pope.data={pope_fixture}", "--task-arg", f"pope.images={pope_fixture / 'images'}", *extra,
    ])


def _error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) <= 2 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.fixture()
def existing_run(llava_dir, pope_fixture, tmp_path):
    out = tmp_path / "run"
    assert _run(llava_dir, out, pope_fixture).exit_code == 0
    return out, {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}


def test_text_only_checkpoint_is_refused(tmp_path, existing_run, pope_fixture):
    from transformers import LlamaConfig, LlamaForCausalLM

    from mmhallu_eval.world.families.common import LLAMA_TEXT_ONLY_TOKENS, family_tokenizer, text_config

    tok = family_tokenizer(LLAMA_TEXT_ONLY_TOKENS, "{% for m in messages %}{{ m['content'] }}{% endfor %}")
    model = tmp_path / "text-only"
    LlamaForCausalLM(text_config(LlamaConfig, tok)).save_pretrained(model)
    tok.save_pretrained(model)
    out, before = existing_run
    line = _error_line(_run(model, out, pope_fixture))
    assert "no image processor" in line and "LlamaForCausalLM" in line
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_a_damaged_weights_file_is_one_line_and_the_run_untouched(llava_dir, tmp_path, existing_run, pope_fixture):
    """A weights file cut short or replaced by an error page (a failed download): one line saying so, no traceback."""
    import shutil

    model = tmp_path / "damaged"
    shutil.copytree(llava_dir, model)
    (model / "model.safetensors").write_bytes(b"<html>503</html>")
    out, before = existing_run
    line = _error_line(_run(model, out, pope_fixture))
    assert line.startswith(f"error: could not load the weights of {str(model)!r}") and "download or save the model again" in line, line
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("change,says", [
    (("vision_config", "hidden_size", "x"), "Validation error for field 'hidden_size': TypeError: Field 'hidden_size' expected int, got str"),
    (("text_config", "num_attention_heads", 3), "ValueError: The hidden size (64) is not a multiple of the number of attention heads (3)"),
])
def test_a_config_field_transformers_refuses_is_one_line(llava_dir, tmp_path, existing_run, pope_fixture, change, says):
    """transformers 5 checks config fields as it reads them (huggingface_hub's StrictDataclassError, not a
    ValueError): one line naming the field, not a traceback."""
    import shutil

    model = tmp_path / "damaged"
    shutil.copytree(llava_dir, model)
    cfg = json.loads((model / "config.json").read_text())
    section, key, value = change
    cfg[section][key] = value
    (model / "config.json").write_text(json.dumps(cfg))
    out, before = existing_run
    line = _error_line(_run(model, out, pope_fixture))
    assert line.startswith(f"error: could not read the config of {str(model)!r}: ") and says in line, line
    assert line.endswith("Download or save the model again.")
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_a_tokenizer_without_padding_or_end_token_is_one_line(llava_dir, tmp_path, existing_run, pope_fixture):
    import shutil

    model = tmp_path / "damaged"
    shutil.copytree(llava_dir, model)
    cfg = json.loads((model / "tokenizer_config.json").read_text())
    cfg.update(pad_token=None, eos_token=None)
    (model / "tokenizer_config.json").write_text(json.dumps(cfg))
    out, before = existing_run
    line = _error_line(_run(model, out, pope_fixture))
    assert line.startswith(f"error: the tokenizer of {model} has neither a padding nor an end-of-sequence token"), line
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_a_config_value_the_model_cannot_be_built_with_is_one_line(llava_dir, tmp_path, existing_run, pope_fixture):
    """config.json loads, but the model's code fails on a value (a RoPE factor written as text): one line naming
    config.json, not a TypeError traceback from inside the model's constructor."""
    import shutil

    model = tmp_path / "damaged"
    shutil.copytree(llava_dir, model)
    cfg = json.loads((model / "config.json").read_text())
    cfg["text_config"]["rope_parameters"] = {"rope_type": "linear", "factor": "two", "rope_theta": 10000.0}
    (model / "config.json").write_text(json.dumps(cfg))
    out, before = existing_run
    line = _error_line(_run(model, out, pope_fixture))
    assert line.startswith(f"error: could not load the weights of {str(model)!r}") and "(TypeError: " in line, line
    assert "config.json holds a value the model cannot be built with" in line
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("damage,says", [
    (("tokenizer.json", "<html>503</html>"), "could not load the processor of {model!r}: {model}/tokenizer.json:1: not valid JSON ("),
    (("processor_config.json", '{"image_processor": '), "could not load the processor of {model!r}: {model}/processor_config.json:1: not valid JSON ("),
    (("tokenizer_config.json", "[]"), "could not load the processor of {model!r}: {model}/tokenizer_config.json: not a JSON object (a list); download"),
    (("chat_template.jinja", "{% for m in messages %}{{ m.content }}"), "the chat template of {model} does not render a user turn with an image (line 1): TemplateSyntaxError"),
])
def test_a_damaged_processor_file_or_template_is_named_in_one_line(llava_dir, tmp_path, existing_run, pope_fixture, damage, says):
    import shutil

    model = tmp_path / "damaged"
    shutil.copytree(llava_dir, model)
    name, text = damage
    assert (model / name).is_file()
    (model / name).write_text(text)
    out, before = existing_run
    line = _error_line(_run(model, out, pope_fixture))
    assert line.startswith("error: " + says.format(model=str(model))), line
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_a_processor_value_of_the_wrong_type_is_named_in_one_line(llava_dir, tmp_path, existing_run, pope_fixture):
    """A file that reads but holds a value transformers trips over deep in its own code (a TypeError there)."""
    import shutil

    model = tmp_path / "damaged"
    shutil.copytree(llava_dir, model)
    settings = json.loads((model / "tokenizer_config.json").read_text())
    (model / "tokenizer_config.json").write_text(json.dumps({**settings, "model_max_length": "x"}))
    out, before = existing_run
    line = _error_line(_run(model, out, pope_fixture))
    assert line.startswith(f"error: could not load the processor of {str(model)!r} (TypeError: "), line
    assert "tokenizer_config.json may be of the wrong type" in line
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("text,says", [
    ('{"eos_token_id": 2,', "{model}/generation_config.json: not a readable JSON file ("),
    ("[2]", "{model}/generation_config.json: not a generation config (TypeError: "),
    ('{"eos_token_id": "2"}', "{model}/generation_config.json: eos_token_id is '2'; it must be a token id"),
    ('{"eos_token_id": [2, 7.5]}', "{model}/generation_config.json: eos_token_id is [2, 7.5]; it must be a token id"),
    ('{"pad_token_id": true}', "{model}/generation_config.json: pad_token_id is True; it must be a token id"),
])
def test_a_damaged_generation_config_is_named_in_one_line(llava_dir, tmp_path, existing_run, pope_fixture, text, says):
    """transformers and vLLM pass over an unreadable generation_config.json (its stop tokens are lost without a word),
    and a token id that is not a whole number failed every sample with a TypeError."""
    import shutil

    model = tmp_path / "damaged"
    shutil.copytree(llava_dir, model)
    (model / "generation_config.json").write_text(text)
    out, before = existing_run
    line = _error_line(_run(model, out, pope_fixture))
    assert line.startswith("error: " + says.format(model=str(model))), line
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("change,says", [
    ({"num_additional_image_tokens": 5}, "ValueError: Image features and image tokens do not match"),
    ({"patch_size": 0}, "ZeroDivisionError"),
    ({"image_processor": {"size": {"shortest_edge": 0}}}, "ValueError: Size must contain"),
])
def test_a_processor_that_does_not_fit_the_model_is_named_before_any_sample(llava_dir, tmp_path, existing_run, pope_fixture, change, says):
    """A processor_config.json that loads but does not fit the model failed every sample with the same error, after a
    whole run; one plain image question is answered first, as vLLM's start-up profiling does."""
    import shutil

    model = tmp_path / "misfit"
    shutil.copytree(llava_dir, model)
    cfg = json.loads((model / "processor_config.json").read_text())
    for key, value in change.items():
        cfg[key] = {**cfg[key], **value} if isinstance(value, dict) else value
    (model / "processor_config.json").write_text(json.dumps(cfg))
    out, before = existing_run
    line = _error_line(_run(model, out, pope_fixture))
    assert line.startswith(f"error: {model}: its processor cannot prepare an image prompt this model takes ({says}"), line
    assert "processor_config.json or preprocessor_config.json" in line
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_no_chat_template_needs_one_and_a_file_works(llava_dir, tmp_path, pope_fixture):
    import shutil

    model = tmp_path / "no-template"
    shutil.copytree(llava_dir, model)
    (model / "chat_template.jinja").unlink()
    for name in ("tokenizer_config.json", "processor_config.json"):
        cfg = json.loads((model / name).read_text())
        cfg.pop("chat_template", None)
        (model / name).write_text(json.dumps(cfg))
    line = _error_line(_run(model, tmp_path / "a", pope_fixture))
    assert "has no chat template" in line and "--chat-template FILE" in line

    bad = tmp_path / "bad.jinja"
    bad.write_text("{% for m in messages %}{{ m['content'][0]['nope'] + 1 }}{% endfor %}")
    line = _error_line(_run(model, tmp_path / "b", pope_fixture, "--chat-template", str(bad)))
    assert "does not render" in line
    line = _error_line(_run(model, tmp_path / "c", pope_fixture, "--chat-template", str(tmp_path / "missing.jinja")))
    assert "file not found" in line
    latin1 = tmp_path / "latin1.jinja"
    latin1.write_bytes((LLAVA_TEMPLATE + "{# modèle #}").encode("latin-1"))  # saved by an editor in Latin-1
    line = _error_line(_run(model, tmp_path / "c2", pope_fixture, "--chat-template", str(latin1)))
    assert line.startswith(f"error: {latin1}:") and "not UTF-8 text" in line

    good = tmp_path / "llava.jinja"
    good.write_text(LLAVA_TEMPLATE)
    assert _run(model, tmp_path / "d", pope_fixture, "--chat-template", str(good)).exit_code == 0
    manifest = json.loads((tmp_path / "d/manifest.json").read_text())
    assert manifest["model"]["prompt_format"]["source"] == f"file:{good}"
    assert manifest["config"]["backend_args"]["chat_template"] == str(good)
    # the same prompts as the checkpoint's own template: same answers
    assert _run(llava_dir, tmp_path / "e", pope_fixture).exit_code == 0
    answers = [json.loads(line)["response"] for line in (tmp_path / "d/pope/samples.jsonl").read_text().splitlines()]
    assert answers == [json.loads(line)["response"] for line in (tmp_path / "e/pope/samples.jsonl").read_text().splitlines()]


def test_paligemma_uses_its_processors_documented_format(tmp_path, pope_fixture):
    model = build_family("paligemma", tmp_path / "pg")
    assert _run(model, tmp_path / "run", pope_fixture).exit_code == 0
    fmt = json.loads((tmp_path / "run/manifest.json").read_text())["model"]["prompt_format"]
    assert fmt["kind"] == "processor" and fmt["source"] == "paligemma" and "<bos>" in fmt["format"]


def test_torchvision_only_processor_is_one_line(tmp_path, pope_fixture, monkeypatch):
    """A processor transformers builds only with torchvision (here Pixtral's, with its PIL twin taken away)."""
    from mmhallu_eval.backends import hf_processor

    if hf_processor.torchvision_available():
        pytest.skip("torchvision is installed: the Pixtral processor loads")
    model = build_family("mistral3", tmp_path / "m3")
    monkeypatch.setattr(hf_processor, "TORCHVISION_TWINS", {})
    line = _error_line(_run(model, tmp_path / "run", pope_fixture))
    assert "PixtralProcessor" in line and "needs torchvision" in line
    assert not (tmp_path / "run").exists()


def test_pixtral_processor_loads_without_torchvision(tmp_path):
    """Mistral 3's processor: the class transformers marks as needing torchvision, built with the PIL twin of its one
    torchvision import; its image processor is the checkpoint's own (PIL)."""
    from mmhallu_eval.backends.hf_processor import load_processor

    processor = load_processor(str(build_family("mistral3", tmp_path / "m3")))
    assert type(processor).__name__ == "PixtralProcessor" and type(processor.image_processor).__name__ == "PixtralImageProcessorPil"


def test_missing_processor_package_names_the_extra(tmp_path, pope_fixture, monkeypatch):
    import transformers.models.smolvlm.processing_smolvlm as smolvlm

    model = build_family("smolvlm", tmp_path / "smol")
    monkeypatch.setattr(smolvlm, "num2words", None)
    line = _error_line(_run(model, tmp_path / "run", pope_fixture))
    assert "num2words" in line and "mmhallu-eval[smolvlm]" in line


def test_trust_remote_code_reaches_the_manifest(llava_dir, tmp_path, pope_fixture):
    assert _run(llava_dir, tmp_path / "run", pope_fixture, "--trust-remote-code").exit_code == 0
    manifest = json.loads((tmp_path / "run/manifest.json").read_text())
    assert manifest["model"]["trust_remote_code"] is True and manifest["config"]["backend_args"]["trust_remote_code"] is True


@pytest.mark.parametrize("model_type,expected", [
    ("llava", "AutoModelForImageTextToText"), ("phi4_multimodal", "AutoModelForMultimodalLM"),
])
def test_auto_class_follows_the_transformers_mappings(model_type, expected):
    processor = SimpleNamespace(image_processor=object())
    assert auto_class_name(SimpleNamespace(model_type=model_type, architectures=["X"]), processor) == expected


def test_unmapped_architecture_is_refused_in_one_line():
    with pytest.raises(BackendError) as err:
        auto_class_name(SimpleNamespace(model_type="vit", architectures=["ViTModel"]), SimpleNamespace(image_processor=object()))
    assert "ViTModel (vit) is not an image-text model" in str(err.value) and "\n" not in str(err.value)
    remote = SimpleNamespace(model_type="custom_vlm", architectures=["CustomVLM"], auto_map={"AutoModelForCausalLM": "modeling.CustomVLM"})
    assert auto_class_name(remote, SimpleNamespace(image_processor=object())) == "AutoModelForCausalLM"
