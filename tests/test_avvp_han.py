"""HAN (MMIL_Net): shapes, forward against a from-the-spec reference, training, checkpoints."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from models.han import HAN, smoothed_targets
from models.registry import build
from models.training.avvp_task import avvp_loss
from models.weights.han_checkpoint import load_han_checkpoint


def inputs(b: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, 10, 128, generator=g), torch.randn(b, 80, 2048, generator=g),
            torch.randn(b, 10, 512, generator=g))


def test_forward_returns_the_original_tuple_shapes_and_ranges():
    torch.manual_seed(0)
    model = build("han").eval()
    global_prob, a_prob, v_prob, frame_prob = model(*inputs(3))
    assert global_prob.shape == a_prob.shape == v_prob.shape == (3, 25)
    assert frame_prob.shape == (3, 10, 2, 25)
    for p in (global_prob, a_prob, v_prob, frame_prob):
        assert torch.all((p >= 0) & (p <= 1))


def _attention(q, k, v, prefix, sd):
    """Single-head scaled dot-product attention from raw in/out projection weights."""
    w, b = sd[prefix + "in_proj_weight"], sd[prefix + "in_proj_bias"]
    d = q.shape[-1]
    qq = q @ w[:d].T + b[:d]
    kk = k @ w[d:2 * d].T + b[d:2 * d]
    vv = v @ w[2 * d:].T + b[2 * d:]
    att = torch.softmax(qq @ kk.transpose(-1, -2) / math.sqrt(d), dim=-1)
    return (att @ vv) @ sd[prefix + "out_proj.weight"].T + sd[prefix + "out_proj.bias"]


def _layer_norm(x, prefix, sd):
    return F.layer_norm(x, (x.shape[-1],), sd[prefix + "weight"], sd[prefix + "bias"])


def _linear(x, name, sd):
    return x @ sd[name + ".weight"].T + sd[name + ".bias"]


def _reference(sd, audio, visual_2d, visual_3d):
    """HAN written from the spec (avvp.md §3), batch-first, no dropout."""
    a = _linear(audio, "fc_a", sd)
    v2d = _linear(visual_2d, "fc_v", sd)                                # project, then ...
    v2d = torch.stack([v2d[:, 8 * s:8 * s + 8].mean(1) for s in range(10)], dim=1)  # ... average 8
    v = _linear(torch.cat([v2d, _linear(visual_3d, "fc_st", sd)], -1), "fc_fusion", sd)
    p = "hat_encoder.layers.0."

    def han_layer(q, other):  # the same weights for both directions
        x = q + _attention(q, other, other, p + "cm_attn.", sd) + _attention(q, q, q, p + "self_attn.", sd)
        x = _layer_norm(x, p + "norm1.", sd)
        ff = _linear(torch.relu(_linear(x, p + "linear1", sd)), p + "linear2", sd)
        return _layer_norm(x + ff, p + "norm2.", sd)

    a_out, v_out = han_layer(a, v), han_layer(v, a)                     # both from the inputs
    x = torch.stack([a_out, v_out], dim=2)
    frame_prob = torch.sigmoid(_linear(x, "fc_prob", sd))
    frame_att = torch.softmax(_linear(x, "fc_frame_att", sd), dim=1)
    av_att = torch.softmax(_linear(x, "fc_av_att", sd), dim=2)
    temporal = frame_att * frame_prob
    return ((temporal * av_att).sum((1, 2)), temporal[:, :, 0].sum(1), temporal[:, :, 1].sum(1),
            frame_prob)


def test_forward_matches_a_reference_written_from_the_spec():
    torch.manual_seed(1)
    model = HAN().eval()
    x = inputs(2, seed=3)
    with torch.no_grad():
        ours = model(*x)
        ref = _reference(model.state_dict(), *x)
    for got, want in zip(ours, ref):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_unused_modules_do_not_change_the_output():
    torch.manual_seed(2)
    model = HAN().eval()
    x = inputs(1)
    with torch.no_grad():
        before = model(*x)[0].clone()
        for name in ("audio_encoder", "visual_encoder", "cmt_encoder"):
            for param in getattr(model, name).parameters():
                param.add_(1.0)
        model.hat_encoder.norm1.weight.mul_(5)  # the wrapper norms are never applied either
        after = model(*x)[0]
    torch.testing.assert_close(before, after)


def test_official_state_dict_names_and_shapes():
    sd = HAN().state_dict()
    # Names of MMIL_Net in nets/net_audiovisual.py (torch 1.2 naming of MultiheadAttention).
    assert sd["fc_v.weight"].shape == (512, 2048)
    assert sd["fc_fusion.weight"].shape == (512, 1024)
    assert sd["fc_prob.weight"].shape == (25, 512)
    assert sd["hat_encoder.layers.0.cm_attn.in_proj_weight"].shape == (1536, 512)
    assert sd["audio_encoder.layers.0.self_attn.out_proj.weight"].shape == (512, 512)
    assert "cmt_encoder.layers.0.linear2.bias" in sd and "hat_encoder.norm2.weight" in sd
    # 14 fc_* + 12 per nn.TransformerEncoder (x2) + cmt 12 + its 4 norm + hat 16 + its 4 norm.
    assert len(sd) == 14 + 2 * 12 + 16 + 20


HAN_LOSS = {"loss": "han"}


def test_smoothed_targets_follow_the_original_formula():
    y = torch.tensor([[1.0, 0.0]])
    pa, pv = smoothed_targets(y)
    torch.testing.assert_close(pa, y)
    torch.testing.assert_close(pv, torch.tensor([[0.95, 0.05]]))


def test_loss_is_three_bce_terms_with_clamping():
    g = torch.tensor([[0.8, 0.0]])            # 0.0 is clamped to 1e-7
    a = torch.tensor([[0.6, 0.3]])
    v = torch.tensor([[0.9, 0.2]])
    y = torch.tensor([[1.0, 0.0]])
    loss, _ = avvp_loss((g, a, v, None), y, HAN_LOSS)  # the loss `avel train --task avvp` runs

    def bce(p, t):
        return -sum(ti * math.log(pi) + (1 - ti) * math.log(1 - pi) for pi, ti in zip(p, t)) / len(p)

    expected = bce([0.6, 0.3], [1, 0]) + bce([0.9, 0.2], [0.95, 0.05]) + bce([0.8, 1e-7], [1, 0])
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def separable_set(n: int = 32, seed: int = 0):
    """Class c present ⇔ a fixed random direction is added to every input of the clip."""
    g = torch.Generator().manual_seed(seed)
    target = (torch.rand(n, 25, generator=g) < 0.12).float()
    target[torch.arange(n), torch.randint(0, 25, (n,), generator=g)] = 1
    dirs = [torch.randn(25, d, generator=g) for d in (128, 2048, 512)]
    audio = 0.5 * torch.randn(n, 10, 128, generator=g) + (target @ dirs[0])[:, None]
    v2d = 0.5 * torch.randn(n, 80, 2048, generator=g) + (target @ dirs[1])[:, None]
    v3d = 0.5 * torch.randn(n, 10, 512, generator=g) + (target @ dirs[2])[:, None]
    return audio, v2d, v3d, target


@pytest.mark.slow
def test_loss_decreases_on_a_separable_set():
    torch.manual_seed(1)
    audio, v2d, v3d, target = separable_set(8)
    model = HAN(with_unused=False)
    opt = torch.optim.Adam(model.parameters(), lr=3e-4)
    model.eval()
    with torch.no_grad():
        start = avvp_loss(model(audio, v2d, v3d), target, HAN_LOSS)[0].item()
    model.train()
    for _ in range(5):
        opt.zero_grad()
        avvp_loss(model(audio, v2d, v3d), target, HAN_LOSS)[0].backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        global_prob = model(audio, v2d, v3d)[0]
        end = avvp_loss(model(audio, v2d, v3d), target, HAN_LOSS)[0].item()
    assert end < 0.5 * start
    assert ((global_prob >= 0.5).float() == target).float().mean() > 0.95


@pytest.mark.parametrize("legacy, prefix", [(True, "module."), (False, "")])
def test_checkpoint_round_trip(tmp_path, legacy, prefix):
    torch.manual_seed(5)
    trained = HAN().eval()
    path = tmp_path / "MMIL_Net.pt"
    state = {prefix + k: v for k, v in trained.state_dict().items()}
    # The official file comes from torch 1.2: the legacy (non-zip) format.
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    loaded = load_han_checkpoint(path)
    assert not loaded.training
    x = inputs(2)
    with torch.no_grad():
        for a, b in zip(trained(*x), loaded(*x)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_checkpoint_without_unused_modules_loads_into_a_lean_model(tmp_path):
    torch.manual_seed(6)
    full = HAN().eval()
    path = tmp_path / "han.pt"
    torch.save(full.state_dict(), path)
    lean = load_han_checkpoint(path, model=HAN(with_unused=False))
    x = inputs(1)
    with torch.no_grad():
        torch.testing.assert_close(full(*x)[3], lean(*x)[3])


def test_checkpoint_of_another_model_is_refused_with_the_keys(tmp_path):
    sd = HAN().state_dict()
    sd["fc_prob.weight"] = torch.zeros(28, 512)
    del sd["fc_a.bias"]
    path = tmp_path / "bad.pt"
    torch.save(sd, path)
    with pytest.raises(ValueError, match=r"bad.pt.*missing \['fc_a.bias'\].*fc_prob.weight \(28, 512\)"):
        load_han_checkpoint(path)


def test_model_runs_in_float64_and_follows_its_parameters_device():
    model = HAN().double().eval()
    out = model(*(t.double() for t in inputs(1)))
    assert all(o.dtype == torch.float64 for o in out)
    assert torch.device(out[0].device) == next(model.parameters()).device


def test_linear_layers_are_built_in_the_original_order():
    # Seeded builds match the original only if modules are created in its order:
    # fc_prob, fc_frame_att, fc_av_att, fc_a, fc_v, fc_st, fc_fusion (then the encoders).
    torch.manual_seed(1)
    expected = [torch.nn.Linear(i, o) for i, o in
                ((512, 25), (512, 25), (512, 25), (128, 512), (2048, 512), (512, 512), (1024, 512))]
    torch.manual_seed(1)
    model = HAN()
    names = ("fc_prob", "fc_frame_att", "fc_av_att", "fc_a", "fc_v", "fc_st", "fc_fusion")
    for name, ref in zip(names, expected):
        torch.testing.assert_close(getattr(model, name).weight, ref.weight, rtol=0, atol=0)
        torch.testing.assert_close(getattr(model, name).bias, ref.bias, rtol=0, atol=0)
