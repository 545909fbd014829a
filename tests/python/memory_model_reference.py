"""model_memory with cross-attention fusion (experiment 1.4.8, MODELS.md §5) written in plain
PyTorch from the model's description, apart from xlhost's C++: the oracle the plugin's forward
is checked against (memory_parity.py, from an `xlhost export` folder, whose tensor names this
module's parameters carry) and the PyTorch side of scripts/bench_vs_pytorch.sh.
Each layer: self-attention as MiniMind's; the attention output, RMS-normed, queries a
product-key gate (two half-width key sets of sqrt(N) keys, top-k of each, top-k of their
sums, softmax); each selected bank row is the mean of its token embeddings (the tied
embedding matrix); with selection=score_weighted the rows are scaled by their scores; a
multi-head attention whose keys and values are the query itself and the T x S memories
(fusion_mask=causal: position t sees positions <= t only), with attention and output
dropout, is added to the query and layer-normed, and the result is added to the residual.
No feed-forward. The balance loss of the 1.4.8 code (KL to uniform and Gini of the row
counts) is computed as it is there: from integer counts, so it carries no gradient.
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


def balance_loss(rows, n):
    p = torch.bincount(rows.flatten(), minlength=n).double()
    p = p / p.sum().clamp(min=1)
    kl = (1 / n * (math.log(1 / n) - (p + 1e-10).log())).sum()
    ranks = torch.arange(1, n + 1, dtype=torch.float64)
    gini = 2 * (ranks * p.sort().values).sum() / (n * p.sum().clamp(min=1e-12)) - (n + 1) / n
    return 0.5 * kl + 0.5 * gini


class Gate(torch.nn.Module):
    def __init__(self, dim, knowledge_num, knowledge_dim):
        super().__init__()
        self.gate_proj = torch.nn.Linear(dim, knowledge_dim, bias=False)
        self.keys = torch.nn.Parameter(torch.randn(2, math.isqrt(knowledge_num), knowledge_dim // 2))


class Fusion(torch.nn.Module):
    use_sdpa = False  # the explicit softmax for parity checks; SDPA (as the C++ uses) for speed

    def __init__(self, dim, heads, attention_dropout, output_dropout):
        super().__init__()
        self.attention = torch.nn.MultiheadAttention(dim, heads, dropout=attention_dropout)  # its parameters only
        self.norm = torch.nn.LayerNorm(dim)
        self.output_dropout = output_dropout

    def forward(self, q, memories, causal):
        B, T, S, D = memories.shape
        H = self.attention.num_heads
        kv = torch.cat([q, memories.reshape(B, T * S, D)], 1)
        w, b = self.attention.in_proj_weight.chunk(3), self.attention.in_proj_bias.chunk(3)
        qh, kh, vh = (F.linear(x, w[j], b[j]).view(B, -1, H, D // H).transpose(1, 2) for j, x in enumerate((q, kv, kv)))
        visible = None
        if causal:
            key_position = torch.cat([torch.arange(T), torch.arange(T).repeat_interleave(S)]).to(q.device)
            visible = key_position[None, :] <= torch.arange(T, device=q.device)[:, None]
        p = self.attention.dropout if self.training else 0.0
        if self.use_sdpa:
            out = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=visible, dropout_p=p)
        else:
            scores = qh @ kh.transpose(-1, -2) / math.sqrt(D // H)
            if visible is not None:
                scores = scores.masked_fill(~visible, float("-inf"))
            out = F.dropout(scores.softmax(-1), p) @ vh
        out = self.attention.out_proj(out.transpose(1, 2).reshape(B, T, D))
        return self.norm(q + F.dropout(out, self.output_dropout, self.training))


class Block(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        dim = c["dim"]
        self.attention = Attention(dim, c["n_heads"], c["n_kv_heads"])
        self.attention_norm, self.memory_norm = RMSNorm(dim, c["norm_eps"]), RMSNorm(dim, c["norm_eps"])
        self.gate = Gate(dim, c["knowledge_num"], c["knowledge_dim"])
        self.fusion = Fusion(dim, c["fusion_heads"], c["fusion_attention_dropout"], c["fusion_dropout"])
        self.c = c

    def forward(self, x, pos_cis, bank, embedding):
        a = self.attention(self.attention_norm(x), pos_cis)
        q = self.memory_norm(a)
        scores, rows = product_key_top_k(self.gate.gate_proj(q), self.gate.keys, self.c["num_selected"])
        memories = F.embedding_bag(bank[rows.flatten()], embedding, mode="mean").view(*rows.shape, -1)
        if self.c["selection"] == "score_weighted":
            memories = memories * scores[..., None]
        return x + a + self.fusion(q, memories, self.c["fusion_mask"] == "causal"), rows


class MemoryModel(torch.nn.Module):
    def __init__(self, c, max_positions=4096):
        super().__init__()
        if c.get("fusion", "cross_attention") != "cross_attention":
            raise ValueError("the reference covers fusion=cross_attention (1.4.8)")
        self.c = c
        self.tok_embeddings = torch.nn.Embedding(c["vocab_size"], c["dim"])
        self.layers = torch.nn.ModuleList(Block(c) for _ in range(c["n_layers"]))
        self.norm = RMSNorm(c["dim"], c["norm_eps"])
        self.register_buffer("memory_bank", torch.randint(0, c["vocab_size"], (c["knowledge_num"], c["knowledge_length"])))
        hd = c["dim"] // c["n_heads"]
        freqs = 1.0 / (c["rope_theta"] ** (torch.arange(0, hd, 2)[: hd // 2].float() / hd))
        angles = torch.outer(torch.arange(max_positions).float(), freqs)
        self.register_buffer("pos_cis", torch.polar(torch.ones_like(angles), angles), persistent=False)

    @classmethod
    def from_export(cls, folder):
        folder = Path(folder)
        model = cls(json.loads((folder / "config.json").read_text())["model"])
        weights = load_file(str(folder / "model.safetensors"))
        weights["memory_bank"] = weights["memory_bank"].long()
        model.load_state_dict(weights)
        return model.eval()

    def forward(self, tokens):
        """Logits, and the balance loss (a constant for the optimizer, as in the 1.4.8 code)."""
        x, embedding = self.tok_embeddings(tokens), self.tok_embeddings.weight
        balance = 0.0
        for layer in self.layers:
            x, rows = layer(x, self.pos_cis[: tokens.shape[1]], self.memory_bank, embedding)
            if self.training:
                balance = balance + balance_loss(rows, self.c["knowledge_num"])
        return self.norm(x) @ embedding.T, self.c["balance_loss_coef"] * balance / len(self.layers)

    @torch.no_grad()
    def logits(self, tokens):
        return self(tokens)[0]
