"""The iFormer model (mini_iformer.models) as specified by the authors' material.

* The test vectors in shared/reference, made with the authors' model: logits (eval at 64x64
  and 96x96, train), the label-smoothed loss, every gradient and the BatchNorm statistics,
  with every operation in its fast form and again in its reference form.
* The state-dict listing: keys, shapes, parameter/buffer kinds and parameter counts of every
  released configuration.
* Agreement with the PyTorch reference (tests/iformer_reference.py, itself checked against
  the vectors) on hypothesis-drawn small configurations and input sizes, forward and
  backward, in float64.
* Clear errors for inputs the network cannot take.
"""

from __future__ import annotations

import iformer_reference as ref
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import mini_iformer as mi
import mini_iformer.functional as F
from mini_iformer.models import InceptionTransformer, create_model, list_models, model_config
from mini_iformer.ops import use

MINI = dict(img_size=64, num_classes=10, depths=(1, 1, 2, 1), embed_dims=(48, 96, 160, 192),
            num_heads=(3, 6, 10, 12), attention_heads=(1, 3, 7, 9, 11))
LOGIT_ATOL = 1e-4  # float32 agreement stated with the vectors
GRAD_RTOL = 1e-4  # relative to each gradient's largest magnitude
# Conv biases feeding a BatchNorm in train mode have an exact gradient of 0 (the batch mean
# removes them); the vectors hold float32 noise there, so they are bounded against the
# network's largest gradient instead of their own magnitude.
BIAS_BEFORE_BATCHNORM = {"patch_embed.proj1.bias", "patch_embed.proj2.bias",
                         "patch_embed2.proj.bias", "patch_embed3.proj.bias",
                         "patch_embed4.proj.bias"}


@pytest.fixture(scope="module")
def vectors() -> dict[str, np.ndarray]:
    return ref.load_vectors()  # fails, naming the expected path, if the file is missing


@pytest.fixture()
def mini(vectors, backend_name) -> InceptionTransformer:
    """The authors' mini model with their weights, built on each backend in turn."""
    model = InceptionTransformer(**MINI)
    model.load_state_dict({k[len("param/"):]: v for k, v in vectors.items()
                           if k.startswith("param/")})
    return model


# ---------------------------------------------------------------------------------------------
# The authors' test vectors
# ---------------------------------------------------------------------------------------------
@pytest.fixture(params=["fast", "reference"])
def impl_mode(request):
    """Every operation in its automatic (fast) form, then in its reference form."""
    with use(request.param):
        yield request.param


def test_eval_logits_match_the_authors_model_at_the_trained_size_and_at_96(mini, vectors,
                                                                          impl_mode):
    mini.eval()
    with mi.no_grad():
        for image, logits in (("input", "logits_eval"), ("input_96", "logits_eval_96")):
            np.testing.assert_allclose(mini(vectors[image]).numpy(), vectors[logits],
                                       rtol=0, atol=LOGIT_ATOL, err_msg=logits)


def test_train_step_matches_logits_loss_every_gradient_and_batchnorm_statistics(mini, vectors,
                                                                                impl_mode):
    mini.train()
    x = mi.tensor(vectors["input"], requires_grad=True)
    logits = mini(x)
    np.testing.assert_allclose(logits.numpy(), vectors["logits_train"], rtol=0, atol=LOGIT_ATOL)
    loss = F.cross_entropy(logits, mi.tensor(vectors["target"]), label_smoothing=0.1)
    np.testing.assert_allclose(loss.item(), vectors["loss_train_label_smoothing_0.1"],
                               rtol=0, atol=LOGIT_ATOL)
    loss.backward()

    grads = {k[len("grad/"):]: v for k, v in vectors.items() if k.startswith("grad/")}
    params = dict(mini.named_parameters())
    assert set(grads) == set(params)
    largest = max(np.abs(g).max() for g in grads.values())
    for key, expected in grads.items():
        got = params[key].grad.numpy()
        if key in BIAS_BEFORE_BATCHNORM:
            assert np.abs(got).max() < 1e-5 * largest and np.abs(expected).max() < 1e-5 * largest
        else:
            np.testing.assert_allclose(got, expected, rtol=0,
                                       atol=GRAD_RTOL * np.abs(expected).max(), err_msg=key)
    expected = vectors["grad_input"]
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=0,
                               atol=GRAD_RTOL * np.abs(expected).max())

    state = mini.state_dict()
    stats = {k[len("after_train_step/"):]: v for k, v in vectors.items()
             if k.startswith("after_train_step/")}
    assert len(stats) == 2 * 5  # running mean and variance of the five BatchNorms
    for key, expected in stats.items():
        np.testing.assert_allclose(state[key].numpy(), expected, rtol=1e-5, atol=1e-6,
                                   err_msg=key)
    before = vectors["param/patch_embed.norm1.num_batches_tracked"]
    assert state["patch_embed.norm1.num_batches_tracked"].item() == before + 1


