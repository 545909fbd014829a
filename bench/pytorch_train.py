"""The PyTorch training step xlhost replaces, timed: MiniMind's model (tests/python/
minimind_reference.py, with its scaled_dot_product_attention path) trained as MiniMind's
train_pretrain.py trains it: AdamW (weight decay 0.1), cross-entropy, gradient clipping at
1.0, eager or torch.compile, float32 or bfloat16 autocast. With --memory, model_memory's
1.4.8 form instead (tests/python/memory_model_reference.py: product-key gate, bank rows as
mean token embeddings, cross-attention fusion with its dropouts, the balance loss).

Usage: pytorch_train.py --dim D --layers L --heads H --kv-heads K --vocab V --batch B --seq T
                        --steps N [--compile] [--bf16] [--threads 2]
                        [--memory ROWS,ROW_TOKENS,KEY_DIM,SELECTED,FUSION_HEADS,MASK,SELECTION]
Prints the mean tokens/s of the steps after the first two (compilation and warm-up).
"""
import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests/python"))
from memory_model_reference import Fusion, MemoryModel  # noqa: E402
from minimind_reference import Attention, MiniMind  # noqa: E402

parser = argparse.ArgumentParser()
for name in ("dim", "layers", "heads", "kv-heads", "vocab", "batch", "seq", "steps"):
    parser.add_argument("--" + name, type=int, required=True)
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--compile", action="store_true")
parser.add_argument("--bf16", action="store_true")
parser.add_argument("--memory", help="model_memory: rows,row_tokens,key_dim,selected,fusion_heads,mask,selection")
args = parser.parse_args()

torch.set_num_threads(args.threads)
torch.manual_seed(0)
Attention.use_sdpa = Fusion.use_sdpa = True
if args.memory:
    rows, row_tokens, key_dim, selected, fusion_heads, mask, selection = args.memory.split(",")
    model = MemoryModel({"dim": args.dim, "n_layers": args.layers, "n_heads": args.heads, "n_kv_heads": args.kv_heads,
                         "vocab_size": args.vocab, "norm_eps": 1e-5, "rope_theta": 1e6, "knowledge_num": int(rows),
                         "knowledge_length": int(row_tokens), "knowledge_dim": int(key_dim), "num_selected": int(selected),
                         "fusion_heads": int(fusion_heads), "fusion_mask": mask, "selection": selection,
                         "fusion_attention_dropout": 0.1, "fusion_dropout": 0.15, "balance_loss_coef": 0.1},
                        max_positions=args.seq)
else:
    model = MiniMind(args.dim, args.layers, args.heads, args.kv_heads, args.vocab, max_positions=args.seq)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
tokens = torch.randint(0, args.vocab, (args.batch, args.seq + 1))
inputs, targets = tokens[:, :-1], tokens[:, 1:]


def step():
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
        logits = model(inputs)
    aux = 0.0
    if args.memory:
        logits, aux = logits
    loss = F.cross_entropy(logits.float().reshape(-1, args.vocab), targets.reshape(-1)) + aux
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss


if args.compile:
    model.compile()  # as nanoGPT and MiniMind users compile: the model, not the optimizer
times = []
for _ in range(args.steps):
    start = time.perf_counter()
    step().item()
    times.append(time.perf_counter() - start)
steady = times[2:] if len(times) > 2 else times
print(f"{args.batch * args.seq * len(steady) / sum(steady):.0f}")
