#!/usr/bin/python3
"""Writes testdata/fixture.json: an independent plain-PyTorch Llama forward for package llama's tests.

Run from the package directory with Debian's python3-torch:

    /usr/bin/python3 testdata/gen_fixture.py

It re-implements (it does not import) the Hugging Face transformers Llama forward:
  - RMSNorm: w * x * rsqrt(mean(x^2) + eps) (transformers upcasts to float32; this runs in float64)
  - rotary embeddings with rotate_half (first half / second half of each head), inv_freq scaled
    exactly as transformers' rope_utils._compute_llama3_parameters when rope_scaling is llama3
  - grouped-query attention via repeat_kv, causal + padding mask added as finfo.min
    (eager attention), softmax, o_proj
  - SwiGLU MLP: down(silu(gate(x)) * up(x)); tied or untied lm_head
and the DPO losses as TRL's DPOTrainer.dpo_loss defines them (sigmoid with label smoothing,
robust, hinge, ipo on length-averaged log-probs) plus the RPO NLL term.

Weights are random (fixed seed), rounded to float32 so Go can hold them exactly; the
reference is computed in float64 so the Go float64 model can be checked to ~1e-10 and the
float32 model to ~1e-5.
"""
import json
import math
import os

import torch

FIXTURE_VERSION = 1
torch.manual_seed(20240917)
DT = torch.float64


def llama3_inv_freq(cfg):
    """transformers _compute_default_rope_parameters + _compute_llama3_parameters."""
    dim = cfg["head_dim"]
    base = cfg["rope_theta"]
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).to(DT) / dim))
    rs = cfg.get("rope_scaling")
    if not rs or rs.get("rope_type") in (None, "default"):
        return inv_freq
    factor = rs["factor"]
    low_freq_factor = rs["low_freq_factor"]
    high_freq_factor = rs["high_freq_factor"]
    old_context_len = rs["original_max_position_embeddings"]
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
    is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def rms_norm(x, w, eps):
    variance = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(variance + eps))


def repeat_kv(x, n_rep):  # [B, KV, S, D] -> [B, KV*n_rep, S, D]
    b, kv, s, d = x.shape
    if n_rep == 1:
        return x
    return x[:, :, None, :, :].expand(b, kv, n_rep, s, d).reshape(b, kv * n_rep, s, d)


def make_weights(cfg):
    h, i, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    nh, nkv, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]

    def rnd(*shape, std):
        return (torch.randn(*shape, dtype=torch.float32) * std).to(DT)

    w = {"model.embed_tokens.weight": rnd(v, h, std=1.0)}
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = (1 + rnd(h, std=0.1).to(torch.float32)).to(DT)
        w[p + "self_attn.q_proj.weight"] = rnd(nh * hd, h, std=0.3)
        w[p + "self_attn.k_proj.weight"] = rnd(nkv * hd, h, std=0.3)
        w[p + "self_attn.v_proj.weight"] = rnd(nkv * hd, h, std=0.3)
        w[p + "self_attn.o_proj.weight"] = rnd(h, nh * hd, std=0.2)
        w[p + "post_attention_layernorm.weight"] = (1 + rnd(h, std=0.1).to(torch.float32)).to(DT)
        w[p + "mlp.gate_proj.weight"] = rnd(i, h, std=0.2)
        w[p + "mlp.up_proj.weight"] = rnd(i, h, std=0.2)
        w[p + "mlp.down_proj.weight"] = rnd(h, i, std=0.15)
    w["model.norm.weight"] = (1 + rnd(h, std=0.1).to(torch.float32)).to(DT)
    if not cfg["tie_word_embeddings"]:
        w["lm_head.weight"] = rnd(v, h, std=0.3)
    return w


