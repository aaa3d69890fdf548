#!/usr/bin/python3
"""Independent PyTorch reference for HF transformers' MistralForCausalLM, and the
generator of the tiny-mistral test fixtures used by the Java engine.

Usage (Debian's python: it has torch; no transformers / safetensors needed):

    /usr/bin/python3 tools/mistral_reference.py --out tests/fixtures/tiny-mistral [--seed 0]

Written from the HF semantics (not copied from transformers). The model code
(MistralConfig, MistralForCausalLM) is dtype-generic and is also imported by
tools/bench_torch_model.py, which runs it in float32.

Model semantics
---------------
* embedding: h = embed_tokens.weight[input_ids]
* per layer:
    a = RMSNorm(h; input_layernorm)        x * rsqrt(mean(x^2, -1) + eps) * w, in the working dtype
    q = a @ Wq^T  [B,T,H*D] -> [B,H,T,D];  k, v = a @ Wk^T, a @ Wv^T -> [B,KVH,T,D]
        (HF Linear layout: weight[out, in]; no biases)
    RoPE on q and k, rotate-half pairing:
        inv_freq[i] = 1 / theta^(2i/D), i in [0, D/2);  ang[t, i] = pos_t * inv_freq[i]
        cos/sin = cos/sin(cat(ang, ang))  [T, D]
        x' = x*cos + rotate_half(x)*sin,  rotate_half(x) = cat(-x[..., D/2:], x[..., :D/2])
    GQA: query head h uses kv head h // (H / KVH)
    scores = q k^T / sqrt(D); query i sees key j iff
        j <= i  AND  j > i - sliding_window  AND  attention_mask[b, j] == 1
        (HF masking_utils: exactly `sliding_window` keys including the query itself;
         the attention mask is per KEY: masked positions still keep their position id,
         and a masked query still attends to the unmasked keys before it)
    softmax over keys, @ v, heads concatenated [B,T,H*D], o_proj; h = h + attn
    m = RMSNorm(h; post_attention_layernorm); h = h + down(silu(gate(m)) * up(m))
* final RMSNorm (model.norm), untied lm_head -> logits [B,T,V]
* position ids are 0..T-1 for every row, whatever the attention mask says.
* (HF computes the RoPE angles and cos/sin in float32 even for a float64 model;
  this reference computes them in the working dtype, i.e. exactly in float64 for
  the fixture. The difference is ~1e-7 relative, below float32 storage noise.)

Fixture model (tests/fixtures/tiny-mistral)
-------------------------------------------
vocab 300, hidden 32, intermediate 64, 2 layers, 4 heads, 2 kv heads, head_dim 8,
sliding_window 5, rms_norm_eps 1e-5, rope_theta 10000, max_position_embeddings 64,
untied lm_head. Initialisation is HF-like but with std 0.2 (not HF's 0.02, so that
activations and gradients are not trivially tiny; config.json's initializer_range
says 0.2 accordingly): every linear / embedding weight ~ N(0, 0.2^2); every RMSNorm
weight = 1 + N(0, 0.1^2) so the norm weights matter in the gradients. Values are drawn
in float64, rounded to float32 (that is what model.safetensors stores) and every
fixture computation uses exactly those rounded values upcast back to float64.

Files written
-------------
config.json         HF MistralConfig keys (sorted, indent 2, like save_pretrained).
model.safetensors   F32 weights with HF names:
                      model.embed_tokens.weight                 [300, 32]
                      model.layers.N.input_layernorm.weight      [32]
                      model.layers.N.self_attn.q_proj.weight     [32, 32]   (H*D, C)
                      model.layers.N.self_attn.k_proj.weight     [16, 32]   (KVH*D, C)
                      model.layers.N.self_attn.v_proj.weight     [16, 32]
                      model.layers.N.self_attn.o_proj.weight     [32, 32]   (C, H*D)
                      model.layers.N.post_attention_layernorm.weight [32]
                      model.layers.N.mlp.gate_proj.weight        [64, 32]
                      model.layers.N.mlp.up_proj.weight          [64, 32]
                      model.layers.N.mlp.down_proj.weight        [32, 64]
                      model.norm.weight                          [32]
                      lm_head.weight                             [300, 32]
fixture.safetensors A SPIN batch, B=4 rows of T=12 tokens. Rows 0,1 are "real", rows
                    2,3 the "generated" answers paired with them (pair i = rows i, i+2).
                    All float outputs are computed in float64 and stored as F32.
  input_ids       I64 [4,12]  random ids in [0,300); masked positions hold id 2 (EOS/pad)
  attention_mask  I64 [4,12]  1 = key visible. row 0: hole (0) at position 6; row 1: right
                              padded, positions 9..11 are 0; row 2: hole at position 7;
                              row 3: all ones. Position 0 is never masked.
  labels          I64 [4,12]  HF-style, NOT shifted: -100 on positions 0..3 (the prompt) and
                              on right padding (row 1, 9..11); elsewhere = input_ids. The
                              holes (masked EOS inside the text) keep their label, as in
                              the SPIN/DPO collator.
  logits          F32 [4,12,300]  model output for every position (padding included).
  logps           F32 [4]     per-row sum_{t: labels[t+1] != -100}
                                log_softmax(logits[t])[labels[t+1]]   (HF get_batch_logps)
  opponent_logps  F32 [4]     logps + [+0.7, -1.3, -0.4, +0.9], rounded to float32; the
                              loss uses exactly these float32 values.
  beta            F32 [1]     0.1 (the loss uses the double 0.1)
  spin_logits     F32 [2]     per pair i: (logps[i] - logps[i+2]) - (opp[i] - opp[i+2])
  loss            F32 [1]     SPIN sigmoid loss: mean_i -logsigmoid(beta * spin_logits[i])
  loss_hinge      F32 [1]     mean_i relu(1 - beta * spin_logits[i])
  sft_loss        F32 [1]     token-level cross entropy with the shift, mean over all
                              non-ignored label tokens of all 4 rows
  grad.<name>     F32         d loss / d parameter (the sigmoid `loss`), for every
                              parameter name above, same shape as the parameter
                              (float64 autograd).
  token_logps     F32 [4,12]  per position t: log_softmax(logits[t])[labels[t+1]], 0 where
                              labels[t+1] == -100 and at the last position (logps' terms)
  bf16.logits, bf16.token_logps, bf16.logps, bf16.loss, bf16.grad.<name>  F32
                              the same batch run as HF runs a bfloat16 model: the float32
                              weights rounded to bf16, activations and their gradients in
                              bf16, the logits upcast to float32 for the log-softmax (as the
                              SPIN/DPO trainer does), the opponent's float32 log-probs. What a
                              naive bf16 implementation gets wrong: DESIGN section 4 holds a
                              bf16 engine to 2x its error (3x for gradients) against the
                              float64 values above.
train_fixture.safetensors  Three SPIN training steps with the semantics of HF Trainer +
                    SPINTrainer (gradient_accumulation_steps 1), in float64 from the float32
                    weights of model.safetensors. Every float is stored as F32 (exact values
                    in the header's __metadata__), ids / masks / labels as I64.
  batch{i}_input_ids       I64 [8,12]  micro-batch i (i = 0,1,2; optimizer step s uses batch s):
  batch{i}_attention_mask  I64 [8,12]  4 records, rows 0..3 real, rows 4..7 generated (pair r =
  batch{i}_labels          I64 [8,12]  rows r, r+4, sharing the prompt). A row is BOS + prompt |
                              response + EOS (mask 1, labelled) | padding (id 2, mask 0, label
                              -100); labels -100 on the prompt, else = input_ids (not shifted).
                              EOS holes (id 2, mask 0): batch 0 row 1 pos 6 and batch 2 row 7
                              pos 5 (in the response: labelled), batch 1 rows 0 and 4 pos 2 (in
                              the prompt). Each batch has a row filling all 12 positions; batch 1
                              row 6's response is the EOS alone.
  batch{i}_opponent_logps  F32 [8]    batch_logps of the frozen starting model (the opponent) on
                              batch i, computed once before training, float32-rounded; the loss
                              uses exactly these values.
  beta            F32 [1]     0.1
  max_grad_norm   F32 [1]     2.08: clip_grad_norm_ before every optimizer step (total 2-norm
                              over all parameter gradients, gradients scaled by
                              min(1, max_norm / (norm + 1e-6))). Every run clips steps 1 and 2
                              and not step 0, each norm at least 1% away from 2.08.
  lr_multiplier   F32 [3]     [0, 1, 0.5]: get_linear_schedule_with_warmup over 3 steps with
                              ceil(0.1 * 3) = 1 warmup step. Step 0 runs at lr 0: it moves no
                              weight but does update the optimizer state (and AdamW's step count).
  Three runs R from the same start, 3 optimizer steps each (forward + backward of batch s, clip,
  optimizer.step, scheduler.step):
    rmsprop   torch.optim.RMSprop lr 1e-3, alpha 0.99, eps 1e-8, no momentum, not centered
              (HF optim rmsprop)
    adamw     torch.optim.AdamW lr 1e-2, betas (0.9, 0.999), eps 1e-8, weight_decay 0
              (HF optim adamw_torch defaults)
    adamw_wd  as adamw with weight_decay 0.01 on the weight matrices; the 1-D norm weights are
              not decayed (HF Trainer's parameter grouping spares biases and norm weights)
              (HF's default grouping would exempt them)
  R/loss          F32 [3]     step s's loss on batch s at the weights before step s: mean over
                              the 4 pairs of -logsigmoid(beta * ((pol_real - pol_gen) -
                              (opp_real - opp_gen))). Steps 0 and 1 both see the start weights,
                              so their loss is ln 2 up to the opponent's float32 rounding.
  R/grad_norm     F32 [3]     pre-clip total gradient norm of step s (clip_grad_norm_'s result)
  R/clip_coef     F32 [3]     factor the gradients of step s were scaled by (1 = not clipped)
  R/lr            F32 [3]     lr of step s
  R/weight_decay  F32 [1]
  R/<param name>  F32         weights after the 3 steps, every parameter of model.safetensors
                              (float32-rounded: compare final - start relatively)
  rmsprop/square_avg/<param name>  F32  RMSprop state after the 3 steps
  adamw/exp_avg/<param name>, adamw/exp_avg_sq/<param name>, and the same under adamw_wd/
                  F32         AdamW moments after the 3 steps (bias correction at step s uses
                              t = s + 1: the lr-0 step counts)
  accum_half{j}_input_ids, _attention_mask, _labels  I64 [4,T_j]  batch 0 split by records
                              for gradient accumulation: half 0 = records 0,1 (batch 0 rows
                              0,1,4,5), half 1 = records 2,3 (rows 2,3,6,7), each collated on its
                              own, real rows first, all-padding trailing columns dropped:
                              T_0 = 9, T_1 = 12.
  accum_half{j}_opponent_logps  F32 [4]  the matching batch0_opponent_logps entries
  accum_half{j}_loss  F32 [1]  the half's SPIN loss at the start weights; (l_0 + l_1) / 2 is the
                              full batch-0 loss, and sum_j d(l_j / 2)/dθ is the full batch-0
                              gradient (whose norm is R/grad_norm[0]).

Self-checks (run every time, cheap): a loop-by-loop naive forward (explicit RoPE pair
rotation, explicit per-head kv-group choice and key sets) matches the vectorised logits;
central finite differences in float64 against
autograd for a random element and the largest-gradient element of every parameter;
the sliding window changes the logits at positions >= window (and nothing before);
changing the token at a masked hole changes no other position's logits; and the
safetensors files read back bit-exactly. For the training fixture: every step's clipping
and every optimizer update and state of the three runs re-derived from the update formulas
agree with torch to 1e-12, the lr-0 step leaves the weights bit-identical while the state
moves, clipping is on for some steps and off for others, every tensor moves by more than
1e-4 relative, and the two accumulated halves give the full batch's gradient to 1e-12. The
summary also prints how far a float32 torch run of the same steps lands (a guide for
float32 tolerances).
"""

