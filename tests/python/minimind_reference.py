"""MiniMind's Llama-style model (the research fork's LMConfig model) written in plain PyTorch:
the reference that xlhost's model_original imports are checked against
(hf_interop_oracle.py) and that scripts/bench_vs_pytorch.sh trains beside xlhost.
RMSNorm, rotary embeddings (theta 1e6), grouped-query attention, a SwiGLU feed-forward of
8/3 dim rounded up to 64, and the output matrix tied to the embeddings.
"""
import math

import torch
import torch.nn.functional as F


class RMSNorm(torch.nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps, self.weight = eps, torch.nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return self.weight * (x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x)


def rotary(x, pos_cis):
    x_ = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(x_ * pos_cis.view(1, x.shape[1], 1, -1)).flatten(3).type_as(x)


class Attention(torch.nn.Module):
    # MiniMind trains with F.scaled_dot_product_attention where torch has it (its `flash`
    # path); the explicit softmax is the same math, kept as the default for parity checks.
    use_sdpa = False

    def __init__(self, dim, heads, kv_heads):
        super().__init__()
        self.heads, self.kv_heads, self.hd = heads, kv_heads, dim // heads
        self.wq = torch.nn.Linear(dim, heads * self.hd, bias=False)
        self.wk = torch.nn.Linear(dim, kv_heads * self.hd, bias=False)
        self.wv = torch.nn.Linear(dim, kv_heads * self.hd, bias=False)
        self.wo = torch.nn.Linear(heads * self.hd, dim, bias=False)

    def forward(self, x, pos_cis):
        B, T, _ = x.shape
        q = rotary(self.wq(x).view(B, T, self.heads, self.hd), pos_cis)
        k = rotary(self.wk(x).view(B, T, self.kv_heads, self.hd), pos_cis)
        v = self.wv(x).view(B, T, self.kv_heads, self.hd)
        rep = self.heads // self.kv_heads  # repeat_kv
        k = k[:, :, :, None, :].expand(B, T, self.kv_heads, rep, self.hd).reshape(B, T, self.heads, self.hd)
        v = v[:, :, :, None, :].expand(B, T, self.kv_heads, rep, self.hd).reshape(B, T, self.heads, self.hd)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if self.use_sdpa:
            return self.wo(F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, -1))
        scores = q @ k.transpose(2, 3) / math.sqrt(self.hd) + torch.full((T, T), float("-inf")).triu(1)
        out = F.softmax(scores.float(), dim=-1).type_as(q) @ v
        return self.wo(out.transpose(1, 2).reshape(B, T, -1))


class FeedForward(torch.nn.Module):
    def __init__(self, dim, multiple_of=64):
        super().__init__()
        hidden = multiple_of * ((int(2 * 4 * dim / 3) + multiple_of - 1) // multiple_of)
        self.w1 = torch.nn.Linear(dim, hidden, bias=False)
        self.w2 = torch.nn.Linear(hidden, dim, bias=False)
        self.w3 = torch.nn.Linear(dim, hidden, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(torch.nn.Module):
    def __init__(self, dim, heads, kv_heads):
        super().__init__()
        self.attention, self.feed_forward = Attention(dim, heads, kv_heads), FeedForward(dim)
        self.attention_norm, self.ffn_norm = RMSNorm(dim, 1e-5), RMSNorm(dim, 1e-5)

    def forward(self, x, pos_cis):
        h = x + self.attention(self.attention_norm(x), pos_cis)
        return h + self.feed_forward(self.ffn_norm(h))


class MiniMind(torch.nn.Module):
    def __init__(self, dim=64, layers=2, heads=4, kv_heads=2, vocab=512, theta=1e6, max_positions=512):
        super().__init__()
        self.tok_embeddings = torch.nn.Embedding(vocab, dim)
        self.layers = torch.nn.ModuleList(Block(dim, heads, kv_heads) for _ in range(layers))
        self.norm = RMSNorm(dim, 1e-5)
        self.output = torch.nn.Linear(dim, vocab, bias=False)
        self.tok_embeddings.weight = self.output.weight
        hd = dim // heads
        freqs = 1.0 / (theta ** (torch.arange(0, hd, 2)[: hd // 2].float() / hd))
        angles = torch.outer(torch.arange(max_positions).float(), freqs)
        self.register_buffer("pos_cis", torch.polar(torch.ones_like(angles), angles), persistent=False)

    def forward(self, tokens):
        h = self.tok_embeddings(tokens)
        for layer in self.layers:
            h = layer(h, self.pos_cis[: tokens.shape[1]])
        return self.output(self.norm(h))