# ---------------------------------------------------------------------------------------------
# Configurations and state dicts
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def table():
    return ref.load_state_dict_table()


@pytest.mark.parametrize("name", ["iformer_small", "iformer_base", "iformer_large",
                                  "iformer_small_384"])
def test_state_dict_keys_shapes_kinds_and_parameter_count_equal_the_released_model(name, table):
    rows, totals = table
    model = create_model(name)
    params = dict(model.named_parameters())
    ours = [(k, t.shape, "param" if k in params else "buffer")
            for k, t in model.state_dict().items()]
    assert ours == rows[name]
    assert model.num_parameters() == totals[name]


@pytest.mark.parametrize("size", ["base", "large"])
def test_384_variants_differ_from_224_only_in_position_embedding_size(size):
    a = create_model(f"iformer_{size}").state_dict()
    b = create_model(f"iformer_{size}_384").state_dict()
    assert list(a) == list(b)
    for key in a:
        if key.startswith("pos_embed"):
            assert b[key].shape[1:3] == tuple(n * 384 // 224 for n in a[key].shape[1:3])
        else:
            assert a[key].shape == b[key].shape, key


def test_the_frequency_ramp_is_data_and_matches_the_paper_for_small():
    model = create_model("iformer_small")
    share = [low / dim for _, dim, _, low in model.block_splits()]
    expected = [1 / 3] * 3 + [1 / 2] * 3 + [7 / 10] * 4 + [9 / 10] * 5 + [11 / 12] * 3
    np.testing.assert_allclose(share, expected)
    assert model.attention_heads == model_config("iformer_small")["attention_heads"]


def test_cifar_configuration_keeps_every_block_type_and_the_ramp():
    model = create_model("iformer_cifar")
    assert model.num_classes == 10 and model.default_img_size == 32
    assert model.stage_sizes(32, 32) == [(16, 16), (8, 8), (4, 4), (2, 2)]
    splits = model.block_splits()
    assert all(high > 0 and low > 0 for _, _, high, low in splits)  # both mixers in every block
    share = [low / dim for _, dim, _, low in splits]
    assert share == sorted(share)  # more attention with depth
    with mi.no_grad():
        assert model(mi.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_list_and_create_models_with_overrides_and_clear_errors():
    names = list_models()
    for name in ["iformer_small", "iformer_base", "iformer_large", "iformer_small_384",
                 "iformer_base_384", "iformer_large_384", "iformer_cifar"]:
        assert name in names
    model = create_model("iformer_cifar", num_classes=100, drop_path_rate=0.1)
    assert model.head.weight.shape == (100, 192)
    rates = [b.drop_path.p for i in range(1, 5) for b in getattr(model, f"blocks{i}")
             if hasattr(b.drop_path, "p")]
    np.testing.assert_allclose(rates, np.linspace(0, 0.1, 10)[1:])
    with pytest.raises(ValueError, match="unknown model 'iformer_tiny'.*iformer_small"):
        create_model("iformer_tiny")
    with pytest.raises(TypeError, match="unknown arguments.*depth"):
        create_model("iformer_cifar", depth=3)


# ---------------------------------------------------------------------------------------------
# Agreement with the PyTorch reference on drawn configurations
# ---------------------------------------------------------------------------------------------
@st.composite
def configurations(draw):
    head_dim = draw(st.sampled_from([2, 4]))
    num_heads = tuple(draw(st.integers(2, 4)) for _ in range(4))
    depths = tuple(draw(st.integers(1, 2)) for _ in range(4))
    attention_heads = tuple(draw(st.integers(1, num_heads[i] - 1))
                            for i in range(4) for _ in range(depths[i]))
    pool_sizes = (draw(st.sampled_from([1, 2])), draw(st.sampled_from([1, 2])), 1, 1)
    img = draw(st.sampled_from([32, 64]))  # position embeddings made for this size
    step = 16 * max(pool_sizes)  # stages 1-2 see H/4 and H/8, which their pooling must divide
    height = draw(st.sampled_from([step, 2 * step]))
    width = draw(st.sampled_from([step, 2 * step, 3 * step]))
    config = dict(img_size=img, num_classes=draw(st.integers(2, 5)),
                  embed_dims=tuple(h * head_dim for h in num_heads), depths=depths,
                  num_heads=num_heads, attention_heads=attention_heads,
                  mlp_ratio=draw(st.sampled_from([1.0, 2.0])),
                  qkv_bias=draw(st.booleans()), pool_sizes=pool_sizes,
                  use_layer_scale=draw(st.booleans()))
    return config, (height, width), draw(st.integers(0, 2**32 - 1))


def _random_state(model: torch.nn.Module, seed: int) -> dict[str, np.ndarray]:
    """Every entry random (norm weights and layer scales near 1, variances positive), so no
    parameter can be ignored unnoticed."""
    rng = np.random.default_rng(seed)
    state = {}
    for key, t in model.state_dict().items():
        shape = tuple(t.shape)
        if key.endswith("num_batches_tracked"):
            state[key] = np.array(3, dtype=np.int64)
        elif key.endswith("running_var") or "layer_scale" in key or (
                key.endswith(".weight") and len(shape) == 1):
            state[key] = rng.uniform(0.5, 1.25, shape)
        else:
            state[key] = rng.normal(0.0, 0.2, shape)
    return state


@settings(max_examples=max(10, settings().max_examples // 4))
@given(configurations())
def test_model_agrees_with_the_pytorch_reference_forward_and_backward(drawn):
    config, (height, width), seed = drawn
    theirs = ref.build(config).double()
    state = _random_state(theirs, seed)
    ref.load_numpy_state_dict(theirs, state)
    ours = InceptionTransformer(**config).astype(np.float64)
    ours.load_state_dict(state)
    rng = np.random.default_rng(seed + 1)
    image = rng.normal(size=(2, 3, height, width))
    upstream = rng.normal(size=(2, config["num_classes"]))

    for train in (False, True):
        ours.train(train)
        theirs.train(train)
        x = mi.tensor(image, requires_grad=True)
        tx = torch.tensor(image, requires_grad=True)
        y, ty = ours(x), theirs(tx)
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-7, atol=1e-9)
        ours.zero_grad()
        theirs.zero_grad()
        y.backward(upstream)
        ty.backward(torch.tensor(upstream))
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-6, atol=1e-9)
        their_params = dict(theirs.named_parameters())
        for key, p in ours.named_parameters():
            np.testing.assert_allclose(p.grad.numpy(), their_params[key].grad.numpy(),
                                       rtol=1e-6, atol=1e-9, err_msg=key)
    their_state = theirs.state_dict()
    for key, t in ours.state_dict().items():  # running statistics after one train forward
        np.testing.assert_allclose(t.numpy(), their_state[key].numpy(), rtol=1e-9, err_msg=key)


def test_ablations_with_all_channels_on_one_side_run_forward_and_backward():
    for heads in ((0,) * 4, (2,) * 4):  # all to the high-frequency mixer, all to attention
        model = InceptionTransformer(img_size=32, num_classes=3, embed_dims=(8, 8, 8, 8),
                                     depths=(1, 1, 1, 1), num_heads=(2, 2, 2, 2),
                                     attention_heads=heads)
        x = mi.tensor(np.random.default_rng(0).normal(size=(2, 3, 32, 32)), requires_grad=True)
        model(x).sum().backward()
        assert np.isfinite(x.grad.numpy()).all() and np.abs(x.grad.numpy()).max() > 0


# ---------------------------------------------------------------------------------------------
# Inputs the network cannot take
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape, dtype, message", [
    ((3, 32, 32), np.float32, r"expected images of shape \(B, 3, H, W\), got shape \(3, 32, 32\)"),
    ((2, 1, 32, 32), np.float32, r"expected images of shape \(B, 3, H, W\), got shape \(2, 1, 32"),
    ((2, 3, 36, 32), np.float32, r"36x32 gives stage 2 a 9x8 token map.*multiples of 8"),
    ((2, 3, 32, 32), np.int64, r"floating-point images, got dtype int64"),
])
def test_a_bad_input_gets_an_error_naming_the_expected_shape(shape, dtype, message):
    model = create_model("iformer_cifar")
    with pytest.raises((ValueError, TypeError), match=message):
        model(mi.tensor(np.zeros(shape, dtype=dtype)))


