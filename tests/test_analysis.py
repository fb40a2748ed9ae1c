"""The Fourier analysis (mini_iformer.analysis): the measurement on maps with known spectra,
against a DFT written out as a sum, on models (every block, any batching), the two ablation
configurations routing channels as named, and the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import mini_iformer as mi
from mini_iformer import analysis, checkpoint
from mini_iformer.data.testing import write_cifar_batches
from mini_iformer.models import InceptionMixer, create_model, model_config

FLOOR_LOG = np.log(analysis.FLOOR)


def _channel_last(plane: np.ndarray, images: int = 2, channels: int = 3) -> np.ndarray:
    return np.broadcast_to(plane[None, :, :, None], (images,) + plane.shape + (channels,))


# -- maps with known spectra -------------------------------------------------------------------
def test_a_constant_map_has_only_the_zero_frequency():
    freqs, delta = analysis.relative_log_amplitude(_channel_last(np.full((8, 8), 3.0)))
    np.testing.assert_allclose(freqs, np.pi * np.arange(5) / 4)
    assert delta[0] == 0.0
    np.testing.assert_allclose(delta[1:], FLOOR_LOG)  # nothing but the floor elsewhere


def test_a_checkerboard_peaks_at_pi():
    i, j = np.indices((8, 8))
    board = 1.0 + (-1.0) ** (i + j)  # mean 1 plus the (pi, pi) wave of the same amplitude
    freqs, delta = analysis.relative_log_amplitude(_channel_last(board))
    assert freqs[-1] == pytest.approx(np.pi)
    assert delta[-1] == pytest.approx(0.0, abs=1e-12)  # as strong as the zero frequency
    np.testing.assert_allclose(delta[1:-1], FLOOR_LOG)  # and nothing in between
    assert np.argmax(delta[1:]) == len(delta) - 2


def test_a_smooth_blob_decays_with_frequency():
    i, j = np.indices((16, 16))
    blob = np.exp(-((i - 8) ** 2 + (j - 8) ** 2) / 2)  # a Gaussian of width 1
    _, delta = analysis.relative_log_amplitude(_channel_last(blob))
    assert np.all(np.diff(delta) < 0) and delta[-1] > FLOOR_LOG
    # its spectrum is a Gaussian too: log amplitude falls as w^2 / 2 per axis, w^2 on the
    # diagonal (up to pi / 2; nearer pi the sampled blob's spectrum folds back on itself)
    omega = np.pi * np.arange(9) / 8
    np.testing.assert_allclose(delta[:5], -omega[:5] ** 2, rtol=0, atol=0.02)


def test_the_diagonal_equals_a_dft_written_as_a_sum():
    rng = np.random.default_rng(0)
    maps = rng.standard_normal((3, 6, 6, 4))
    freqs, delta = analysis.relative_log_amplitude(maps)
    n = np.arange(6)
    logs = []
    for k in range(4):
        phase = np.exp(-2j * np.pi * k * (n[:, None] + n[None, :]) / 6)  # (k, k) on both axes
        amp = np.abs(np.einsum("bhwc,hw->bc", maps, phase))
        logs.append(np.log(amp).mean())
    np.testing.assert_allclose(freqs, 2 * np.pi * np.arange(4) / 6)
    np.testing.assert_allclose(delta, np.array(logs) - logs[0], rtol=1e-10, atol=1e-10)


def test_odd_sizes_stop_below_pi_and_bad_maps_are_refused():
    freqs, _ = analysis.relative_log_amplitude(np.random.default_rng(1).random((1, 5, 5, 2)))
    assert freqs[-1] == pytest.approx(4 * np.pi / 5) and freqs[-1] < np.pi
    with pytest.raises(ValueError, match=r"square maps, got 4x6"):
        analysis.relative_log_amplitude(np.zeros((1, 4, 6, 2)))
    with pytest.raises(ValueError, match=r"\(B, H, W, C\), got shape \(4, 4\)"):
        analysis.relative_log_amplitude(np.zeros((4, 4)))


# -- on models --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(2).standard_normal((5, 3, 32, 32)).astype(np.float32)


def test_every_block_in_depth_order_and_batching_changes_nothing(images):
    mi.random.manual_seed(0)
    model = create_model("iformer_cifar_tiny")
    whole = analysis.spectrum(model, images, label="tiny")
    pieces = analysis.spectrum(model, images, label="tiny", batch_size=2)
    assert whole.names == ["blocks1.0", "blocks2.0", "blocks3.0", "blocks4.0"]
    assert [len(f) for f in whole.frequencies] == [9, 5, 3, 2]  # maps 16, 8, 4, 2
    for a, b in zip(whole.curves, pieces.curves):
        assert a[0] == 0.0
        # equal to float32 rounding: BLAS may sum a product over another batch in another order
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(whole.high, [c[-1] for c in whole.curves])
    assert whole.images == 5 and model.training  # the mode is restored


def test_the_spectrum_is_that_of_the_blocks_outputs(images):
    mi.random.manual_seed(0)
    model = create_model("iformer_cifar_tiny")
    maps = analysis.block_feature_maps(model, images)
    assert maps["blocks2.0"].shape == (5, 8, 8, 48)
    s = analysis.spectrum(model, images)
    np.testing.assert_allclose(s.curves[1], analysis.relative_log_amplitude(maps["blocks2.0"])[1])


def test_the_ablations_route_every_channel_as_named():
    def sides(name):
        model = create_model(name)
        return [(m.high_dim, m.low_dim, m.high_mixer is None, m.low_mixer is None)
                for _, m in model.named_modules() if isinstance(m, InceptionMixer)]

    dims = [48] * 2 + [96] * 2 + [160] * 4 + [192] * 2
    assert sides("iformer_cifar_all_attention") == [(0, c, True, False) for c in dims]
    assert sides("iformer_cifar_all_high") == [(c, 0, False, True) for c in dims]
    ramp = sides("iformer_cifar")
    assert all(h > 0 and lo > 0 for h, lo, _, _ in ramp)  # both sides, C_l/C growing
    fractions = [lo / (h + lo) for h, lo, _, _ in ramp]
    assert fractions == sorted(fractions) and fractions[0] < 0.5 < fractions[-1]
    base = {k: v for k, v in model_config("iformer_cifar").items() if k != "attention_heads"}
    for name in ("iformer_cifar_all_attention", "iformer_cifar_all_high"):
        assert {k: v for k, v in model_config(name).items() if k != "attention_heads"} == base


# -- the command line -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    rng = np.random.default_rng(3)
    write_cifar_batches(root, rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8),
                        rng.integers(0, 10, 40), test_size=20)
    return root


def test_the_command_line_compares_models_in_one_figure(cifar_dir, tmp_path, capsys):
    mi.random.manual_seed(5)
    weights = tmp_path / "tiny.npz"
    checkpoint.save(create_model("iformer_cifar_tiny").state_dict(), weights)
    out, numbers = tmp_path / "spectrum.png", tmp_path / "spectrum.json"
    code = analysis.main([
        "--data-dir", str(cifar_dir), "--no-verify", "--images", "8", "--batch-size", "4",
        "--run", f"trained=iformer_cifar_tiny:{weights}", "--run", "iformer_cifar_tiny",
        "--out", str(out), "--json", str(numbers)])
    assert code == 0, capsys.readouterr().err
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(numbers.read_text())
    assert [d["label"] for d in data] == ["trained", "iformer_cifar_tiny"]
    assert data[0]["checkpoint"] == str(weights) and data[1]["checkpoint"] is None
    assert data[0]["images"] == 8 and len(data[0]["blocks"]) == 4
    assert data[0]["blocks"][0]["delta_log_amplitude"][0] == 0.0
    assert data[0]["blocks"] != data[1]["blocks"]  # other weights, other spectra


@pytest.mark.parametrize("argv, message", [
    ([], "name at least one model"),
    (["--checkpoint", "x.npz"], "--checkpoint needs --model"),
    (["--model", "iformer_cifar_tiny", "--checkpoint", "missing.npz"], "missing.npz"),
    (["--model", "no_such_model"], "no_such_model"),
    (["--model", "iformer_cifar_tiny", "--images", "0"], "must be positive"),
])
def test_command_line_errors_exit_2_with_one_message(cifar_dir, tmp_path, capsys, argv, message):
    code = analysis.main(["--data-dir", str(cifar_dir), "--no-verify",
                          "--out", str(tmp_path / "s.png"), *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "s.png").exists()


def test_the_update_of_a_block_is_its_output_minus_its_input(images):
    mi.random.manual_seed(0)
    model = create_model("iformer_cifar_tiny")
    seen = {}
    block = dict(model.named_modules())["blocks2.0"]
    handle = block.register_forward_hook(
        lambda m, inputs, out: seen.update(x=inputs[0].numpy(), y=out.numpy()))
    updates = analysis.block_feature_maps(model, images, what="update")
    handle.remove()
    np.testing.assert_allclose(updates["blocks2.0"], seen["y"] - seen["x"])
    s = analysis.spectrum(model, images, what="update")
    np.testing.assert_allclose(
        s.curves[1], analysis.relative_log_amplitude(seen["y"] - seen["x"])[1], rtol=1e-9)
    assert s.extra["what"] == "update"
    with pytest.raises(ValueError, match="what must be one of"):
        analysis.spectrum(model, images, what="input")
