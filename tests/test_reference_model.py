"""Checks of the PyTorch reference iFormer (tests/iformer_reference.py) against the authors'
material in shared/reference: the state-dict listing (iformer_state_dicts.tsv) and the test
vectors made with the authors' model (iformer_mini_vectors.npz).

Only once these pass is the reference fit to serve as the oracle for the NumPy model.
"""

from __future__ import annotations

import iformer_reference as ref
import numpy as np
import pytest
import torch
import torch.nn.functional as F

# Parameter counts stated in ARCHITECTURE.md.
PARAM_COUNTS = {
    "iformer_small": 19_866_344,
    "iformer_base": 47_866_216,
    "iformer_large": 86_637_096,
    "iformer_small_384": 20_899_944,
}
MINI_PARAM_COUNT = 1_633_162

# Agreement to expect in float32 (ARCHITECTURE.md, "Test vectors").
LOGIT_ATOL = 1e-4
GRAD_RTOL = 1e-4  # relative to the largest magnitude of the gradient tensor

# Conv biases that feed straight into a BatchNorm: in train mode the batch mean removes them,
# so their true gradient is exactly zero and both the vectors and this model hold only
# float32 rounding noise there (~1e-7). Those are checked against a bound relative to the
# largest gradient of the whole network instead of their own (noise) magnitude.
BIAS_BEFORE_BATCHNORM = (
    "patch_embed.proj1.bias",
    "patch_embed.proj2.bias",
    "patch_embed2.proj.bias",
    "patch_embed3.proj.bias",
    "patch_embed4.proj.bias",
)
ZERO_GRAD_RTOL = 1e-5  # relative to the largest gradient entry of the network


def meta_model(name: str, **overrides) -> ref.InceptionTransformer:
    """The named model with shapes only (no storage, no initialisation cost)."""
    with torch.device("meta"):
        return ref.build(name, **overrides)


def state_dict_rows(model: torch.nn.Module) -> list[tuple[str, tuple[int, ...], str]]:
    params = {name for name, _ in model.named_parameters()}
    buffers = {name for name, _ in model.named_buffers()}
    rows = []
    for key, tensor in model.state_dict().items():
        assert (key in params) != (key in buffers), key
        rows.append((key, tuple(tensor.shape), "param" if key in params else "buffer"))
    return rows


# --------------------------------------------------------------------------------------------
# Structure: parameter counts and state-dict keys
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def table():
    return ref.load_state_dict_table()


@pytest.mark.parametrize("name", sorted(PARAM_COUNTS))
def test_parameter_count(name, table):
    _, totals = table
    model = meta_model(name)
    count = sum(p.numel() for p in model.parameters())
    assert count == PARAM_COUNTS[name] == totals[name]


@pytest.mark.parametrize("name", sorted(PARAM_COUNTS))
def test_state_dict_matches_authors(name, table):
    rows, _ = table
    ours = state_dict_rows(meta_model(name))
    theirs = rows[name]
    assert [r[0] for r in ours] == [r[0] for r in theirs]  # keys, in the authors' order
    assert ours == theirs  # shapes and param/buffer kinds
    # Buffers are exactly the BatchNorm running statistics and counters.
    for key, _, kind in ours:
        is_bn_stat = key.endswith((".running_mean", ".running_var", ".num_batches_tracked"))
        assert (kind == "buffer") == is_bn_stat, key


def test_mini_configuration_matches_vectors(vectors):
    model = meta_model("mini")
    assert sum(p.numel() for p in model.parameters()) == MINI_PARAM_COUNT
    keys = [k[len("param/"):] for k in vectors if k.startswith("param/")]
    assert sorted(keys) == sorted(model.state_dict())


def test_layer_scale_only_in_stages_3_and_4():
    model = meta_model("iformer_small")
    for stage in range(1, 5):
        for block in getattr(model, f"blocks{stage}"):
            has = block.layer_scale_1 is not None and block.layer_scale_2 is not None
            assert has == (stage >= 3)
    model = meta_model("iformer_small", use_layer_scale=False)
    assert not any("layer_scale" in key for key in model.state_dict())


