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