def test_a_checkpoint_for_another_head_is_refused_by_name_and_changes_nothing(tmp_path):
    from mini_iformer import checkpoint

    model = create_model("iformer_cifar")
    path = tmp_path / "cifar100.npz"
    checkpoint.save(create_model("iformer_cifar", num_classes=100).state_dict(), path)
    with pytest.raises(ValueError, match=r"(?s)cifar100.npz does not fit iformer_cifar.*head.weight: "
                                         r"shape \(100, 192\)"):
        create_model("iformer_cifar", checkpoint=path)
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    state = dict(checkpoint.load(path))
    with pytest.raises(ValueError, match="nothing was changed"):
        model.load_state_dict(state)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), before[key])


# ---------------------------------------------------------------------------------------------
# summary
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, params, gmacs", [
    ("iformer_small", 19_866_344, 4.8), ("iformer_base", 47_866_216, 9.4),
    ("iformer_large", 86_637_096, 14.0),
])
def test_summary_gives_the_papers_parameters_and_multiply_adds(name, params, gmacs):
    table = mi.summary(create_model(name), (3, 224, 224))
    assert table.total_params == params
    assert abs(table.total_macs / 1e9 - gmacs) < 0.06  # the paper quotes one decimal
    assert [s.blocks for s in table.stages[:4]] == list(model_config(name)["depths"])