import argparse
import json
import math
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

IGNORE_INDEX = -100


# ----------------------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------------------
class MistralConfig:
    def __init__(self, vocab_size=32000, hidden_size=4096, intermediate_size=14336,
                 num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                 head_dim=None, sliding_window=4096, rms_norm_eps=1e-5, rope_theta=10000.0,
                 max_position_embeddings=32768, tie_word_embeddings=False,
                 initializer_range=0.02, bos_token_id=1, eos_token_id=2):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_key_value_heads
        self.head_dim = head_dim if head_dim is not None else hidden_size // num_attention_heads
        self.sliding_window = sliding_window
        self.rms_norm_eps = rms_norm_eps
        self.rope_theta = rope_theta
        self.max_position_embeddings = max_position_embeddings
        self.tie_word_embeddings = tie_word_embeddings
        self.initializer_range = initializer_range
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id
        if tie_word_embeddings:
            raise ValueError("this reference implements the untied lm_head only")
        if num_attention_heads % num_key_value_heads != 0:
            raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
        if self.head_dim % 2 != 0:
            raise ValueError("head_dim must be even for RoPE")

    def copy(self, **changes):
        d = dict(self.__dict__)
        d.update(changes)
        return MistralConfig(**d)

    def to_hf_dict(self):
        """config.json as HF's MistralConfig.save_pretrained writes it (keys sorted)."""
        d = {
            "architectures": ["MistralForCausalLM"],
            "attention_dropout": 0.0,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "hidden_size": self.hidden_size,
            "initializer_range": self.initializer_range,
            "intermediate_size": self.intermediate_size,
            "max_position_embeddings": self.max_position_embeddings,
            "model_type": "mistral",
            "num_attention_heads": self.num_attention_heads,
            "num_hidden_layers": self.num_hidden_layers,
            "num_key_value_heads": self.num_key_value_heads,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "sliding_window": self.sliding_window,
            "tie_word_embeddings": self.tie_word_embeddings,
            "torch_dtype": "float32",
            "use_cache": True,
            "vocab_size": self.vocab_size,
        }
        return dict(sorted(d.items()))


