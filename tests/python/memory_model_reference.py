"""model_memory with cross-attention fusion (experiment 1.4.8, MODELS.md §5) written in plain
PyTorch from the model's description, apart from xlhost's C++: the oracle that the plugin's
forward is checked against (memory_parity.py), built from an `xlhost export` folder.
Each layer: self-attention as MiniMind's; the attention output, RMS-normed, queries a
product-key gate (two half-width key sets of sqrt(N) keys, top-k of each, top-k of their
sums, softmax); each selected bank row is the mean of its token embeddings (the tied
embedding matrix); with selection=score_weighted the rows are scaled by their scores; a
multi-head attention whose keys and values are the query itself and the T x S memories
(fusion_mask=causal: position t sees positions <= t only) is added to the query and
layer-normed, and the result is added to the residual. No feed-forward.
"""
import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from minimind_reference import Attention, RMSNorm


def product_key_top_k(query, keys, k):
    half, num_keys = keys.shape[2], keys.shape[1]
    k = min(k, num_keys)
    top1, idx1 = (query[..., :half] @ keys[0].T).topk(k, dim=-1)
    top2, idx2 = (query[..., half:] @ keys[1].T).topk(k, dim=-1)
    combined = (top1[..., :, None] + top2[..., None, :]).flatten(-2)
    combined_idx = (idx1[..., :, None] * num_keys + idx2[..., None, :]).flatten(-2)
    scores, pick = combined.topk(k, dim=-1)
    return scores.softmax(-1), combined_idx.gather(-1, pick)


class MemoryModel:
    def __init__(self, folder):
        folder = Path(folder)
        self.c = json.loads((folder / "config.json").read_text())["model"]
        self.w = load_file(str(folder / "model.safetensors"))
        c = self.c
        if c["fusion"] != "cross_attention":
            raise ValueError("the reference covers fusion=cross_attention (1.4.8)")
        self.attention = []
        for i in range(c["n_layers"]):
            a = Attention(c["dim"], c["n_heads"], c["n_kv_heads"])
            a.load_state_dict({n: self.w[f"layers.{i}.attention.{n}"] for n in ("wq.weight", "wk.weight", "wv.weight", "wo.weight")})
            self.attention.append(a)
        hd = c["dim"] // c["n_heads"]
        freqs = 1.0 / (c["rope_theta"] ** (torch.arange(0, hd, 2)[: hd // 2].float() / hd))
        angles = torch.outer(torch.arange(4096).float(), freqs)
        self.pos_cis = torch.polar(torch.ones_like(angles), angles)

    def rms(self, name, x):
        norm = RMSNorm(self.c["dim"], self.c["norm_eps"])
        norm.weight.data = self.w[name]
        return norm(x)

    def fusion(self, i, q, memories):
        p, c = f"layers.{i}.fusion.", self.c
        B, T, S, D = memories.shape
        H = c["fusion_heads"]
        kv = torch.cat([q, memories.reshape(B, T * S, D)], 1)
        w, b = self.w[p + "attention.in_proj_weight"].chunk(3), self.w[p + "attention.in_proj_bias"].chunk(3)
        heads = [F.linear(x, w[j], b[j]).view(B, -1, H, D // H).transpose(1, 2) for j, x in enumerate((q, kv, kv))]
        scores = heads[0] @ heads[1].transpose(-1, -2) / math.sqrt(D // H)  # [B, H, T, T + T*S]
        if c["fusion_mask"] == "causal":
            key_position = torch.cat([torch.arange(T), torch.arange(T).repeat_interleave(S)])
            scores = scores.masked_fill(key_position[None, :] > torch.arange(T)[:, None], float("-inf"))
        out = (scores.softmax(-1) @ heads[2]).transpose(1, 2).reshape(B, T, D)
        out = F.linear(out, self.w[p + "attention.out_proj.weight"], self.w[p + "attention.out_proj.bias"])
        return F.layer_norm(q + out, (D,), self.w[p + "norm.weight"], self.w[p + "norm.bias"], 1e-5)

    @torch.no_grad()
    def logits(self, tokens):
        c, embedding = self.c, self.w["tok_embeddings.weight"]
        bank = self.w["memory_bank"].long()
        x = embedding[tokens]
        for i, attention in enumerate(self.attention):
            a = attention(self.rms(f"layers.{i}.attention_norm.weight", x), self.pos_cis[: tokens.shape[1]])
            h = x + a
            q = self.rms(f"layers.{i}.memory_norm.weight", a)
            query = q @ self.w[f"layers.{i}.gate.gate_proj.weight"].T
            scores, rows = product_key_top_k(query, self.w[f"layers.{i}.gate.keys"], c["num_selected"])
            memories = embedding[bank[rows]].mean(-2)  # [B, T, S, D]: each row's mean token embedding
            if c["selection"] == "score_weighted":
                memories = memories * scores[..., None]
            x = h + self.fusion(i, q, memories)
        return self.rms("norm.weight", x) @ embedding.T