def test_drop_path_rates_are_linear_over_all_blocks():
    model = meta_model("iformer_small", drop_path_rate=0.1)
    rates = [block.drop_path.rate for s in range(1, 5) for block in getattr(model, f"blocks{s}")]
    np.testing.assert_allclose(rates, np.linspace(0.0, 0.1, 18), rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------------
# The authors' test vectors
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vectors():
    return ref.load_vectors()


@pytest.fixture(scope="module")
def run(vectors):
    """Everything the vectors record, computed once with this model in float32."""
    torch.manual_seed(0)
    model = ref.load_numpy_state_dict(ref.build("mini"), vectors, prefix="param/")
    out = {}
    model.eval()
    with torch.no_grad():
        out["logits_eval"] = model(torch.tensor(vectors["input"])).numpy()
        out["logits_eval_96"] = model(torch.tensor(vectors["input_96"])).numpy()
    model.train()
    x = torch.tensor(vectors["input"], requires_grad=True)
    logits = model(x)
    loss = F.cross_entropy(logits, torch.tensor(vectors["target"]), label_smoothing=0.1)
    loss.backward()
    out["logits_train"] = logits.detach().numpy()
    out["loss_train_label_smoothing_0.1"] = loss.detach().numpy()
    out["grad_input"] = x.grad.numpy()
    out["grads"] = {name: p.grad.numpy() for name, p in model.named_parameters()
                    if p.grad is not None}
    out["params"] = [name for name, _ in model.named_parameters()]
    out["state"] = {k: v.numpy() for k, v in model.state_dict().items()}
    return out


@pytest.mark.parametrize("key", ["logits_eval", "logits_eval_96", "logits_train",
                                 "loss_train_label_smoothing_0.1"])
def test_forward_matches_vectors(key, run, vectors):
    assert run[key].shape == vectors[key].shape
    np.testing.assert_allclose(run[key], vectors[key], rtol=0, atol=LOGIT_ATOL)


def test_every_parameter_has_a_gradient_vector(run, vectors):
    grad_keys = {k[len("grad/"):] for k in vectors if k.startswith("grad/")}
    assert grad_keys == set(run["params"])
    assert set(run["grads"]) == set(run["params"])


def test_parameter_gradients_match_vectors(run, vectors):
    scale = max(float(np.abs(g).max()) for k, g in vectors.items() if k.startswith("grad/"))
    failures = []
    for name in run["params"]:
        theirs = vectors["grad/" + name]
        ours = run["grads"][name]
        assert ours.shape == theirs.shape, name
        err = float(np.abs(ours - theirs).max())
        if name in BIAS_BEFORE_BATCHNORM:
            limit = ZERO_GRAD_RTOL * scale
            if max(float(np.abs(ours).max()), float(np.abs(theirs).max())) > limit:
                failures.append(f"{name}: should be ~0, |ours|max={np.abs(ours).max():.3g} "
                                f"|theirs|max={np.abs(theirs).max():.3g}")
            continue
        limit = GRAD_RTOL * float(np.abs(theirs).max())
        if err > limit:
            failures.append(f"{name}: max abs error {err:.3g} > {limit:.3g}")
    assert not failures, "\n".join(failures)


def test_input_gradient_matches_vectors(run, vectors):
    theirs = vectors["grad_input"]
    err = float(np.abs(run["grad_input"] - theirs).max())
    assert err <= GRAD_RTOL * float(np.abs(theirs).max())


def test_batchnorm_running_stats_after_train_forward(run, vectors):
    keys = [k for k in vectors if k.startswith("after_train_step/")]
    assert len(keys) == 10  # running_mean and running_var of 5 BatchNorms
    for key in keys:
        name = key[len("after_train_step/"):]
        np.testing.assert_allclose(run["state"][name], vectors[key], rtol=1e-5, atol=1e-6,
                                   err_msg=name)
        counter = name.rsplit(".", 1)[0] + ".num_batches_tracked"
        assert run["state"][counter] == vectors["param/" + counter] + 1


# --------------------------------------------------------------------------------------------
# Behaviour beyond the vectors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("train", [False, True])
def test_non_square_input(train, vectors):
    model = ref.load_numpy_state_dict(ref.build("mini"), vectors, prefix="param/")
    model.train(train)
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 3, 64, 96)).astype(np.float32))
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (2, 10)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


def test_init_like_authors():
    torch.manual_seed(0)
    model = ref.build("mini")
    for name, p in model.named_parameters():
        p = p.detach()
        if "layer_scale" in name:
            assert torch.all(p == 1e-6), name
        elif name.startswith("pos_embed") or (name.endswith(".weight") and p.ndim >= 2):
            assert p.abs().max() <= 2.0, name
            if p.numel() >= 1000:
                assert 0.017 < p.std().item() < 0.023, name
        elif name.endswith(".bias"):
            assert torch.all(p == 0), name
        else:  # LayerNorm / BatchNorm weights
            assert torch.all(p == 1), name


def test_drop_path_is_per_sample():
    drop = ref.DropPath(0.5)
    x = torch.ones(64, 3, 2)
    torch.manual_seed(0)
    y = drop.train()(x)
    per_sample = y.reshape(64, -1)
    assert torch.all((per_sample == 0).all(1) | (per_sample == 2).all(1))
    assert 0 < (per_sample[:, 0] == 0).sum() < 64
    assert torch.equal(drop.eval()(x), x)


def test_missing_vectors_raise_with_path(monkeypatch, tmp_path):
    monkeypatch.setattr(ref, "REFERENCE_DIR", tmp_path)
    with pytest.raises(FileNotFoundError) as info:
        ref.load_vectors()
    message = str(info.value)
    assert str(tmp_path / ref.VECTORS_FILE) in message
    assert ref.REFERENCE_ENV_VAR in message
