"""``inkdigits predict`` and ``Recognizer`` on real images with the bundled model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from conftest import example_images, run_cli
from inkdigits import BadImageError, ModelError, NoDigitError, Recognizer


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer.load()


def _label(path) -> int:
    return int(path.name[0])


def test_readme_main_job_reads_every_example(tmp_path):
    images = example_images()
    assert len(images) == 10
    result = run_cli("predict", *map(str, images))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert [line.split(": ")[1].split(" ")[0] for line in lines] == [str(_label(p)) for p in images]


def test_json_lines_in_input_order_with_errors_in_place(bad_inputs):
    images = example_images()
    args = [str(images[3]), str(bad_inputs["missing"]), str(images[7])]
    result = run_cli("predict", "--json", *args)
    assert result.returncode == 2
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["file"] for row in rows] == args
    assert rows[0]["digit"] == 3 and rows[2]["digit"] == 7
    assert set(rows[0]) >= {"file", "digit", "confidence", "probabilities"}
    assert abs(sum(rows[0]["probabilities"]) + rows[0]["not_digit"] - 1) < 1e-4
    assert rows[0]["confidence"] == max(rows[0]["probabilities"])
    assert set(rows[1]) == {"file", "error"} and "does not exist" in rows[1]["error"]


def test_top_k_lists_the_most_likely_digits():
    result = run_cli("predict", "--top", "3", str(example_images()[8]))
    assert result.returncode == 0
    top = result.stdout.split("[")[1].rstrip("]\n").split(", ")
    assert len(top) == 3 and top[0].startswith("8:")


@pytest.mark.parametrize(
    ("kind", "code", "words"),
    [
        ("missing", 2, "does not exist"),
        ("text", 2, "not an image"),
        ("truncated", 2, "truncated or damaged"),
        ("empty", 2, "empty"),
        ("bomb", 2, "limit"),
        ("blank", 1, "No digit found"),
    ],
)
def test_bad_input_gives_one_sentence_and_its_exit_code_while_others_are_answered(bad_inputs, kind, code, words):
    good = example_images()[2]
    result = run_cli("predict", str(good), str(bad_inputs[kind]), str(good))
    assert result.returncode == code
    assert "Traceback" not in result.stderr
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and words in errors[0] and str(bad_inputs[kind]) in errors[0]
    assert result.stdout.count(": 2 (") == 2, "the good inputs around it are still read"


@pytest.mark.parametrize("kind", ["garbage", "wrong", "missing"])
def test_unreadable_or_wrong_model_is_refused_with_exit_2(tmp_path, kind):
    model = tmp_path / "model.onnx"
    if kind == "garbage":
        model.write_bytes(b"\x08\x07 this is not a protobuf" * 10)
    elif kind == "wrong":
        import onnx
        from onnx import TensorProto, helper

        graph = helper.make_graph(
            [helper.make_node("Identity", ["x"], ["y"])],
            "not-a-digit-model",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])],
        )
        onnx.save(helper.make_model(graph), model)
    result = run_cli("predict", "--model", str(model), str(example_images()[0]))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert str(model) in result.stderr
    with pytest.raises(ModelError):
        Recognizer.load(model)


def test_save_plot_writes_a_png_of_the_stages(tmp_path):
    target = tmp_path / "plot.png"
    result = run_cli("predict", str(example_images()[6]), "--save-plot", str(target))
    assert result.returncode == 0, result.stderr
    with Image.open(target) as picture:
        assert picture.format == "PNG" and picture.width > 1000


def test_python_api_accepts_paths_bytes_arrays_and_pil(recognizer):
    path = example_images()[5]
    expected = _label(path)
    pil = Image.open(path)
    inputs = [path, str(path), path.read_bytes(), np.asarray(pil), pil]
    predictions = recognizer.predict_batch(inputs)
    assert [p.digit for p in predictions] == [expected] * len(inputs)
    single = recognizer.predict(path)
    assert single.digit == expected and np.allclose(single.probabilities, predictions[0].probabilities, atol=1e-6)
    assert 0.5 < single.confidence <= 1 and single.top(2)[0] == (expected, single.confidence)


def test_api_raises_typed_errors(recognizer, bad_inputs):
    with pytest.raises(NoDigitError):
        recognizer.predict(bad_inputs["blank"])
    with pytest.raises(BadImageError):
        recognizer.predict(bad_inputs["text"])
    answers = recognizer.predict_batch([bad_inputs["empty"], example_images()[1]], return_errors=True)
    assert isinstance(answers[0], BadImageError) and answers[1].digit == 1


@pytest.mark.parametrize("shade", [0, 255, 128])
def test_uniform_images_hold_no_digit(recognizer, shade):
    with pytest.raises(NoDigitError):
        recognizer.predict(np.full((64, 64), shade, np.uint8))


def test_recognition_never_imports_torch():
    """Acceptance: ``python -X importtime`` shows no torch on the recognition path."""
    import subprocess
    import sys

    code = "import inkdigits; r = inkdigits.Recognizer.load(); r.predict('examples/7-white-on-black.png')"
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        cwd=str(example_images()[0].parents[1]),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}
    assert "onnxruntime" in imported and "cv2" in imported
    assert "torch" not in imported


def test_a_phone_sized_jpeg_is_read_alike_and_boxed_in_its_own_pixels(recognizer, tmp_path):
    # The ballpoint example enlarged to 12 MP: decoded at a quarter (nothing past 640 pixels
    # a side is used), the digit and its box, scaled back, match the example's own.
    example = next(p for p in example_images() if "ballpoint" in p.name)
    small = Image.open(example).convert("RGB")
    big = tmp_path / "phone.jpg"
    small.resize((small.width * 8, small.height * 8), Image.BICUBIC).save(big, quality=90)
    original, enlarged = recognizer.predict(example), recognizer.predict(big)
    assert enlarged.digit == original.digit == _label(example)
    assert np.abs(np.array(enlarged.box) - 8 * np.array(original.box)).max() <= 8 * 3