PRESETS = {
    # same shapes as the Java engine's presets
    "tiny": dict(vocab_size=512, hidden_size=64, intermediate_size=192, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=16, sliding_window=128,
                 rms_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=2048),
    "small": dict(vocab_size=32000, hidden_size=512, intermediate_size=1408, num_hidden_layers=6,
                  num_attention_heads=8, num_key_value_heads=2, head_dim=64, sliding_window=4096,
                  rms_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=4096),
}

FIXTURE_CONFIG = dict(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=8, sliding_window=5,
                      rms_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=64,
                      tie_word_embeddings=False, initializer_range=0.2,  # 10x HF's 0.02, see docstring
                      bos_token_id=1, eos_token_id=2)


# ----------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------
class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_cos_sin(positions, head_dim, theta, dtype):
    """positions: int64 [T] -> cos, sin [T, head_dim] in `dtype` (angles computed in dtype)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).to(dtype) / head_dim))
    ang = positions.to(dtype)[:, None] * inv_freq[None, :]
    emb = torch.cat((ang, ang), dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x, cos, sin):
    """x [B, heads, T, D]; cos/sin [T, D]."""
    return x * cos + rotate_half(x) * sin


def repeat_kv(x, n_rep):
    """[B, KVH, S, D] -> [B, KVH*n_rep, S, D]; query head h reads kv head h // n_rep."""
    if n_rep == 1:
        return x
    b, kvh, s, d = x.shape
    return x[:, :, None, :, :].expand(b, kvh, n_rep, s, d).reshape(b, kvh * n_rep, s, d)


def attention_allowed(q_pos, k_pos, key_mask, sliding_window):
    """Boolean [B|1, 1, T, S]: query at q_pos[i] may attend key at k_pos[j]."""
    qp = q_pos[:, None]
    kp = k_pos[None, :]
    allowed = kp <= qp
    if sliding_window is not None:
        allowed = allowed & (kp > qp - sliding_window)
    allowed = allowed[None, None]
    if key_mask is not None:
        allowed = allowed & key_mask[:, None, None, :].bool()
    return allowed


class MistralAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.h = cfg.num_attention_heads
        self.kvh = cfg.num_key_value_heads
        self.d = cfg.head_dim
        c = cfg.hidden_size
        self.q_proj = nn.Linear(c, self.h * self.d, bias=False)
        self.k_proj = nn.Linear(c, self.kvh * self.d, bias=False)
        self.v_proj = nn.Linear(c, self.kvh * self.d, bias=False)
        self.o_proj = nn.Linear(self.h * self.d, c, bias=False)

    def forward(self, x, cos, sin, allowed, past_kv=None):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.h, self.d).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kvh, self.d).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kvh, self.d).transpose(1, 2)
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)
        if past_kv is not None:
            k = torch.cat((past_kv[0], k), dim=2)
            v = torch.cat((past_kv[1], v), dim=2)
        new_kv = (k, v)
        n_rep = self.h // self.kvh
        scores = torch.matmul(q, repeat_kv(k, n_rep).transpose(2, 3)) / math.sqrt(self.d)
        if allowed is not None:
            scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        probs = torch.softmax(scores, dim=-1)
        out = torch.matmul(probs, repeat_kv(v, n_rep))
        out = out.transpose(1, 2).reshape(b, t, self.h * self.d)
        return self.o_proj(out), new_kv


class MistralMLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class MistralDecoderLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = MistralAttention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MistralMLP(cfg)

    def forward(self, h, cos, sin, allowed, past_kv=None):
        a, new_kv = self.self_attn(self.input_layernorm(h), cos, sin, allowed, past_kv)
        h = h + a
        h = h + self.mlp(self.post_attention_layernorm(h))
        return h, new_kv


class MistralModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList([MistralDecoderLayer(cfg) for _ in range(cfg.num_hidden_layers)])
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class MistralForCausalLM(nn.Module):
    """Parameter names (named_parameters / state_dict) are exactly HF's."""

    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.model = MistralModel(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)

    def forward(self, input_ids, attention_mask=None, past_key_values=None, logits_last_only=False,
                sliding_window="config"):
        """input_ids [B,T] int64; attention_mask [B, past+T] (1 = visible key) or None.

        past_key_values: None or a list of per-layer (k, v) [B, KVH, past, D] (RoPE applied).
        Returns (logits [B,T,V] or [B,1,V], new past_key_values).
        """
        cfg = self.config
        window = cfg.sliding_window if sliding_window == "config" else sliding_window
        b, t = input_ids.shape
        past = 0 if past_key_values is None else past_key_values[0][0].shape[2]
        dev = input_ids.device
        q_pos = torch.arange(past, past + t, device=dev)
        k_pos = torch.arange(0, past + t, device=dev)
        h = self.model.embed_tokens(input_ids)
        cos, sin = rope_cos_sin(q_pos, cfg.head_dim, cfg.rope_theta, h.dtype)
        if attention_mask is None and t == 1 and (window is None or past + 1 <= window):
            allowed = None  # single decode step sees every cached key
        else:
            allowed = attention_allowed(q_pos, k_pos, attention_mask, window)
        new_cache = []
        for i, layer in enumerate(self.model.layers):
            h, kv = layer(h, cos, sin, allowed, None if past_key_values is None else past_key_values[i])
            new_cache.append(kv)
        if logits_last_only:
            h = h[:, -1:, :]
        logits = self.lm_head(self.model.norm(h))
        return logits, new_cache


# ----------------------------------------------------------------------------------------
# Losses (HF / TRL semantics)
# ----------------------------------------------------------------------------------------
def batch_logps(logits, labels):
    """HF get_batch_logps: per-row sum of log p(label) over non-ignored shifted labels."""
    labels = labels[:, 1:].clone()
    logits = logits[:, :-1, :]
    mask = labels != IGNORE_INDEX
    labels[~mask] = 0
    per_token = torch.gather(logits.log_softmax(-1), 2, labels.unsqueeze(2)).squeeze(2)
    return (per_token * mask).sum(-1)