def test_summary_table_shows_the_ramp_per_stage():
    text = str(mi.summary(create_model("iformer_small")))
    lines = text.splitlines()
    assert lines[0] == "iformer_small, input 3x224x224"
    stage3 = next(line for line in lines if line.startswith("3 "))
    assert "14x14" in stage3 and "96/224 x4 (70%), 32/288 x5 (90%)" in stage3
    assert "19,866,344" in lines[-1]
    with pytest.raises(ValueError, match="input_size"):
        mi.summary(create_model("iformer_cifar"), (1, 2, 3, 4, 5))


# ---------------------------------------------------------------------------------------------
# The authors' file format end to end
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("wrapper", [None, "model", "state_dict"])
def test_a_torch_saved_reference_checkpoint_gives_the_same_logits(tmp_path, wrapper):
    theirs = ref.build(dict(MINI, num_classes=7)).eval()
    ref.load_numpy_state_dict(theirs, _random_state(theirs, 3))
    path = tmp_path / "mini.pth"
    state = theirs.state_dict()
    torch.save(state if wrapper is None else {wrapper: state, "epoch": 300}, path)

    ours = InceptionTransformer(**dict(MINI, num_classes=7))
    ours.load_state_dict(mi.checkpoint.load(path))  # the reader never imports torch
    ours.eval()
    image = np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype(np.float32)
    with mi.no_grad(), torch.no_grad():
        np.testing.assert_allclose(ours(image).numpy(), theirs(torch.tensor(image)).numpy(),
                                   rtol=0, atol=1e-4)


def test_create_model_loads_our_npz_and_a_pth(tmp_path):
    source = create_model("iformer_cifar")
    npz = tmp_path / "cifar.npz"
    mi.checkpoint.save(source.state_dict(), npz)
    pth = tmp_path / "cifar.pth"
    torch.save({k: torch.tensor(v.numpy()) for k, v in source.state_dict().items()}, pth)
    image = mi.randn(1, 3, 32, 32, generator=np.random.default_rng(1))
    source.eval()
    with mi.no_grad():
        expected = source(image).numpy()
        for path in (npz, pth):
            model = create_model("iformer_cifar", checkpoint=path).eval()
            np.testing.assert_array_equal(model(image).numpy(), expected)


def test_float32_stays_float32_through_a_whole_training_step(monkeypatch):
    """No silent float64: every array an operation produces in a float32 forward and backward
    of the model (activations, gradients, optimiser state) is float32 (or an integer index)."""
    from mini_iformer import autograd
    from mini_iformer.optim import AdamW

    made = []
    original = autograd.Tensor._make.__func__

    def spy(cls, data, requires_grad=False):
        t = original(cls, data, requires_grad)
        made.append(t.data.dtype)
        return t

    mi.random.manual_seed(0)
    model = create_model("iformer_cifar_tiny", drop_path_rate=0.1)
    optimizer = AdamW(model.parameters(), lr=1e-3)
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    monkeypatch.setattr(autograd.Tensor, "_make", classmethod(spy))
    loss = F.cross_entropy(model(mi.tensor(x)), mi.tensor(np.array([0, 1, 2, 3])),
                           label_smoothing=0.1)
    loss.backward()
    optimizer.step()
    monkeypatch.undo()
    floats = {np.dtype(d) for d in made if np.dtype(d).kind == "f"}
    assert len(made) > 100 and floats == {np.dtype(np.float32)}, floats
    assert loss.dtype == np.float32
    for name, p in model.named_parameters():
        assert p.dtype == np.float32 and p.grad.dtype == np.float32, name
        for key, value in optimizer.state[p].items():
            if hasattr(value, "dtype") and np.dtype(value.dtype).kind == "f":
                assert value.dtype == np.float32, (name, key)
