"""State-dict parity with the official modules, forward signatures, dtype/device freedom,
and official checkpoint import."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from models.cpsp import CPSPFully
from models.psp import PSPFully
from models.registry import build
from models.weights.checkpoints import load_official

# Official parameter names and shapes, written out from the spec (psp_cpsp.md §1-3) for the
# CPSP-repo fully net on VGG maps with C = 28.
TRUNK = {
    "fa.0.weight": (256, 128), "fa.1.weight": (128, 256),
    "linear_v.weight": (128, 512), "linear_v.bias": (128,),
    "attention.affine_audio.weight": (512, 128), "attention.affine_audio.bias": (512,),
    "attention.affine_video.weight": (512, "Dv"), "attention.affine_video.bias": (512,),
    "attention.affine_v.weight": (49, 512), "attention.affine_g.weight": (49, 512),
    "attention.affine_h.weight": (1, 49),
    **{f"lstm_a_v.lstm_{m}.{w}{s}": shape
       for m in ("audio", "video")
       for s in ("_l0", "_l0_reverse")
       for w, shape in (("weight_ih", (512, 128)), ("weight_hh", (512, 128)),
                        ("bias_ih", (512,)), ("bias_hh", (512,)))},
    **{f"psp.{n}.weight": (256, 256) for n in ("v_L1", "v_L2", "a_L1", "a_L2")},
    "psp.layer_norm.weight": (256,), "psp.layer_norm.bias": (256,),
    **{f"{h}.L1.weight": (64, 256) for h in ("v_classify", "a_classify")},
    **{f"{h}.L2.weight": (28, 64) for h in ("v_classify", "a_classify")},
}
CPSP_EXTRA = {"fv.0.weight": (256, "Dv"), "fv.1.weight": (128, 256),
              "psp.v_fc.weight": (256, 256), "psp.a_fc.weight": (256, 256),
              "L1.weight": (64, 256), "L2.weight": ("C", 64),
              "event_classifier.0.weight": (1, 256), "event_classifier.0.bias": (1,),
              "category_classifier.0.weight": ("C", 256), "category_classifier.0.bias": ("C",)}


def _expected(table, dv=512, c=28, prefix=""):
    return {prefix + k: tuple(dv if d == "Dv" else c if d == "C" else d for d in v)
            for k, v in table.items()}


def _shapes(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("arch", ["psp-fully-ave", "cpsp-fully-ave", "sspsp-fully-ave",
                                  "cpsp-weakly-ave", "psp-weakly-ave"])
def test_cpsp_ave_state_dict_equals_official(arch):
    assert _shapes(build(arch)) == _expected({**TRUNK, **CPSP_EXTRA})


@pytest.mark.parametrize("arch", ["cpsp-fully-vggsound", "cpsp-weakly-vggsound", "sspsp-weakly-vggsound"])
def test_vggsound_wrapper_state_dict_equals_official(arch):
    expected = _expected({**TRUNK, **CPSP_EXTRA}, dv=1024, c=141, prefix="psp.")
    expected.update({"align_v.weight": (512, 1024), "align_v.bias": (512,)})
    assert _shapes(build(arch)) == expected


def test_psp_repo_fully_state_dict_equals_official():
    expected = _expected({**TRUNK, **CPSP_EXTRA}, c=29)
    for k in [k for k in expected if k.startswith(("event_classifier", "category_classifier"))]:
        del expected[k]
    expected.update({"L3.weight": (64, 256), "L3.bias": (64,), "L4.weight": (2, 64), "L4.bias": (2,)})
    assert _shapes(build("psp-fully")) == expected


def test_psp_repo_weakly_state_dict_equals_official():
    expected = {k: v for k, v in _expected(TRUNK, c=29).items()
                if not k.startswith(("fa.", "v_classify", "a_classify"))}
    expected.update({"temperature": (1, 29), "W1.weight": (1, 256), "W2.weight": (1, 64),
                     "W3.weight": (1, 29), "L1.weight": (64, 256), "L2.weight": (29, 64)})
    assert _shapes(build("psp-weakly")) == expected


def test_forward_signatures_and_tuples():
    v, a = torch.randn(2, 10, 7, 7, 512), torch.randn(2, 10, 128)
    fusion, out, cross = build("psp-fully").eval()(a, v, 0.099)  # PSP repo: (audio, video, thr)
    assert (fusion.shape, out.shape, cross.shape) == ((2, 10, 256), (2, 10, 29), (2, 10))
    ev, cat, avps, fus = build("cpsp-fully-ave").eval()(v, a)  # CPSP repo: (video, audio)
    assert (ev.shape, cat.shape, avps.shape, fus.shape) == ((2, 10), (2, 28), (2, 10), (2, 10, 256))
    fus, ev, cat, pred = build("cpsp-weakly-ave").eval()(v, a)
    assert torch.allclose(pred.sum(-1), torch.ones(2))  # softmax output
    assert len(build("sspsp-fully-ave").eval()(v, a)) == 4
    avg, score = build("psp-weakly").eval()(a, v, 0.095)
    assert avg.shape == (2, 29) and score.shape == (2, 10, 29)


def test_avga_adds_audio_along_rows_not_as_location_bias():
    """Pin quirk 1: with affine_v = 0 the audio term [BT,49,1] is constant along each row,
    so tanh(content) @ h gives z_i = tanh(g_i)·Σh -- a per-location score from g."""
    from models.psp_blocks import AVGA
    att = AVGA().double()
    with torch.no_grad():
        att.affine_v.weight.zero_()
    a, v = torch.randn(1, 1, 128).double(), torch.randn(1, 1, 7, 7, 512).double()
    g = att.affine_g(torch.relu(att.affine_audio(a.reshape(1, 128))))[0]  # [49]
    z = torch.tanh(g) * att.affine_h.weight.sum()
    expected = (torch.softmax(z, 0)[:, None] * v.reshape(49, 512)).sum(0)
    assert torch.allclose(att(a, v).reshape(512), expected, atol=1e-12)


def test_float64_and_float32_agree():
    torch.manual_seed(0)
    m = build("cpsp-fully-ave").eval()
    v, a = torch.randn(2, 10, 7, 7, 512), torch.randn(2, 10, 128)
    out32 = m(v, a)[0]
    out64 = m.double()(v.double(), a.double())[0]
    assert out64.dtype == torch.float64
    assert torch.allclose(out32.double(), out64, atol=1e-4)


def test_dataparallel_checkpoint_loads_with_identical_outputs(tmp_path):
    torch.manual_seed(0)
    ref = build("cpsp-fully-ave").double().eval()
    path = tmp_path / "model_seed_123_epoch_9_top1_77.000_task_FullySupervised_best_model.pth.tar"
    torch.save(torch.nn.DataParallel(ref).state_dict(), path)  # keys 'module.…' as upstream
    assert all(k.startswith("module.") for k in torch.load(path, weights_only=True))
    loaded = load_official(path, "cpsp-fully-ave")
    assert not loaded.training
    v, a = torch.randn(3, 10, 7, 7, 512).double(), torch.randn(3, 10, 128).double()
    for x, y in zip(ref(v, a), loaded(v, a)):
        assert torch.equal(x, y)


def test_vggsound_class_count_comes_from_checkpoint(tmp_path):
    ref = build("cpsp-weakly-vggsound", category_num=7).eval()
    torch.save(ref.state_dict(), tmp_path / "w.pth")
    loaded = load_official(tmp_path / "w.pth", "cpsp-weakly-vggsound")
    assert loaded.psp.category_classifier[0].out_features == 7


def test_pickled_psp_module_needs_trust(tmp_path, monkeypatch):
    # Build a whole-module pickle the way the PSP repo does: class fully_model.psp_net
    fake = types.ModuleType("fully_model")

    class psp_net(PSPFully):  # noqa: N801
        pass
    psp_net.__module__ = "fully_model"
    psp_net.__qualname__ = "psp_net"
    fake.psp_net = psp_net
    monkeypatch.setitem(sys.modules, "fully_model", fake)
    torch.manual_seed(0)
    original = psp_net().eval()
    torch.save(original, tmp_path / "PSP_fully.pt")
    monkeypatch.delitem(sys.modules, "fully_model")  # the authors' code is not importable
    with pytest.raises(ValueError, match="trust_pickles"):
        load_official(tmp_path / "PSP_fully.pt", "psp-fully")
    ours = load_official(tmp_path / "PSP_fully.pt", "psp-fully", trust_pickles=True)
    assert type(ours) is PSPFully
    a, v = torch.randn(2, 10, 128), torch.randn(2, 10, 7, 7, 512)
    for x, y in zip(original(a, v, 0.099), ours(a, v, 0.099)):
        assert torch.equal(x, y)


def test_wrong_arch_is_refused(tmp_path):
    torch.save(CPSPFully().state_dict(), tmp_path / "c.pth")
    with pytest.raises(ValueError, match="does not match"):
        load_official(tmp_path / "c.pth", "psp-weakly")