def spin_logits(policy_logps, opponent_logps, n_pairs):
    """Rows [0, n) are real, rows [n, 2n) the generated answers paired with them."""
    pi = policy_logps[:n_pairs] - policy_logps[n_pairs:]
    ref = opponent_logps[:n_pairs] - opponent_logps[n_pairs:]
    return pi - ref


def spin_sigmoid_loss(logits, beta):
    return (-F.logsigmoid(beta * logits)).mean()


def spin_hinge_loss(logits, beta):
    return torch.relu(1 - beta * logits).mean()


def sft_loss(logits, labels):
    v = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1, :].reshape(-1, v), labels[:, 1:].reshape(-1),
                           ignore_index=IGNORE_INDEX, reduction="mean")


# ----------------------------------------------------------------------------------------
# Minimal safetensors writer / reader
# ----------------------------------------------------------------------------------------
_ST_DTYPES = {torch.float32: ("F32", "<f4"), torch.int64: ("I64", "<i8"), torch.float64: ("F64", "<f8")}
_ST_TORCH = {"F32": torch.float32, "I64": torch.int64, "F64": torch.float64}


def save_safetensors(path, tensors, metadata=None):
    """tensors: dict name -> tensor (F32/I64/F64); data is written in dict order."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    blobs = []
    offset = 0
    for name, t in tensors.items():
        if t.dtype not in _ST_DTYPES:
            raise ValueError(f"{name}: unsupported dtype {t.dtype}")
        st, np_dtype = _ST_DTYPES[t.dtype]
        data = t.detach().contiguous().cpu().numpy().astype(np_dtype, copy=False).tobytes()
        header[name] = {"dtype": st, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((-len(hjson)) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for blob in blobs:
            f.write(blob)
    os.replace(tmp, path)


def load_safetensors(path):
    import numpy as np
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        np_dtype = _ST_DTYPES[_ST_TORCH[info["dtype"]]][1]
        arr = np.frombuffer(raw[base + b:base + e], dtype=np_dtype).reshape(info["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out


# ----------------------------------------------------------------------------------------
# Fixture generation
# ----------------------------------------------------------------------------------------
def init_fixture_params(model, gen, std, norm_noise):
    """Draw in float64, round to float32, keep the rounded values (as float64) in the model."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("layernorm.weight") or name == "model.norm.weight":
                v = 1.0 + norm_noise * torch.randn(p.shape, generator=gen, dtype=torch.float64)
            else:
                v = std * torch.randn(p.shape, generator=gen, dtype=torch.float64)
            p.copy_(v.to(torch.float32).to(torch.float64))


def make_batch(gen, vocab, b=4, t=12, prompt_len=4, eos=2):
    input_ids = torch.randint(0, vocab, (b, t), generator=gen, dtype=torch.int64)
    attention_mask = torch.ones(b, t, dtype=torch.int64)
    attention_mask[0, 6] = 0          # masked EOS inside the text
    attention_mask[1, t - 3:] = 0     # right padding
    attention_mask[2, 7] = 0          # masked EOS inside the text
    input_ids[attention_mask == 0] = eos  # EOS doubles as the pad id (alignment-handbook)
    assert bool((attention_mask[:, 0] == 1).all())
    labels = input_ids.clone()
    labels[:, :prompt_len] = IGNORE_INDEX
    labels[1, t - 3:] = IGNORE_INDEX  # padding; holes keep their label
    return input_ids, attention_mask, labels


def compute_all(model, input_ids, attention_mask, labels, opponent_logps, beta):
    logits, _ = model(input_ids, attention_mask)
    logps = batch_logps(logits, labels)
    n = input_ids.shape[0] // 2
    sl = spin_logits(logps, opponent_logps, n)
    loss = spin_sigmoid_loss(sl, beta)
    return logits, logps, sl, loss


def token_logps(logits, labels):
    """[B,T]: position t's log-prob of the label at t+1 (HF's shift), 0 where ignored and at the end."""
    shifted = labels[:, 1:]
    scored = shifted != -100
    per = torch.gather(logits[:, :-1].log_softmax(-1), 2, torch.where(scored, shifted, 0).unsqueeze(2)).squeeze(2)
    out = torch.zeros(labels.shape, dtype=logits.dtype)
    out[:, :-1] = torch.where(scored, per, torch.zeros_like(per))
    return out


