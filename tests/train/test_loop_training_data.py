"""What the loop records of the training data, to tell a finished stage's data from the data now."""
import os

from mmhallu_eval.train.loop import training_data_identity


def test_the_identity_follows_the_annotations_bytes_and_each_images_size_and_time(tmp_path):
    images = tmp_path / "images"
    (images / "train").mkdir(parents=True)
    (images / "train" / "a.png").write_bytes(b"a")
    (images / "b.png").write_bytes(b"bb")
    annotations = tmp_path / "ann.json"
    annotations.write_text('{"images": []}')
    first = training_data_identity(str(annotations), str(images))
    assert training_data_identity(str(annotations), str(images)) == first  # nothing changed: the same

    os.utime(images / "train" / "a.png", ns=(1, 1))  # same bytes, another modification time
    touched = training_data_identity(str(annotations), str(images))
    assert touched["images"] != first["images"] and touched["annotations"] == first["annotations"]

    annotations.write_text('{"images":  []}')
    assert training_data_identity(str(annotations), str(images))["annotations"] != first["annotations"]

    (images / "gone.png").symlink_to(tmp_path / "nowhere.png")  # a link to nothing is named, not an error
    assert training_data_identity(str(annotations), str(images))["images"] != touched["images"]
    assert training_data_identity(str(tmp_path / "no.json"), str(tmp_path / "none")) == {"annotations": "missing", "images": "missing"}
