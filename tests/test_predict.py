"""The prediction tool: the ImageNet class table, the evaluation transform and the CLI.

The transform is checked against a reference written here with Pillow and NumPy only, from
the published recipe (resize the short side to int(size / crop_pct) bicubic, crop the centre,
normalise). The CLI runs against a fake model with chosen logits, so these tests do not depend
on the real network or its weights.
"""

from __future__ import annotations

import configparser
import math
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import mini_iformer as mi
from mini_iformer import imagenet, predict

ROOT = Path(__file__).resolve().parent.parent
MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])

KNOWN_CLASSES = [
    (0, "n01440764", "tench"),
    (217, "n02102040", "English springer"),
    (482, "n02979186", "cassette player"),
    (491, "n03000684", "chain saw"),
    (497, "n03028079", "church"),
    (566, "n03394916", "French horn"),
    (569, "n03417042", "garbage truck"),
    (571, "n03425413", "gas pump"),
    (574, "n03445777", "golf ball"),
    (701, "n03888257", "parachute"),
]


# --- the class table ---------------------------------------------------------------------------


def _table_text() -> str:
    return resources.files("mini_iformer").joinpath("imagenet_classes.tsv").read_text("utf-8")


def test_the_table_file_has_a_header_and_1000_rows_in_index_order():
    lines = _table_text().splitlines()
    assert lines[0].startswith("#") and "WordNet" in lines[0]
    rows = [line.split("\t") for line in lines[1:]]
    assert len(rows) == 1000
    assert all(len(row) == 3 for row in rows)
    assert [int(row[0]) for row in rows] == list(range(1000))
    assert len({tuple(row) for row in rows}) == 1000


def test_wordnet_ids_are_unique_and_well_formed():
    wnids = imagenet.wordnet_ids()
    assert len(wnids) == 1000 and len(set(wnids)) == 1000
    assert all(re.fullmatch(r"n\d{8}", wnid) for wnid in wnids)


def test_class_names_are_1000_non_empty_strings():
    names = imagenet.class_names()
    assert len(names) == 1000
    assert all(name == name.strip() and name for name in names)


@pytest.mark.parametrize("index, wnid, name", KNOWN_CLASSES)
def test_known_classes(index, wnid, name):
    assert imagenet.wordnet_ids()[index] == wnid
    assert imagenet.class_names()[index] == name


def test_the_returned_lists_are_copies():
    imagenet.class_names()[0] = "changed"
    imagenet.wordnet_ids()[0] = "changed"
    assert imagenet.class_names()[0] == "tench"
    assert imagenet.wordnet_ids()[0] == "n01440764"


def _rows(n: int = 1000) -> list[str]:
    return [f"{i}\tn{10000000 + i:08d}\tclass {i}" for i in range(n)]


@pytest.mark.parametrize("damage, message", [
    (lambda rows: rows[:999], "expected 1000 classes"),
    (lambda rows: rows[:5] + rows[6:] + ["1000\tn99999999\textra"], "expected class index 5"),
    (lambda rows: rows[:3] + ["3\tn10000003"] + rows[4:], "line 5: expected 3 tab-separated"),
    (lambda rows: rows[:7] + ["7\tx1234567\tbad"] + rows[8:], "not a WordNet id"),
    (lambda rows: rows[:9] + ["9\tn10000009\t "] + rows[10:], "empty class name"),
    (lambda rows: rows[:2] + ["2\tn10000001\tdup"] + rows[3:], "more than once"),
], ids=["short", "index gap", "two fields", "bad id", "no name", "repeated id"])
def test_a_damaged_table_is_refused_with_a_clear_message(damage, message):
    text = "# header\n" + "\n".join(damage(_rows())) + "\n"
    with pytest.raises(ValueError, match=message) as info:
        imagenet.parse_class_table(text, source="classes.tsv")
    assert "classes.tsv" in str(info.value)


def test_an_intact_table_parses():
    wnids, names = imagenet.parse_class_table("# c\n\n" + "\n".join(_rows()) + "\n")
    assert wnids[3] == "n10000003" and names[999] == "class 999"


def test_setup_cfg_ships_the_table_in_the_wheel():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    assert "imagenet_classes.tsv" in config["options.package_data"]["mini_iformer"]


# --- the evaluation transform ------------------------------------------------------------------