def bf16_run(cfg, start, input_ids, attention_mask, labels, opponent_logps, beta):
    """The fixture batch through a bfloat16 copy of the model (see bf16.* in the docstring)."""
    model = fresh_model(cfg, start, torch.bfloat16)
    logits, _ = model(input_ids, attention_mask)
    logits = logits.to(torch.float32)
    logps = batch_logps(logits, labels)
    loss = spin_sigmoid_loss(spin_logits(logps, opponent_logps.to(torch.float32), input_ids.shape[0] // 2), beta)
    loss.backward()
    out = {"bf16.logits": logits.detach(), "bf16.token_logps": token_logps(logits.detach(), labels),
           "bf16.logps": logps.detach(), "bf16.loss": loss.detach().reshape(1)}
    for name, p in model.named_parameters():
        out["bf16.grad." + name] = p.grad.detach().to(torch.float32)
    return out


def naive_forward(params, cfg, input_ids, attention_mask):
    """Loop-by-loop restatement of the semantics (float64, slow): an independent check of
    the vectorised model's RoPE pairing, GQA head mapping, window and key mask."""
    H, KVH, D, C = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim, cfg.hidden_size
    B, T = input_ids.shape
    W = params

    def rms(x, w):
        return x / math.sqrt(float((x * x).sum()) / x.numel() + cfg.rms_norm_eps) * w

    def rope(vec, pos):  # vec [D]; pairs (i, i + D/2) rotated by pos * theta^(-2i/D)
        out = vec.clone()
        half = D // 2
        for i in range(half):
            a = pos * cfg.rope_theta ** (-2.0 * i / D)
            x1, x2 = float(vec[i]), float(vec[i + half])
            out[i] = x1 * math.cos(a) - x2 * math.sin(a)
            out[i + half] = x2 * math.cos(a) + x1 * math.sin(a)
        return out

    logits = torch.zeros(B, T, cfg.vocab_size, dtype=torch.float64)
    for b in range(B):
        hs = [W["model.embed_tokens.weight"][int(input_ids[b, t])].clone() for t in range(T)]
        for l in range(cfg.num_hidden_layers):
            pre = f"model.layers.{l}."
            a = [rms(x, W[pre + "input_layernorm.weight"]) for x in hs]
            q = [W[pre + "self_attn.q_proj.weight"] @ x for x in a]
            k = [W[pre + "self_attn.k_proj.weight"] @ x for x in a]
            v = [W[pre + "self_attn.v_proj.weight"] @ x for x in a]
            new = []
            for i in range(T):
                heads = []
                for h in range(H):
                    g = h // (H // KVH)
                    qi = rope(q[i][h * D:(h + 1) * D], i)
                    keys = [j for j in range(T) if j <= i and int(attention_mask[b, j]) == 1
                            and (cfg.sliding_window is None or j > i - cfg.sliding_window)]
                    s = [float(qi @ rope(k[j][g * D:(g + 1) * D], j)) / math.sqrt(D) for j in keys]
                    m = max(s)
                    e = [math.exp(x - m) for x in s]
                    z = sum(e)
                    o = sum((e[n] / z) * v[j][g * D:(g + 1) * D] for n, j in enumerate(keys))
                    heads.append(o)
                attn = W[pre + "self_attn.o_proj.weight"] @ torch.cat(heads)
                x = hs[i] + attn
                m_in = rms(x, W[pre + "post_attention_layernorm.weight"])
                gate = W[pre + "mlp.gate_proj.weight"] @ m_in
                up = W[pre + "mlp.up_proj.weight"] @ m_in
                x = x + W[pre + "mlp.down_proj.weight"] @ (gate * torch.sigmoid(gate) * up)
                new.append(x)
            hs = new
        for t in range(T):
            logits[b, t] = W["lm_head.weight"] @ rms(hs[t], W["model.norm.weight"])
    return logits


def self_check_finite_differences(model, loss_fn, gen, h=1e-5):
    """Central differences vs autograd (float64), random + largest element of every parameter."""
    worst = 0.0
    n_checked = 0
    for name, p in model.named_parameters():
        g = p.grad.reshape(-1)
        idxs = [int(torch.randint(0, g.numel(), (1,), generator=gen)), int(g.abs().argmax())]
        for idx in idxs:
            flat = p.data.view(-1)
            old = flat[idx].item()
            with torch.no_grad():
                flat[idx] = old + h
                lp = loss_fn().item()
                flat[idx] = old - h
                lm = loss_fn().item()
                flat[idx] = old
            fd = (lp - lm) / (2 * h)
            ag = g[idx].item()
            err = abs(fd - ag)
            tol = 1e-6 * max(abs(fd), abs(ag)) + 1e-10
            assert err <= tol, f"finite difference mismatch {name}[{idx}]: autograd {ag!r} fd {fd!r}"
            if max(abs(fd), abs(ag)) > 1e-8:
                worst = max(worst, err / max(abs(fd), abs(ag)))
            n_checked += 1
    return n_checked, worst


# ----------------------------------------------------------------------------------------
# Training-step fixture (train_fixture.safetensors): HF Trainer + SPINTrainer semantics
# ----------------------------------------------------------------------------------------
# Record layouts of the three training micro-batches, per record (prompt length, real response
# length, generated response length); a response length counts its appended EOS. Hand-written
# (only the token ids are random) so that the coverage does not depend on the seed.
TRAIN_LAYOUT = (
    ((3, 4, 6), (4, 5, 2), (2, 10, 7), (5, 3, 7)),  # records 0,1 end by 9: accum half 0 is trimmed
    ((4, 8, 8), (2, 3, 5), (3, 9, 1), (4, 2, 6)),   # record 2's generated answer is EOS alone
    ((2, 5, 10), (6, 6, 3), (3, 4, 4), (2, 7, 8)),
)
# EOS holes inside the text (attention mask 0, id EOS): (record, row kind, position) per batch.
# A "prompt" hole is in both rows of its record (they share the prompt); response holes keep
# their label, as the EOS of the chat template does in SpinRowEncoder.
TRAIN_HOLES = (
    ((1, "real", 6),),
    ((0, "prompt", 2),),
    ((3, "generated", 5),),
)
TRAIN_T = 12
TRAIN_BETA = 0.1
TRAIN_WARMUP_RATIO = 0.1
# clip_grad_norm_'s max_norm, picked from the printed norms: step 0's is ~2.04, the later ones
# ~2.13, so every run clips steps 1 and 2 and not step 0 (asserted, with a margin of 1% so that
# a float32 implementation cannot land on the other side).
TRAIN_MAX_GRAD_NORM = 2.08
TRAIN_CLIP_MARGIN = 0.01
# name -> (torch optimizer, kwargs). HF `optim: rmsprop` passes only lr (and the trainer's
# weight_decay, 0 by default); `optim: adamw_torch` passes lr, betas, eps and weight_decay,
# whose TrainingArguments default is 0.0 (not torch's 0.01). adamw_wd decays the weight matrices
# only: HF Trainer puts biases and norm weights (Mistral's 1-D parameters) in a group without decay.
TRAIN_RUNS = (
    ("rmsprop", torch.optim.RMSprop, dict(lr=1e-3, alpha=0.99, eps=1e-8, weight_decay=0,
                                          momentum=0, centered=False)),
    # Adam's steps are ~lr per element whatever the gradient scale: 1e-2 moves the weights ~4%
    # and makes the decay (lr * wd = 1e-4 per step) stand well above float32 noise
    ("adamw", torch.optim.AdamW, dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)),
    ("adamw_wd", torch.optim.AdamW, dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)),
)


def make_train_batch(gen, records, holes, t, vocab, bos=1, eos=2):
    """2n rows [real 0..n-1, generated 0..n-1] of [prompt | response + EOS | EOS padding]:
    the pair shares the prompt (same ids), BOS at position 0, text ids in [3, vocab) so that
    EOS occurs only where meant; padding: id EOS, mask 0, label -100; labels = ids on the
    response (its final EOS included), -100 on the prompt (HF labels, not shifted)."""
    n = len(records)
    ids = torch.full((2 * n, t), eos, dtype=torch.int64)
    mask = torch.zeros(2 * n, t, dtype=torch.int64)
    labels = torch.full((2 * n, t), IGNORE_INDEX, dtype=torch.int64)
    for r, (p, real_len, gen_len) in enumerate(records):
        prompt = torch.randint(3, vocab, (p,), generator=gen, dtype=torch.int64)
        prompt[0] = bos
        for row, resp_len in ((r, real_len), (n + r, gen_len)):
            assert 1 <= resp_len and p + resp_len <= t
            resp = torch.randint(3, vocab, (resp_len,), generator=gen, dtype=torch.int64)
            resp[-1] = eos
            ids[row, :p] = prompt
            ids[row, p:p + resp_len] = resp
            mask[row, :p + resp_len] = 1
            labels[row, p:p + resp_len] = resp
    for rec, kind, pos in holes:
        p = records[rec][0]
        assert (kind == "prompt") == (pos < p) and pos > 0
        for row in {"real": (rec,), "generated": (n + rec,), "prompt": (rec, n + rec)}[kind]:
            assert pos < p + records[rec][1 if row < n else 2] - 1, "a hole must precede the final EOS"
            ids[row, pos] = eos
            mask[row, pos] = 0
            if labels[row, pos] != IGNORE_INDEX:
                labels[row, pos] = eos
    assert bool((mask[:, 0] == 1).all())
    return ids, mask, labels


