"""The locally built models: a larger language model where a benchmark needs the engine to do real work."""
import json

from mmhallu_eval.world.tiny_models import build_tiny_idefics3


def test_idefics3_language_model_settings_are_overridden_and_the_rest_kept(tmp_path):
    from transformers import AutoModelForImageTextToText

    small = {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 3, "num_attention_heads": 2, "num_key_value_heads": 2, "head_dim": 64}
    folder = build_tiny_idefics3(tmp_path / "small", text=small)
    text = json.loads((folder / "config.json").read_text())["text_config"]
    assert {k: text[k] for k in small} == small
    assert text["max_position_embeddings"] == 1024  # what the override does not name stays as the tiny model has it
    model = AutoModelForImageTextToText.from_pretrained(folder)
    assert model.config.text_config.num_hidden_layers == 3
    assert len(model.model.text_model.layers) == 3


def test_building_again_replaces_the_earlier_build_and_nothing_else(tmp_path):
    """`world tiny-model` into its own earlier folder: the earlier build's files go (a Qwen2-VL video processor
    config must not stay beside a LLaVA), a user's own file stays, and a record naming a file outside the folder
    deletes nothing there."""
    import pytest
    from transformers import AutoConfig

    from mmhallu_eval.errors import TaskError
    from mmhallu_eval.world.model_folder import BUILD_RECORD, build_model_folder

    folder = tmp_path / "model"
    build_model_folder(folder, family="qwen2_vl")
    assert (folder / "video_preprocessor_config.json").is_file()
    (folder / "notes.txt").write_text("mine")
    outside = tmp_path / "outside.txt"
    outside.write_text("not the build's")
    record = json.loads((folder / BUILD_RECORD).read_text())
    assert record["model"] == "qwen2_vl" and "config.json" in record["files"] and BUILD_RECORD not in record["files"]
    (folder / BUILD_RECORD).write_text(json.dumps({**record, "files": [*record["files"], "../outside.txt", str(outside)]}))
    build_model_folder(folder, arch="llava", seed=1)
    assert not (folder / "video_preprocessor_config.json").exists()
    assert (folder / "notes.txt").read_text() == "mine" and outside.read_text() == "not the build's"
    assert AutoConfig.from_pretrained(folder).model_type == "llava"
    assert json.loads((folder / BUILD_RECORD).read_text())["model"] == "llava"
    # a checkpoint folder without the record is refused before anything in it is touched; so is an unknown name
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{}")
    with pytest.raises(TaskError, match="holds files that are not a tiny model's"):
        build_model_folder(checkpoint, arch="idefics3")
    with pytest.raises(TaskError, match="--family bogus: no such family"):
        build_model_folder(folder, family="bogus")
    assert (checkpoint / "config.json").read_text() == "{}" and (folder / "config.json").is_file()