def reference_transform(rgb: np.ndarray, size: int = 224, crop_pct: float = 0.9) -> np.ndarray:
    """The recipe on an (H, W, 3) uint8 array, written independently with Pillow and NumPy."""
    height, width = rgb.shape[:2]
    short = int(size / crop_pct)
    if width <= height:
        new_width, new_height = short, short * height // width
    else:
        new_width, new_height = short * width // height, short
    resized = Image.fromarray(rgb).resize((new_width, new_height), Image.Resampling.BICUBIC)
    pixels = np.asarray(resized, dtype=np.float64)
    top = int(round((new_height - size) / 2.0))
    left = int(round((new_width - size) / 2.0))
    crop = pixels[top:top + size, left:left + size] / 255.0
    return ((crop - MEAN) / STD).transpose(2, 0, 1)


def _random_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random image (so bicubic ringing stays small) with some sharp noise on top."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    smooth = np.stack([np.sin(x / 17.0 + c) * np.cos(y / 11.0 - c) for c in range(3)], axis=-1)
    noisy = 127.5 + 90.0 * smooth + rng.normal(0.0, 20.0, size=smooth.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _assert_matches(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=0, atol=2e-6)


@pytest.mark.parametrize("height, width", [
    (300, 400),   # landscape, resize down to 248 x 330
    (517, 301),   # portrait, crop offset (425 - 224) / 2 = 100.5 rounds to even
    (248, 333),   # short side already 248: no resize, left offset 54.5 rounds to even
    (60, 90),     # small: resized up
    (256, 256),   # square
])
def test_rgb_images_match_the_reference(height, width):
    rgb = _random_rgb(height, width)
    out = imagenet.eval_transform(Image.fromarray(rgb))
    assert out.shape == (3, 224, 224) and out.dtype == np.float32
    assert out.flags.c_contiguous
    _assert_matches(out, reference_transform(rgb))


@pytest.mark.parametrize("size, crop_pct", [(64, 0.875), (96, 1.0), (32, 0.5)])
def test_other_sizes_and_crop_fractions(size, crop_pct):
    rgb = _random_rgb(150, 211, seed=1)
    out = imagenet.eval_transform(Image.fromarray(rgb), size=size, crop_pct=crop_pct)
    assert out.shape == (3, size, size) and out.dtype == np.float32
    _assert_matches(out, reference_transform(rgb, size, crop_pct))


def test_greyscale_becomes_three_equal_channels():
    grey = _random_rgb(200, 310)[..., 0]
    out = imagenet.eval_transform(Image.fromarray(grey))
    _assert_matches(out, reference_transform(np.repeat(grey[..., None], 3, axis=-1)))


def test_sixteen_bit_greyscale_is_scaled_to_eight_bits():
    grey = _random_rgb(230, 180)[..., 0]
    wide = Image.fromarray(grey.astype(np.uint16) * 257)   # 0..255 -> 0..65535
    assert wide.mode == "I;16"
    out = imagenet.eval_transform(wide)
    _assert_matches(out, reference_transform(np.repeat(grey[..., None], 3, axis=-1)))


def test_rgba_drops_the_alpha_channel():
    rgb = _random_rgb(240, 260)
    alpha = np.random.default_rng(3).integers(0, 256, size=rgb.shape[:2], dtype=np.uint8)
    rgba = Image.fromarray(np.dstack([rgb, alpha]))
    assert rgba.mode == "RGBA"
    _assert_matches(imagenet.eval_transform(rgba), reference_transform(rgb))


@pytest.mark.parametrize("transparency", [None, 3])
def test_palette_images_use_their_palette_colours(transparency):
    rng = np.random.default_rng(4)
    indices = rng.integers(0, 16, size=(250, 270), dtype=np.uint8)
    palette = rng.integers(0, 256, size=(16, 3), dtype=np.uint8)
    image = Image.frombytes("P", (270, 250), indices.tobytes())
    image.putpalette(palette.ravel().tolist())
    if transparency is not None:
        image.info["transparency"] = transparency
    assert image.mode == "P"
    _assert_matches(imagenet.eval_transform(image), reference_transform(palette[indices]))


def test_cmyk_is_converted_to_rgb():
    rgb = _random_rgb(250, 250)
    cmyk = np.dstack([255 - rgb, np.zeros(rgb.shape[:2], dtype=np.uint8)])
    image = Image.frombytes("CMYK", (250, 250), cmyk.tobytes())
    _assert_matches(imagenet.eval_transform(image), reference_transform(rgb))


@pytest.mark.parametrize("colour", [(200, 30, 90), (0, 0, 0), (255, 255, 255)])
def test_a_solid_colour_maps_to_its_normalised_value_everywhere(colour):
    out = imagenet.eval_transform(Image.new("RGB", (320, 241), colour))
    expected = (np.array(colour) / 255.0 - MEAN) / STD
    assert np.ptp(out.reshape(3, -1), axis=1).tolist() == [0.0, 0.0, 0.0]
    np.testing.assert_allclose(out[:, 0, 0], expected, rtol=0, atol=1e-6)


def test_the_crop_is_the_centre():
    # 400 x 248: no resize; the crop is columns 88..311 and rows 12..235.
    canvas = np.zeros((248, 400, 3), dtype=np.uint8)
    canvas[12:236, 88:312] = 255
    canvas[12, 88] = (255, 0, 0)       # top-left corner of the crop
    canvas[235, 311] = (0, 255, 0)     # bottom-right corner of the crop
    pixels = imagenet.eval_transform(Image.fromarray(canvas)).transpose(1, 2, 0) * STD + MEAN
    pixels = np.rint(pixels * 255.0).astype(int)
    assert pixels[0, 0].tolist() == [255, 0, 0]
    assert pixels[-1, -1].tolist() == [0, 255, 0]
    pixels[0, 0] = pixels[-1, -1] = 255
    assert (pixels == 255).all()        # nothing from the black border got in


def test_a_path_gives_the_same_result_as_the_image(tmp_path):
    rgb = _random_rgb(210, 290)
    path = tmp_path / "photo.png"
    Image.fromarray(rgb).save(path)
    np.testing.assert_array_equal(imagenet.eval_transform(path),
                                  imagenet.eval_transform(Image.fromarray(rgb)))
    np.testing.assert_array_equal(imagenet.eval_transform(str(path)),
                                  imagenet.eval_transform(path))


def test_exif_orientation_is_applied_when_reading_a_file(tmp_path):
    rgb = _random_rgb(200, 300)
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6   # "rotate 90 degrees clockwise to display"
    Image.fromarray(rgb).save(path, exif=exif, quality=100)
    with Image.open(path) as stored:
        upright = np.asarray(stored.convert("RGB").transpose(Image.Transpose.ROTATE_270))
    _assert_matches(imagenet.eval_transform(path), reference_transform(upright))


def test_load_images_stacks_in_order(tmp_path):
    paths = []
    for i, colour in enumerate([(10, 20, 30), (200, 100, 0), (5, 250, 5)]):
        paths.append(tmp_path / f"{i}.png")
        Image.new("RGB", (90 + 10 * i, 70), colour).save(paths[-1])
    batch = imagenet.load_images(paths, size=32)
    assert batch.shape == (3, 3, 32, 32) and batch.dtype == np.float32
    for i, path in enumerate(paths):
        np.testing.assert_array_equal(batch[i], imagenet.eval_transform(path, size=32))
    assert imagenet.load_images([], size=32).shape == (0, 3, 32, 32)


def _write_bad_files(tmp_path: Path) -> dict[str, Path]:
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    whole = tmp_path / "whole.png"
    Image.fromarray(_random_rgb(120, 120)).save(whole)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(whole.read_bytes()[:300])
    return {"missing": tmp_path / "missing.jpg", "text": text, "truncated": truncated,
            "directory": tmp_path}


@pytest.mark.parametrize("kind", ["missing", "text", "truncated", "directory"])
def test_an_unreadable_path_raises_value_error_naming_it(tmp_path, kind):
    path = _write_bad_files(tmp_path)[kind]
    with pytest.raises(ValueError, match=re.escape(str(path))):
        imagenet.eval_transform(path)


@pytest.mark.parametrize("size, crop_pct", [(0, 0.9), (-3, 0.9), (2.5, 0.9), (224, 0.0),
                                            (224, 1.5)])
def test_bad_geometry_is_refused(size, crop_pct):
    with pytest.raises(ValueError, match="size|crop_pct"):
        imagenet.eval_transform(Image.new("RGB", (10, 10)), size=size, crop_pct=crop_pct)


# --- the numerical helpers of the CLI ----------------------------------------------------------


def test_softmax_is_stable_and_normalised():
    probs = predict.softmax(np.array([[1000.0, 0.0, -1000.0], [1.0, 1.0, 1.0]], dtype=np.float32))
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    np.testing.assert_allclose(probs[1], 1.0 / 3.0)
    assert probs[0, 0] == 1.0


def test_top_k_is_descending_and_breaks_ties_by_index():
    indices, values = predict.top_k(np.array([[0.1, 0.4, 0.1, 0.4]]), 3)
    assert indices.tolist() == [[1, 3, 0]]
    assert values.tolist() == [[0.4, 0.4, 0.1]]
    assert predict.top_k(np.array([[0.5, 0.5]]), 10)[0].shape == (1, 2)


# --- the command line, with a fake model -------------------------------------------------------


class FakeModel:
    """Stands in for an iFormer: returns the next rows of chosen logits on each call."""

    def __init__(self, logits: np.ndarray, default_img_size: int | None = None):
        self.logits = np.asarray(logits, dtype=np.float32)
        self.default_img_size = default_img_size
        self.inputs: list[np.ndarray] = []
        self.evaluated = False
        self.grad_enabled_in_call: list[bool] = []

    def eval(self) -> FakeModel:
        self.evaluated = True
        return self

    def __call__(self, x: mi.Tensor) -> mi.Tensor:
        self.grad_enabled_in_call.append(mi.is_grad_enabled())
        batch = mi.backend.to_numpy(x.data)
        start = sum(len(previous) for previous in self.inputs)
        self.inputs.append(batch.copy())
        return mi.tensor(self.logits[start:start + len(batch)])


@pytest.fixture
def fake(monkeypatch):
    """Install a fake model registry in ``mini_iformer``; yield its record of calls."""
    record = {"calls": [], "model": None, "logits": np.zeros((0, 1000)), "error": None,
              "img_size": None}

    def create_model(name, num_classes=1000, checkpoint=None):
        record["calls"].append((name, num_classes, checkpoint))
        if record["error"] is not None:
            raise record["error"]
        record["model"] = FakeModel(record["logits"], record["img_size"])
        return record["model"]

    monkeypatch.setattr(mi, "create_model", create_model, raising=False)
    monkeypatch.setattr(mi, "list_models", lambda: ["iformer_small", "iformer_base"],
                        raising=False)
    return record


def _images(tmp_path: Path, count: int) -> list[str]:
    paths = []
    for i in range(count):
        path = tmp_path / f"image_{i}.png"
        Image.fromarray(_random_rgb(100 + 7 * i, 130, seed=i)).save(path)
        paths.append(str(path))
    return paths


def _checkpoint(tmp_path: Path) -> str:
    path = tmp_path / "weights.npz"
    path.write_bytes(b"stand-in")
    return str(path)


def _logit_rows(*entries: dict[int, float]) -> np.ndarray:
    rows = np.zeros((len(entries), 1000))
    for row, entry in zip(rows, entries):
        for index, value in entry.items():
            row[index] = value
    return rows


def _expected_percent(logits: np.ndarray, index: int) -> str:
    total = sum(math.exp(v) for v in logits.tolist())
    return f"{100.0 * math.exp(float(logits[index])) / total:.2f}%"


def test_predictions_are_printed_in_descending_probability(fake, tmp_path, capsys):
    fake["logits"] = _logit_rows({574: 9.0, 701: 7.5, 0: 7.0}, {217: 4.0, 491: 6.0, 497: 5.0},
                                 {566: 12.0, 569: 11.0, 571: 10.0})
    paths = _images(tmp_path, 3)
    assert predict.main([*paths, "--checkpoint", _checkpoint(tmp_path), "--top-k", "3",
                         "--batch-size", "2"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    blocks = [block.splitlines() for block in captured.out.strip().split("\n\n")]
    expected_order = [[574, 701, 0], [491, 497, 217], [566, 569, 571]]
    names = imagenet.class_names()
    for block, path, order, logits in zip(blocks, paths, expected_order, fake["logits"]):
        assert block[0] == path
        assert len(block) == 4
        for line, index in zip(block[1:], order):
            assert line == f"  {_expected_percent(logits, index):>7}  {names[index]} ({index})"
    assert "golf ball (574)" in blocks[0][1] and "chain saw (491)" in blocks[1][1]


def test_the_model_is_built_evaluated_and_run_without_gradients(fake, tmp_path, capsys):
    fake["logits"] = np.zeros((3, 1000))
    paths = _images(tmp_path, 3)
    checkpoint = _checkpoint(tmp_path)
    assert predict.main([*paths, "--model", "iformer_base", "--checkpoint", checkpoint,
                         "--batch-size", "2"]) == 0
    model = fake["model"]
    assert fake["calls"] == [("iformer_base", 1000, checkpoint)]
    assert model.evaluated and model.grad_enabled_in_call == [False, False]
    assert [batch.shape for batch in model.inputs] == [(2, 3, 224, 224), (1, 3, 224, 224)]
    assert all(batch.dtype == np.float32 for batch in model.inputs)
    np.testing.assert_array_equal(np.concatenate(model.inputs), imagenet.load_images(paths))
    assert mi.is_grad_enabled()
    assert len(capsys.readouterr().out.strip().split("\n\n")) == 3


def test_the_image_size_follows_the_model_unless_given(fake, tmp_path, capsys):
    fake["logits"] = np.zeros((2, 1000))
    fake["img_size"] = 64
    path, checkpoint = _images(tmp_path, 1)[0], _checkpoint(tmp_path)
    assert predict.main([path, "--checkpoint", checkpoint]) == 0
    assert fake["model"].inputs[0].shape == (1, 3, 64, 64)
    assert predict.main([path, "--checkpoint", checkpoint, "--img-size", "48"]) == 0
    assert fake["model"].inputs[0].shape == (1, 3, 48, 48)
    capsys.readouterr()


def test_without_a_checkpoint_it_warns_that_the_weights_are_random(fake, tmp_path, capsys):
    fake["logits"] = np.zeros((1, 1000))
    assert predict.main(_images(tmp_path, 1)) == 0
    assert fake["calls"] == [("iformer_small", 1000, None)]
    err = capsys.readouterr().err
    assert err.startswith("warning:") and "random" in err


class _FakeCheckpointError(ValueError):
    """Like mini_iformer.checkpoint.CheckpointError: a ValueError subclass."""


@pytest.mark.parametrize("case", [
    "missing image", "text file", "truncated image", "directory", "unknown model",
    "top-k zero", "top-k negative", "top-k word", "batch-size zero", "img-size zero",
    "missing checkpoint", "bad checkpoint", "wrong head", "no images", "unknown option",
])
def test_user_errors_exit_2_with_one_line(fake, tmp_path, capsys, case):
    bad = {key: str(path) for key, path in _write_bad_files(tmp_path).items()}
    good = _images(tmp_path, 1)[0]
    checkpoint = _checkpoint(tmp_path)
    fake["logits"] = np.zeros((2, 1000))
    argv, named = {
        "missing image": ([good, bad["missing"]], bad["missing"]),
        "text file": ([bad["text"]], bad["text"]),
        "truncated image": ([good, bad["truncated"]], bad["truncated"]),
        "directory": ([bad["directory"]], bad["directory"]),
        "unknown model": ([good, "--model", "resnet50"], "resnet50"),
        "top-k zero": ([good, "--top-k", "0"], "--top-k"),
        "top-k negative": ([good, "--top-k", "-2"], "--top-k"),
        "top-k word": ([good, "--top-k", "five"], "--top-k"),
        "batch-size zero": ([good, "--batch-size", "0"], "--batch-size"),
        "img-size zero": ([good, "--img-size", "0"], "--img-size"),
        "missing checkpoint": ([good, "--checkpoint", str(tmp_path / "no.pth")], "no.pth"),
        "bad checkpoint": ([good], "not a checkpoint: weights.npz"),
        "wrong head": ([good], "head has 10 classes"),
        "no images": ([], "IMAGE"),
        "unknown option": ([good, "--colour"], "--colour"),
    }[case]
    if case == "bad checkpoint":
        fake["error"] = _FakeCheckpointError("not a checkpoint: weights.npz")
    if case == "wrong head":
        fake["error"] = ValueError("checkpoint head has 10 classes, model has 1000")
    if "--checkpoint" not in argv:
        argv = [*argv, "--checkpoint", checkpoint]
    assert predict.main(argv) == 2
    captured = capsys.readouterr()
    assert len(captured.err.splitlines()) == 1, captured.err
    assert captured.err.startswith("error: ") and named in captured.err
    assert "Traceback" not in captured.err
    if case in ("missing image", "text file", "directory"):
        assert fake["calls"] == [] and captured.out == ""   # refused before the model is built


def test_an_unavailable_backend_is_a_one_line_error(fake, tmp_path, capsys):
    try:
        mi.set_backend("cupy")
    except mi.BackendUnavailableError:
        pass
    else:
        pytest.skip("CuPy is usable here")
    finally:
        mi.set_backend("numpy")
    assert predict.main([_images(tmp_path, 1)[0], "--backend", "cupy"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "cupy" in err.lower()
    assert mi.get_backend() == "numpy"


def test_help_works_as_a_module():
    result = subprocess.run([sys.executable, "-m", "mini_iformer.predict", "--help"],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    for option in ("--model", "--checkpoint", "--top-k", "--batch-size", "--backend",
                   "--img-size"):
        assert option in result.stdout


def test_a_missing_image_exits_2_from_the_command_line(tmp_path):
    missing = str(tmp_path / "nowhere.jpg")
    result = subprocess.run([sys.executable, "-m", "mini_iformer.predict", missing],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: no such image file: {missing!r}"]