def split_records(batch, opponent, records):
    """The sub-batch of the given records, rows [real..., generated...] as the collator would
    build it from those records alone: trailing columns that are padding in every row dropped."""
    ids, mask, labels = batch
    n = ids.shape[0] // 2
    rows = list(records) + [n + r for r in records]
    keep = ids[rows], mask[rows], labels[rows]
    length = max(int(torch.nonzero(m).max()) + 1 for m in keep[1])  # final EOS is visible
    return tuple(x[:, :length].clone() for x in keep), opponent[rows].clone()


def linear_warmup_multiplier(step, warmup, total):
    """get_linear_schedule_with_warmup's lr factor at `step` (= scheduler steps taken so far)."""
    if step < warmup:
        return step / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


def hand_step(kind, kw, lr, p, g, st, step):
    """One optimizer step from the update formulas (float64); returns (new p, new state)."""
    if kind is torch.optim.RMSprop:
        a = kw["alpha"]
        sa = a * st["square_avg"] + (1 - a) * g * g
        return p - lr * g / (sa.sqrt() + kw["eps"]), {"square_avg": sa}
    b1, b2 = kw["betas"]
    p = p * (1 - lr * kw["weight_decay"])  # decoupled decay, before the moment update
    m = b1 * st["exp_avg"] + (1 - b1) * g
    v = b2 * st["exp_avg_sq"] + (1 - b2) * g * g
    bc1, bc2 = 1 - b1 ** step, 1 - b2 ** step
    return p - lr / bc1 * m / (v.sqrt() / math.sqrt(bc2) + kw["eps"]), {"exp_avg": m, "exp_avg_sq": v}


def fresh_model(cfg, start, dtype):
    model = MistralForCausalLM(cfg).to(dtype)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(start[name].to(dtype))
    return model


def run_training(cfg, start, opt_cls, kw, batches, opponents, beta, max_norm, dtype=torch.float64,
                 check=True):
    """HF Trainer's loop with gradient_accumulation_steps 1: per step forward + backward of the
    SPIN loss, clip_grad_norm_, optimizer.step, scheduler.step, zero_grad. With `check`, every
    step's clipping and update are re-derived by hand and must agree to 1e-12."""
    model = fresh_model(cfg, start, dtype)
    names = [n for n, _ in model.named_parameters()]
    params = [p for _, p in model.named_parameters()]
    decays = [kw.get("weight_decay", 0) if p.dim() >= 2 else 0 for p in params]  # HF's grouping
    groups = [{"params": [p for p, d in zip(params, decays) if d], "weight_decay": kw.get("weight_decay", 0)},
              {"params": [p for p, d in zip(params, decays) if not d], "weight_decay": 0}]
    opt = opt_cls([g for g in groups if g["params"]], **kw)
    total = len(batches)
    warmup = math.ceil(TRAIN_WARMUP_RATIO * total)  # HF: ceil(num_training_steps * warmup_ratio)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: linear_warmup_multiplier(s, warmup, total))
    state_keys = ("square_avg",) if opt_cls is torch.optim.RMSprop else ("exp_avg", "exp_avg_sq")
    hand_state = [{k: torch.zeros_like(p) for k in state_keys} for p in params]
    log = {"loss": [], "grad_norm": [], "lr": [], "clip_coef": []}
    worst = 0.0
    for s, (batch, opp) in enumerate(zip(batches, opponents)):
        lr = opt.param_groups[0]["lr"]
        assert lr == kw["lr"] * linear_warmup_multiplier(s, warmup, total), (s, lr)
        opt.zero_grad(set_to_none=True)
        loss = compute_all(model, *batch, opp.to(dtype), beta)[3]
        loss.backward()
        raw = [p.grad.detach().clone() for p in params]
        norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))  # returns the pre-clip norm
        coef = min(1.0, max_norm / (norm + 1e-6))
        before = [p.detach().clone() for p in params]
        opt.step()
        sched.step()
        log["loss"].append(loss.item())
        log["grad_norm"].append(norm)
        log["lr"].append(lr)
        log["clip_coef"].append(coef)
        if not check:
            continue
        hand_norm = math.sqrt(sum(float((g * g).sum()) for g in raw))
        assert abs(hand_norm - norm) <= 1e-12 * norm, (hand_norm, norm)
        for i, p in enumerate(params):
            g = raw[i] * coef
            assert float((p.grad - g).abs().max()) <= 1e-15, f"clipping {names[i]}"
            want_p, hand_state[i] = hand_step(opt_cls, dict(kw, weight_decay=decays[i]), lr, before[i], g,
                                              hand_state[i], s + 1)
            err = float((p.detach() - want_p).abs().max())
            for k in state_keys:
                err = max(err, float((opt.state[p][k] - hand_state[i][k]).abs().max()))
            assert err <= 1e-12, f"step {s} {names[i]}: torch and the formulas differ by {err}"
            worst = max(worst, err)
            if lr == 0:  # HF's first step under warmup: the weights stay, the state moves
                assert torch.equal(p.detach(), before[i]), f"lr 0 moved {names[i]}"
        if lr == 0:
            assert any(float(opt.state[p][state_keys[-1]].abs().max()) > 0 for p in params)
    final = {n: p.detach().clone() for n, p in zip(names, params)}
    state = {k: {n: opt.state[p][k].detach().clone() for n, p in zip(names, params)} for k in state_keys}
    return final, state, log, worst


def accumulation_check(cfg, start, full, full_opp, halves, beta):
    """Gradient accumulation: sum_j d(loss_j / k)/dθ over k equal halves == d(full mean loss)/dθ."""
    model = fresh_model(cfg, start, torch.float64)
    loss = compute_all(model, *full, full_opp, beta)[3]
    loss.backward()
    want = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    half_losses = []
    for batch, opp in halves:
        lj = compute_all(model, *batch, opp, beta)[3]
        (lj / len(halves)).backward()  # .grad accumulates across backward calls
        half_losses.append(lj.item())
    err = max(float((p.grad - want[n]).abs().max()) for n, p in model.named_parameters())
    assert err <= 1e-12, f"accumulated gradient differs from the full batch's by {err}"
    assert abs(sum(half_losses) / len(halves) - loss.item()) <= 1e-15
    return half_losses, err, math.sqrt(sum(float((g * g).sum()) for g in want.values()))


