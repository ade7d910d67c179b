"""Baseline networks: output shapes on AVE-shaped inputs, parameter counts worked out from
the layer lists in specs/baselines.md, one optimisation step lowering the loss, and the
architectural quirks the originals have (row-broadcast attention, crossed DMRN residual)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from models import registry
from models.baselines.eccv18_attention import dmrn_fusion
from models.training.baseline_fit import step
from models.training.baseline_hparams import get_baseline_hparams
from models.training.baseline_objectives import OBJECTIVES

B = 2


def lin(i: int, o: int, bias: bool = True) -> int:
    return i * o + (o if bias else 0)


def bilstm(i: int, h: int) -> int:  # two directions, W_ih, W_hh, b_ih, b_hh
    return 2 * (4 * h * i + 4 * h * h + 8 * h)


def mha(d: int) -> int:  # in_proj (3d x d + 3d) and out_proj (d x d + d)
    return 4 * d * d + 4 * d


def ln(d: int) -> int:
    return 2 * d


def enc(d: int, ff: int) -> int:
    return mha(d) + lin(d, ff) + lin(ff, d) + 2 * ln(d)


def dec(d: int, ff: int) -> int:  # includes the unused self_attn
    return 2 * mha(d) + lin(d, ff) + lin(ff, d) + 2 * ln(d)


def itrm(i: int, d: int, ff: int) -> int:  # template layer + 2 clones, as the original registers them
    return lin(i, d) + 3 * enc(d, ff)


def cmra(i: int, d: int, ff: int) -> int:  # template layer + 1 clone
    return lin(i, d) + 2 * dec(d, ff)


ECCV18_ATT = lin(128, 512) + lin(512, 512) + 2 * lin(512, 49, False) + lin(49, 1, False)
DMRN_BLOCK = 2 * 2 * lin(256, 256)
CMRAN_ATT = (lin(512, 512) + lin(128, 512) + lin(512, 256) + lin(256, 512) + lin(512, 256)
             + lin(128, 256) + lin(256, 1) + lin(512, 64) + lin(64, 128))
CMBS_ATT = (CMRAN_ATT - lin(512, 64) - lin(64, 128) + 2 * lin(512, 128) + lin(512, 512)
            + 3 * lin(512, 256) + lin(256, 1) + ln(512))
AVINTER = {4: mha(256) + ln(256), 2: mha(256) + ln(256)}

EXPECTED_PARAMS = {
    ("av_att", "fully"): ECCV18_ATT + bilstm(128, 128) + bilstm(512, 128) + lin(512, 64) + lin(64, 29),
    ("dmrn", "fully"): ECCV18_ATT + bilstm(128, 128) + bilstm(512, 128) + DMRN_BLOCK + lin(256, 29),
    ("avel", "fully"): (ECCV18_ATT + bilstm(128, 128) + bilstm(512, 128) + DMRN_BLOCK + lin(256, 1)
                        + lin(256, 28)),
    ("avsdn", "fully"): (ECCV18_ATT + bilstm(128, 128) + bilstm(512, 128) + bilstm(640, 128)
                         + 2 * 2 * lin(128, 128) + lin(256, 1) + lin(256, 28)),
    ("cmran", "fully"): (CMRAN_ATT + lin(512, 512) + itrm(512, 256, 2048) + cmra(512, 256, 2048)
                         + itrm(128, 256, 2048) + cmra(128, 256, 2048) + AVINTER[4] + lin(256, 1)
                         + lin(256, 28)),
    ("cmbs", "fully"): (CMBS_ATT + lin(512, 512) + itrm(512, 256, 1024) + cmra(512, 256, 1024)
                        + itrm(256, 256, 1024) + cmra(256, 256, 1024) + bilstm(128, 128) + bilstm(512, 256)
                        + 2 * lin(256, 1) + 2 * AVINTER[4] + lin(256, 1) + lin(256, 28) + 2 * ln(256)
                        + 2 * lin(256, 28)),
    ("cmbs", "weakly"): (CMBS_ATT + lin(512, 512) + itrm(512, 256, 2048) + cmra(512, 256, 1024)
                         + itrm(128, 256, 2048) + cmra(128, 256, 1024) + 2 * AVINTER[2] + 2 * lin(256, 1)
                         + 256 * 29 + lin(256, 1) + 2 * lin(256, 29)),
    ("cmm", None): lin(512, 128) + lin(128, 64) + lin(128, 128) + lin(128, 64),
}
EXPECTED_PARAMS[("av_att_weak", "weakly")] = EXPECTED_PARAMS[("av_att", "fully")]
EXPECTED_PARAMS[("cmran", "weakly")] = EXPECTED_PARAMS[("cmran", "fully")]  # same layers, 2 heads


def build(name: str, flag: str | None) -> nn.Module:
    kwargs = {} if flag is None or name in ("av_att", "av_att_weak", "dmrn") else {"flag": flag}
    return registry.build(name, **kwargs)


@pytest.mark.parametrize("name,flag", sorted(EXPECTED_PARAMS, key=str))
def test_parameter_count_matches_layer_list(name, flag):
    model = build(name, flag)
    assert sum(p.numel() for p in model.parameters()) == EXPECTED_PARAMS[(name, flag)]


def test_av_att_parameter_count_is_the_number_worked_out_by_hand():
    # 378,929 attention + 264,192 + 657,408 BiLSTMs + 32,832 L1 + 1,885 L2
    assert sum(p.numel() for p in registry.build("av_att").parameters()) == 1_335_246


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(0)
    return torch.randn(B, 10, 128, generator=g), torch.randn(B, 10, 7, 7, 512, generator=g).abs()


SHAPES = {
    ("av_att", None): [(B, 10, 29)],
    ("av_att_weak", None): [(B, 29), (B, 10, 29)],
    ("dmrn", None): [(B, 10, 29)],
    ("avel", "fully"): [(B, 10), (B, 28), None, (B, 10, 256)],
    ("avel", "weakly"): [(B, 10, 256), (B, 10), (B, 28), (B, 28)],
    ("avsdn", "fully"): [(B, 10), (B, 28), None, (B, 10, 256)],
    ("avsdn", "weakly"): [(B, 10, 256), (B, 10), (B, 28), (B, 28)],
    ("cmran", "fully"): [(10, B, 1), (B, 28)],
    ("cmran", "weakly"): [(B, 10), (B, 28), (B, 28)],
    ("cmbs", "fully"): [(10, B, 1), (B, 28), (10, B, 1), (B, 28)],
    ("cmbs", "weakly"): [(B, 10), (B, 29), (B, 29)],
}


@pytest.mark.parametrize("name,flag", sorted(SHAPES, key=str))
def test_forward_shapes_on_ave_inputs(name, flag, inputs):
    audio, video = inputs
    model = build(name, flag).eval()
    out = model(audio=audio, video=video)
    out = out if isinstance(out, tuple) else (out,)
    assert [None if o is None else tuple(o.shape) for o in out] == SHAPES[(name, flag)]


def test_softmax_outputs_are_probabilities(inputs):
    audio, video = inputs
    probs = registry.build("av_att")(audio, video)
    assert torch.allclose(probs.sum(-1), torch.ones(B, 10), atol=1e-5)


STEP_CASES = [("av_att", "ave-fully"), ("dmrn", "ave-fully"), ("av_att_weak", "ave-weakly"),
              ("avel", "ave-fully"), ("avel", "ave-weakly"), ("avsdn", "ave-fully"),
              ("avsdn", "ave-weakly"), ("cmran", "ave-fully"), ("cmran", "ave-weakly"),
              ("cmbs", "ave-fully"), ("cmbs", "ave-weakly")]


def _fixed_batch(dtype):
    g = torch.Generator().manual_seed(1)
    labels = torch.zeros(B, 10, 29)
    labels[:, :, 28] = 1
    labels[0, 2:6, 28], labels[0, 2:6, 3] = 0, 1
    labels[1, 0:9, 28], labels[1, 0:9, 7] = 0, 1
    video_labels = torch.zeros(B, 29)
    video_labels[0, 3] = video_labels[1, 7] = 1
    return {"audio": torch.randn(B, 10, 128, generator=g).to(dtype),
            "video": torch.randn(B, 10, 7, 7, 512, generator=g).abs().to(dtype),
            "labels": labels.to(dtype), "video_labels": video_labels.to(dtype)}


@pytest.mark.parametrize("name,task", STEP_CASES)
def test_one_step_lowers_loss_on_fixed_batch(name, task):
    preset = get_baseline_hparams(task, name)
    objective = OBJECTIVES[preset.objective]
    torch.manual_seed(0)
    model = registry.build(name, **preset.model_kwargs)
    batch = _fixed_batch(torch.float32)

    def loss_now() -> float:
        model.eval()  # no dropout, so before/after compare the same function
        with torch.no_grad():
            return float(objective.loss(objective.forward(model, batch), batch, preset.options))

    before = loss_now()
    opt = torch.optim.Adam(model.parameters(), lr=preset.lr)
    step(model, objective, batch, opt, preset.clip_grad_norm, preset.options)
    assert loss_now() < before


def test_attention_adds_audio_term_per_row_as_the_original():
    """z = w_h tanh(W_v v' + (W_g g) as a column): recomputed here with explicit indices."""
    torch.manual_seed(0)
    model = registry.build("av_att").eval()
    audio, video = torch.randn(1, 1, 128), torch.randn(1, 1, 7, 7, 512)
    regions = video.reshape(49, 512)
    v = torch.relu(regions @ model.affine_video.weight.T + model.affine_video.bias)
    g = torch.relu(audio.reshape(128) @ model.affine_audio.weight.T + model.affine_audio.bias)
    wv = v @ model.affine_v.weight.T  # [49 regions, 49 hidden]
    wg = model.affine_g.weight @ g  # [49]
    content = wv + wg[:, None]  # element [r, k] gets wg[r]: the row (region) index
    z = (torch.tanh(content) @ model.affine_h.weight.T).reshape(49)
    expected = torch.softmax(z, 0) @ regions
    assert torch.allclose(model.attend(audio, video).reshape(512), expected, atol=1e-5)


def test_dmrn_residual_is_crossed():
    """With U_v = 2x, U_a = 0 and two blocks, the crossed rule (video <- tanh(audio + m))
    gives a value the uncrossed one does not."""
    u_v, u_a = nn.Linear(1, 1, bias=False), nn.Linear(1, 1, bias=False)
    nn.init.constant_(u_v.weight, 2.0)
    nn.init.zeros_(u_a.weight)
    a, v = torch.tensor([[0.3]]), torch.tensor([[-0.5]])
    t = torch.tanh

    def crossed(a, v):
        m = 0.5 * (2 * v)
        return t(v + m), t(a + m)  # new audio, new video

    a1, v1 = crossed(a, v)
    a2, v2 = crossed(a1, v1)
    expected = 0.5 * (a2 + v2)
    got = dmrn_fusion(u_a, u_v, a, v, nb_block=2)
    assert torch.allclose(got, expected)
    m = 0.5 * (2 * v)
    a1u, v1u = t(a + m), t(v + m)
    m2 = 0.5 * (2 * v1u)
    uncrossed = 0.5 * (t(a1u + m2) + t(v1u + m2))
    assert not torch.allclose(got, uncrossed)


def test_models_run_in_float64_like_the_cpsp_and_cmbs_scripts(inputs):
    audio, video = inputs
    model = registry.build("cmbs", flag="fully").double().eval()
    out = model(video=video.double(), audio=audio.double())
    assert out[1].dtype == torch.float64