def forward(cfg, w, input_ids, attention_mask):
    """Llama forward, returns logits [B, S, V]. position_ids = arange(S) (HF default)."""
    b, s = input_ids.shape
    nh, nkv, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    eps = cfg["rms_norm_eps"]
    x = w["model.embed_tokens.weight"][input_ids]  # [B, S, H]

    inv_freq = llama3_inv_freq(cfg)
    pos = torch.arange(s, dtype=DT)
    freqs = pos[:, None] * inv_freq[None, :]  # [S, D/2]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[None, None], emb.sin()[None, None]  # [1, 1, S, D]

    min_val = torch.finfo(DT).min
    causal = torch.tril(torch.ones(s, s, dtype=torch.bool))
    allowed = causal[None, None] & attention_mask.bool()[:, None, None, :]  # [B, 1, S, S]
    mask = torch.zeros(b, 1, s, s, dtype=DT).masked_fill(~allowed, min_val)

    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        hn = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = (hn @ w[p + "self_attn.q_proj.weight"].T).view(b, s, nh, hd).transpose(1, 2)
        k = (hn @ w[p + "self_attn.k_proj.weight"].T).view(b, s, nkv, hd).transpose(1, 2)
        vv = (hn @ w[p + "self_attn.v_proj.weight"].T).view(b, s, nkv, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = repeat_kv(k, nh // nkv)
        vv = repeat_kv(vv, nh // nkv)
        scores = (q @ k.transpose(2, 3)) * hd ** -0.5 + mask
        probs = torch.softmax(scores, dim=-1)
        att = (probs @ vv).transpose(1, 2).reshape(b, s, nh * hd)
        x = x + att @ w[p + "self_attn.o_proj.weight"].T
        hn = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        gate = hn @ w[p + "mlp.gate_proj.weight"].T
        up = hn @ w[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(gate) * up) @ w[p + "mlp.down_proj.weight"].T
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else w["lm_head.weight"]
    return x @ head.T


def sequence_logps(logits, input_ids, attention_mask, completion_mask):
    """Sum over completion tokens t >= 1 of log p(ids[t] | ids[<t]), and the token counts."""
    logp = torch.log_softmax(logits[:, :-1], dim=-1)
    tok = torch.gather(logp, 2, input_ids[:, 1:, None]).squeeze(-1)
    m = (completion_mask[:, 1:] * attention_mask[:, 1:]).to(DT)
    return (tok * m).sum(-1), m.sum(-1)


def dpo(loss_type, beta, ls, pc, pr, rc, rr, nc, nr, rpo_alpha):
    """TRL DPOTrainer.dpo_loss (+ concatenated_forward's ipo length averaging, + RPO)."""
    nll = -pc.sum() / nc.sum()
    if loss_type == "ipo":
        pc, pr, rc, rr = pc / nc, pr / nr, rc / nc, rr / nr
    logits = (pc - pr) - (rc - rr)
    ls_ = torch.nn.functional.logsigmoid
    if loss_type == "sigmoid":
        losses = -ls_(beta * logits) * (1 - ls) - ls_(-beta * logits) * ls
    elif loss_type == "robust":
        losses = (-ls_(beta * logits) * (1 - ls) + ls_(-beta * logits) * ls) / (1 - 2 * ls)
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * logits)
    elif loss_type == "ipo":
        losses = (logits - 1 / (2 * beta)) ** 2
    loss = losses.mean() + rpo_alpha * nll
    chosen_rewards = beta * (pc - rc)
    rejected_rewards = beta * (pr - rr)
    return {
        "loss": loss.item(),
        "rewards/chosen": chosen_rewards.mean().item(),
        "rewards/rejected": rejected_rewards.mean().item(),
        "rewards/accuracies": (chosen_rewards > rejected_rewards).to(DT).mean().item(),
        "rewards/margins": (chosen_rewards - rejected_rewards).mean().item(),
        "logps/chosen": pc.mean().item(),
        "logps/rejected": pr.mean().item(),
        "nll_loss": nll.item(),
    }


def flat(t):
    """Float32-exact weights: 9 significant digits round-trip."""
    return [float("%.9g" % x) for x in t.reshape(-1).tolist()]


def make_case(name, cfg, dpo_cases):
    w = make_weights(cfg)
    b, s, v = 4, 10, cfg["vocab_size"]
    input_ids = torch.randint(1, v, (b, s))
    attention_mask = torch.ones(b, s, dtype=torch.int64)
    completion_mask = torch.zeros(b, s, dtype=torch.int64)
    # Row 0 full; row 1 right-padded by 3; row 2 left-padded by 2; row 3 right-padded by 1.
    attention_mask[1, 7:] = 0
    attention_mask[2, :2] = 0
    attention_mask[3, 9:] = 0
    input_ids[attention_mask == 0] = 0
    for row, start in enumerate([4, 3, 5, 4]):
        completion_mask[row, start:] = 1
    completion_mask *= attention_mask
    logits = forward(cfg, w, input_ids, attention_mask)
    logps, counts = sequence_logps(logits, input_ids, attention_mask, completion_mask)
    # TRL layout: the first half of the batch is chosen, the second half rejected.
    half = b // 2
    ref_chosen = torch.tensor([-31.25, -26.5], dtype=DT)
    ref_rejected = torch.tensor([-30.0, -24.75], dtype=DT)
    dpo_out = []
    for loss_type, beta, ls, alpha in dpo_cases:
        out = dpo(loss_type, beta, ls, logps[:half], logps[half:], ref_chosen, ref_rejected,
                  counts[:half], counts[half:], alpha)
        dpo_out.append({"loss_type": loss_type, "beta": beta, "label_smoothing": ls,
                        "rpo_alpha": alpha, "metrics": out})
    return {
        "name": name,
        "config": cfg,
        "weights": {k: {"shape": list(t.shape), "data": flat(t)} for k, t in w.items()},
        "input_ids": input_ids.tolist(),
        "attention_mask": attention_mask.tolist(),
        "completion_mask": completion_mask.tolist(),
        "logits": logits.reshape(-1).tolist(),  # full float64 precision
        "logps": logps.tolist(),
        "completion_tokens": counts.tolist(),
        "ref_chosen_logps": ref_chosen.tolist(),
        "ref_rejected_logps": ref_rejected.tolist(),
        "dpo": dpo_out,
    }


def base_cfg():
    return {
        "model_type": "llama",
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 8,
        "intermediate_size": 64,
        "vocab_size": 97,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        # head_dim 8 gives wavelengths 6.3, 63, 628, 6283: with original context 128 and
        # factors 1/4 these land in all three llama3 regimes (kept, smoothed, divided).
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 128},
        "tie_word_embeddings": False,
        "max_position_embeddings": 1024,
    }


def main():
    untied = base_cfg()
    tied = base_cfg()
    tied.update(num_hidden_layers=1, num_key_value_heads=4, rope_scaling=None, tie_word_embeddings=True)
    dpo_cases = [
        ("sigmoid", 0.1, 0.0, 0.0),
        ("sigmoid", 0.5, 0.1, 0.0),
        ("robust", 0.1, 0.2, 0.0),
        ("hinge", 0.1, 0.0, 0.0),
        ("ipo", 0.1, 0.0, 0.0),
        ("sigmoid", 0.1, 0.0, 1.0),
    ]
    fixture = {
        "version": FIXTURE_VERSION,
        "generator": "trainer/llama/testdata/gen_fixture.py (torch %s, float64)" % torch.__version__,
        "cases": [make_case("untied_gqa_llama3", untied, dpo_cases),
                  make_case("tied_mha_norope_scaling", tied, dpo_cases[:1])],
    }
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixture.json")
    with open(out, "w") as f:
        json.dump(fixture, f, separators=(",", ":"))
        f.write("\n")
    print("wrote %s (%d bytes)" % (out, os.path.getsize(out)))


if __name__ == "__main__":
    main()