def write_train_fixture(cfg, start, out, seed):
    """Build, check and write train_fixture.safetensors. `start`: the float32 weights of
    model.safetensors. Draws from its own generator, so the other fixtures' draws are untouched.
    Returns lines for the summary."""
    gen = torch.Generator().manual_seed(1_000_003 + seed)
    start64 = {n: w.to(torch.float64) for n, w in start.items()}
    beta, max_norm = TRAIN_BETA, TRAIN_MAX_GRAD_NORM
    batches = [make_train_batch(gen, recs, holes, TRAIN_T, cfg.vocab_size, cfg.bos_token_id, cfg.eos_token_id)
               for recs, holes in zip(TRAIN_LAYOUT, TRAIN_HOLES)]
    opponent = fresh_model(cfg, start64, torch.float64)  # the frozen starting model
    with torch.no_grad():  # once, before training; stored as float32 and used exactly so
        opponents = [batch_logps(opponent(ids, m)[0], lab).to(torch.float32).to(torch.float64)
                     for ids, m, lab in batches]

    # gradient accumulation on batch 0: records {0,1} and {2,3}, each its own collated batch
    n0 = batches[0][0].shape[0] // 2
    halves = [split_records(batches[0], opponents[0], range(j, j + n0 // 2)) for j in (0, n0 // 2)]
    assert halves[0][0][0].shape[1] < TRAIN_T, "half 0 should be shorter (trimmed padding)"
    half_losses, accum_err, accum_norm = accumulation_check(cfg, start64, batches[0], opponents[0], halves, beta)

    lines = []
    fix = {}
    for i, ((ids, m, lab), opp) in enumerate(zip(batches, opponents)):
        fix.update({f"batch{i}_input_ids": ids, f"batch{i}_attention_mask": m,
                    f"batch{i}_labels": lab, f"batch{i}_opponent_logps": opp.to(torch.float32)})
    for j, ((ids, m, lab), opp) in enumerate(halves):
        fix.update({f"accum_half{j}_input_ids": ids, f"accum_half{j}_attention_mask": m,
                    f"accum_half{j}_labels": lab, f"accum_half{j}_opponent_logps": opp.to(torch.float32),
                    f"accum_half{j}_loss": torch.tensor([half_losses[j]], dtype=torch.float32)})
    total = len(batches)
    warmup = math.ceil(TRAIN_WARMUP_RATIO * total)
    fix["beta"] = torch.tensor([beta], dtype=torch.float32)
    fix["max_grad_norm"] = torch.tensor([max_norm], dtype=torch.float32)
    fix["lr_multiplier"] = torch.tensor([linear_warmup_multiplier(s, warmup, total) for s in range(total)],
                                        dtype=torch.float32)
    meta = {"format": "pt", "beta": repr(beta), "max_grad_norm": repr(max_norm), "num_training_steps": str(total),
            "num_warmup_steps": str(warmup), "weight_decay_applies_to": "2-D weights (norm weights are not decayed)"}

    flat = lambda d: torch.cat([v.reshape(-1) for v in d.values()])
    s64 = flat(start64)
    for name, cls, kw in TRAIN_RUNS:
        final, state, log, worst = run_training(cfg, start64, cls, kw, batches, opponents, beta, max_norm)
        # the first optimizer step ran at lr 0 and left the weights alone (asserted in
        # run_training); the clip is on for some steps, off for others, never at the edge
        assert log["lr"][0] == 0 and all(lr > 0 for lr in log["lr"][1:])
        clipped = [c < 1.0 for c in log["clip_coef"]]
        assert any(clipped) and not all(clipped), f"{name}: clipping {clipped}"
        assert all(abs(g - max_norm) > TRAIN_CLIP_MARGIN * max_norm for g in log["grad_norm"]), log["grad_norm"]
        # every tensor moves far beyond float32 resolution
        moved = min(float((final[n] - start64[n]).norm() / start64[n].norm()) for n in final)
        assert moved > 1e-4, f"{name}: some tensor moved only {moved:.2e}"
        for k in ("loss", "grad_norm", "lr", "clip_coef"):
            fix[f"{name}/{k}"] = torch.tensor(log[k], dtype=torch.float32)
        fix[f"{name}/weight_decay"] = torch.tensor([kw["weight_decay"]], dtype=torch.float32)
        for n, p in final.items():
            fix[f"{name}/{n}"] = p.to(torch.float32)
        for k, per_param in state.items():
            for n, v in per_param.items():
                fix[f"{name}/{k}/{n}"] = v.to(torch.float32)
        meta[f"{name}.optimizer"] = f"{cls.__module__}.{cls.__name__}"
        meta[f"{name}.kwargs"] = json.dumps(kw, sort_keys=True)

        # information only: the same run in float32 torch, how far float32 lands (Java tolerances)
        f32, st32, _, _ = run_training(cfg, start, cls, kw, batches, [o.to(torch.float32) for o in opponents],
                                       beta, max_norm, dtype=torch.float32, check=False)
        upd = flat(final) - s64
        upd_err = float(((flat(f32).to(torch.float64) - s64) - upd).norm() / upd.norm())
        st_err = max(float((st32[k][n].to(torch.float64) - v).norm() / v.norm())
                     for k, d in state.items() for n, v in d.items())
        lines.append(f"{name:8s} lr {kw['lr']:g} wd {kw['weight_decay']:g}: loss "
                     + " ".join(f"{x:.9f}" for x in log["loss"]) + "  grad_norm "
                     + " ".join(f"{x:.6f}" for x in log["grad_norm"]) + "  clipped "
                     + "".join("yn"[not c] for c in clipped)
                     + f"  |final-start|/|start| {float(upd.norm() / s64.norm()):.3e} (min per tensor {moved:.2e})"
                     + f"; hand-derived steps agree to {worst:.1e}; float32 torch: update rel err {upd_err:.1e},"
                     + f" state max per-tensor rel err {st_err:.1e}")
    wd = flat({n: fix[f"adamw_wd/{n}"] for n in start}).to(torch.float64)
    nd = flat({n: fix[f"adamw/{n}"] for n in start}).to(torch.float64)
    lines.append(f"adamw vs adamw_wd final weights: rel diff {float((wd - nd).norm() / nd.norm()):.3e}")
    lines.append(f"accumulation: 2 halves of batch 0 (T {[h[0][0].shape[1] for h in halves]}) give the full batch's "
                 f"gradient to {accum_err:.1e} (norm {accum_norm:.6f}); half losses {half_losses}")

    path = os.path.join(out, "train_fixture.safetensors")
    save_safetensors(path, fix, meta)
    back = load_safetensors(path)
    assert list(back) == list(fix)
    for k in fix:
        assert back[k].dtype == fix[k].dtype and torch.equal(back[k], fix[k]), f"train_fixture:{k}"
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output folder (e.g. tests/fixtures/tiny-mistral)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    torch.set_num_threads(1)  # fixed reduction order: bit-reproducible fixtures

    cfg = MistralConfig(**FIXTURE_CONFIG)
    model = MistralForCausalLM(cfg).to(torch.float64)
    init_fixture_params(model, gen, std=0.2, norm_noise=0.1)

    input_ids, attention_mask, labels = make_batch(gen, cfg.vocab_size, eos=cfg.eos_token_id)
    beta = 0.1
    offsets = torch.tensor([0.7, -1.3, -0.4, 0.9], dtype=torch.float64)

    with torch.no_grad():
        logits0, _ = model(input_ids, attention_mask)
        opponent_logps = (batch_logps(logits0, labels) + offsets).to(torch.float32).to(torch.float64)

    model.zero_grad(set_to_none=True)
    logits, logps, sl, loss = compute_all(model, input_ids, attention_mask, labels, opponent_logps, beta)
    loss.backward()
    with torch.no_grad():
        loss_hinge = spin_hinge_loss(sl, beta)
        sft = sft_loss(logits, labels)

    # ---- self-checks ------------------------------------------------------------------
    def loss_fn():
        return compute_all(model, input_ids, attention_mask, labels, opponent_logps, beta)[3]

    n_fd, worst_fd = self_check_finite_differences(model, loss_fn, gen)

    with torch.no_grad():
        params = {n: p.detach() for n, p in model.named_parameters()}
        naive_err = (naive_forward(params, cfg, input_ids, attention_mask) - logits).abs().max().item()
    assert naive_err < 1e-10, f"vectorised model disagrees with the naive loops: {naive_err}"

    w = cfg.sliding_window
    with torch.no_grad():
        logits_full, _ = model(input_ids, attention_mask, sliding_window=None)
        d = (logits_full - logits).abs().amax(dim=(0, 2))  # per position
    assert bool((d[:w] == 0).all()), f"window changed positions < {w}: {d[:w]}"
    assert bool((d[w:] > 1e-3).all()), f"sliding window did not change later positions: {d[w:]}"

    with torch.no_grad():  # per-key mask: a masked token influences no other position
        ids2 = input_ids.clone()
        ids2[0, 6] = (ids2[0, 6] + 17) % cfg.vocab_size
        logits2, _ = model(ids2, attention_mask)
        dd = (logits2 - logits).abs().amax(dim=2)
    others = torch.ones_like(dd, dtype=torch.bool)
    others[0, 6] = False
    assert bool((dd[others] == 0).all()), "a masked key leaked into other positions"
    assert float(dd[0, 6]) > 0

    # ---- write files -----------------------------------------------------------------------
    os.makedirs(args.out, exist_ok=True)
    cfg_path = os.path.join(args.out, "config.json")
    with open(cfg_path + ".tmp", "w") as f:
        json.dump(cfg.to_hf_dict(), f, indent=2)
        f.write("\n")
    os.replace(cfg_path + ".tmp", cfg_path)

    f32 = lambda t: t.detach().to(torch.float32)
    weights = {name: f32(p) for name, p in model.named_parameters()}
    save_safetensors(os.path.join(args.out, "model.safetensors"), weights, {"format": "pt"})

    fix = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": labels,
        "logits": f32(logits),
        "logps": f32(logps),
        "opponent_logps": f32(opponent_logps),
        "beta": torch.tensor([beta], dtype=torch.float32),
        "spin_logits": f32(sl),
        "loss": f32(loss.reshape(1)),
        "loss_hinge": f32(loss_hinge.reshape(1)),
        "sft_loss": f32(sft.reshape(1)),
    }
    for name, p in model.named_parameters():
        fix["grad." + name] = f32(p.grad)
    fix["token_logps"] = f32(token_logps(logits.detach(), labels))
    fix.update(bf16_run(cfg, {n: p.detach() for n, p in model.named_parameters()}, input_ids, attention_mask, labels,
                        opponent_logps, beta))
    save_safetensors(os.path.join(args.out, "fixture.safetensors"), fix, {"format": "pt"})

    # round trip
    for fname, ref in (("model.safetensors", weights), ("fixture.safetensors", fix)):
        back = load_safetensors(os.path.join(args.out, fname))
        assert list(back) == list(ref), fname
        for k in ref:
            assert back[k].dtype == ref[k].dtype and torch.equal(back[k], ref[k]), f"{fname}:{k}"
    # the model file's float32 weights are exactly the values the fixture used
    for name, p in model.named_parameters():
        assert torch.equal(weights[name].to(torch.float64), p.detach())

    # ---- summary ---------------------------------------------------------------------------
    print(f"wrote {args.out}/config.json, model.safetensors, fixture.safetensors (seed {args.seed})")
    for fname in ("config.json", "model.safetensors", "fixture.safetensors"):
        print(f"  {fname:22s} {os.path.getsize(os.path.join(args.out, fname)):8d} bytes")
    print(f"params: {sum(p.numel() for p in model.parameters())} in {len(weights)} tensors")
    print(f"input_ids {list(input_ids.shape)}  attention_mask rows: "
          + " | ".join("".join(str(int(x)) for x in r) for r in attention_mask))
    print(f"logits {list(logits.shape)}  |logits| max {logits.abs().max().item():.4f}")
    print("logps          ", [round(x, 6) for x in logps.tolist()])
    print("opponent_logps ", [round(x, 6) for x in opponent_logps.tolist()])
    print("spin_logits    ", [round(x, 6) for x in sl.tolist()])
    print(f"loss (sigmoid) {loss.item():.9f}   loss_hinge {loss_hinge.item():.9f}   sft_loss {sft.item():.9f}")
    gmax = max((p.grad.abs().max().item(), n) for n, p in model.named_parameters())
    print(f"max |grad| {gmax[0]:.6e} ({gmax[1]})")
    print(f"self-check: naive loop forward agrees (max |diff| {naive_err:.1e}); finite differences OK on {n_fd} elements (worst rel err {worst_fd:.2e}); "
          f"sliding window changes logits at positions >= {w} (min max-diff {d[w:].min().item():.3e}), "
          f"none before; masked hole leaks nothing; safetensors round trip exact")

    # ---- training-step fixture (own generator: the files above do not depend on it) ---------
    lines = write_train_fixture(cfg, weights, args.out, args.seed)
    fname = "train_fixture.safetensors"
    print(f"wrote {args.out}/{fname} ({os.path.getsize(os.path.join(args.out, fname))} bytes)")
    for line in lines:
        print("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
