#!/usr/bin/env python3
"""A compact PyTorch llama decoder with per-row multi-LoRA: the peer engine of the runner benchmark.

The runner benchmark (scripts/bench/runner.ts) reports our onnxruntime engine's tokens/s on its own. A number
on its own says little about whether the engine is fast, so this is what a small engine team would write in
PyTorch for the same model and workload, and the benchmark reports it beside our engine as a ratio:

- the Hugging Face model directory the benchmark writes (config.json + safetensors, llama / mistral / qwen2
  layout), bf16 on CUDA and fp32 on CPU, with a static KV cache [layers, batch, kv_heads, max_len, head_dim];
- RoPE from config.json (default, linear and llama3 scaling), RMSNorm, SwiGLU, grouped-query attention
  through scaled_dot_product_attention (query heads folded onto their KV head, so K/V are never repeated);
- every adapter's A and B stacked per linear ([S+1, in, r] and [S+1, r, out], slot 0 zeros, the PEFT scale
  folded into B), each row gathering its slot's stacks for a batched matmul: y = x W^T + s (x A^T) B^T;
- one prefill forward for the whole batch, then one token per step, greedy; the decode step either eager
  or captured once in a CUDA graph and replayed. The host syncs after prefill (to time it) and at the end,
  never per decode step: next ids stay on the device.

Workload as runner.ts / runner-scenarios.ts: batch rows of seeded prompt ids, scenarios "base" (no LoRA
work at all), "one" (every row adapter a0) and "mixed" (row i adapter a_i). tokens/s counts generated
tokens over wall time, prefill included, median of the repeats after one warm-up.

  python3 scripts/bench/torch_decoder.py --model-dir .data/bench/h200 --batch 32 --prompt 64 --new 32 \
      --adapters 32 --repeats 3 --modes eager,graph --json torch-peer.json
  python3 scripts/bench/torch_decoder.py --model-dir DIR --check-tokens prompts.json --json tokens.json

--check-tokens reads {"prompts": [[ids]], "adapters": [name or null per row], "new": N} (names are folders
under <model-dir>/adapters, or paths) and writes the greedy ids per row (exactly N, no stop at EOS), so
another engine's outputs can be compared with these. Needs torch (and safetensors, else a small built-in
reader is used); not transformers.
"""

import argparse
import json
import math
import os
import re
import statistics
import struct
import sys
import time

import torch
import torch.nn.functional as F

LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# Linears that read the same input run as one GEMM; their LoRA runs as one gathered bmm pair (A's
# concatenated along r, B block-diagonal), which is the same sum of products as one pair per module.
GROUPS = {"qkv": ("q_proj", "k_proj", "v_proj"), "o": ("o_proj",), "gate_up": ("gate_proj", "up_proj"),
          "down": ("down_proj",)}
PARENT = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn",
          "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}


# ---------------------------------------------------------------------------------------------- weights

_ST_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
              "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
              "BOOL": torch.bool}


def load_safetensors(path):
    """name -> CPU tensor. Uses the safetensors package when it is installed, else reads the format itself."""
    try:
        from safetensors.torch import load_file
    except ImportError:
        load_file = None
    if load_file is not None:
        return load_file(path)
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = bytearray(f.read())
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dtype = _ST_DTYPES[info["dtype"]]
        flat = torch.frombuffer(data, dtype=dtype, count=(end - begin) // torch.tensor([], dtype=dtype).element_size(),
                                offset=begin) if end > begin else torch.empty(0, dtype=dtype)
        out[name] = flat.reshape(info["shape"])
    return out


def load_model_weights(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    weights = {}
    for name in files:
        weights.update(load_safetensors(os.path.join(model_dir, name)))
    return weights


def read_json(path):
    with open(path) as f:
        return json.load(f)


# ------------------------------------------------------------------------------------------------- rope

def rope_inv_freq(config, head_dim):
    """transformers' modeling_rope_utils: default, linear and llama3 (rope_parameters too, transformers 5)."""
    params = config.get("rope_parameters")
    if isinstance(params, dict):
        theta, scaling = params.get("rope_theta", config.get("rope_theta", 10000.0)), params
    else:
        theta, scaling = config.get("rope_theta", 10000.0), config.get("rope_scaling") or {}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    if kind == "default":
        return inv
    if kind == "linear":
        return inv / scaling["factor"]
    if kind == "llama3":
        factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
        old = scaling["original_max_position_embeddings"]
        low_wavelen, high_wavelen = old / low, old / high
        wavelen = 2 * math.pi / inv
        scaled = torch.where(wavelen > low_wavelen, inv / factor, inv)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
        return torch.where(medium, smoothed, scaled)
    raise SystemExit(f"config.json rope type {kind!r} is not supported (default, linear, llama3)")


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


# ---------------------------------------------------------------------------------------------- adapters

def pattern_value(patterns, module, default):
    """PEFT's rank_pattern / alpha_pattern: the first key with re.match(rf"(.*\\.)?({key})$", module)."""
    for key, value in (patterns or {}).items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


_LORA_KEY = re.compile(r"(?:^|\.)(model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+))\.lora_([AB])(?:\.[\w-]+)?\.weight$")


def read_adapter(path):
    """{(layer, linear): (A [r, in], B [out, r], scale)} in float32, as PEFT's LoraLayer holds them."""
    config = read_json(os.path.join(path, "adapter_config.json"))
    if config.get("peft_type", "LORA") != "LORA" or config.get("use_dora"):
        raise SystemExit(f"{path}: only plain LoRA adapters are supported")
    tensors = load_safetensors(os.path.join(path, "adapter_model.safetensors"))
    parts = {}
    for name, t in tensors.items():
        m = _LORA_KEY.search(name)
        if not m:
            raise SystemExit(f"{path}: tensor {name!r} is not a LoRA A/B of a decoder linear")
        module, layer, linear, which = m.group(1), int(m.group(2)), m.group(4), m.group(5)
        parts.setdefault((layer, linear, module), {})[which] = t.float()
    out = {}
    for (layer, linear, module), ab in parts.items():
        r = pattern_value(config.get("rank_pattern"), module, config["r"])
        alpha = pattern_value(config.get("alpha_pattern"), module, config["lora_alpha"])
        if ab["A"].shape[0] != r or ab["B"].shape[1] != r:
            raise SystemExit(f"{path}: {module} has rank {ab['A'].shape[0]}; adapter_config.json gives {r}")
        scale = alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r
        out[(layer, linear)] = (ab["A"], ab["B"], scale)
    return out


# ----------------------------------------------------------------------------------------------- decoder

class Decoder:
    def __init__(self, model_dir, device, dtype, max_batch, max_len, adapter_dirs=()):
        c = read_json(os.path.join(model_dir, "config.json"))
        self.device, self.dtype = device, dtype
        self.hidden, self.layers = c["hidden_size"], c["num_hidden_layers"]
        self.heads, self.kv_heads = c["num_attention_heads"], c.get("num_key_value_heads", c["num_attention_heads"])
        self.head_dim = c.get("head_dim") or self.hidden // self.heads
        self.group = self.heads // self.kv_heads
        self.vocab, self.eps = c["vocab_size"], c.get("rms_norm_eps", 1e-6)
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        self.out_features = {"q_proj": q, "k_proj": kv, "v_proj": kv, "o_proj": self.hidden,
                             "gate_proj": c["intermediate_size"], "up_proj": c["intermediate_size"],
                             "down_proj": self.hidden}
        self.in_features = {"q_proj": self.hidden, "k_proj": self.hidden, "v_proj": self.hidden, "o_proj": q,
                            "gate_proj": self.hidden, "up_proj": self.hidden, "down_proj": c["intermediate_size"]}

        w = load_model_weights(model_dir)
        put = lambda t: t.to(device=device, dtype=dtype).contiguous()
        self.embed = put(w["model.embed_tokens.weight"])
        self.lm_head = self.embed if c.get("tie_word_embeddings", False) else put(w["lm_head.weight"])
        self.final_norm = put(w["model.norm.weight"])
        self.layer = []
        for l in range(self.layers):
            p = f"model.layers.{l}"
            get = lambda m, kind="weight": w.get(f"{p}.{PARENT[m]}.{m}.{kind}")
            layer = {"in_norm": put(w[f"{p}.input_layernorm.weight"]),
                     "post_norm": put(w[f"{p}.post_attention_layernorm.weight"])}
            for g, members in GROUPS.items():
                layer[g] = put(torch.cat([get(m) for m in members]))
                biases = [get(m, "bias") for m in members]  # qwen2: q, k and v have one
                layer[g + "_bias"] = (put(torch.cat([torch.zeros(self.out_features[m]) if b is None else b.float()
                                                     for m, b in zip(members, biases)]))
                                      if any(b is not None for b in biases) else None)
            self.layer.append(layer)
        del w

        # RoPE tables for every position, fp32 like transformers, then in the model's dtype.
        inv = rope_inv_freq(c, self.head_dim)
        freqs = torch.outer(torch.arange(max_len, dtype=torch.float32), inv)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.cos, self.sin = emb.cos().to(device, dtype), emb.sin().to(device, dtype)

        shape = (self.layers, max_batch, self.kv_heads, max_len, self.head_dim)
        self.k_cache = torch.zeros(shape, device=device, dtype=dtype)
        self.v_cache = torch.zeros(shape, device=device, dtype=dtype)
        self.max_len, self.max_batch = max_len, max_batch
        self.key_pos = torch.arange(max_len, device=device)
        self.slots = 1 + len(adapter_dirs)
        self._stack_adapters([read_adapter(d) for d in adapter_dirs])

    def _stack_adapters(self, adapters):
        """Per layer and group: A [S+1, in, R], B [S+1, R, out] with the scale in B; slot 0 stays zeros."""
        self.lora = [{} for _ in range(self.layers)]
        for l in range(self.layers):
            for g, members in GROUPS.items():
                ranks = [max([a[(l, m)][0].shape[0] for a in adapters if (l, m) in a], default=0) for m in members]
                if sum(ranks) == 0:
                    continue
                a_stack = torch.zeros(self.slots, self.in_features[members[0]], sum(ranks))
                b_stack = torch.zeros(self.slots, sum(ranks), sum(self.out_features[m] for m in members))
                for s, adapter in enumerate(adapters, start=1):
                    r0, c0 = 0, 0
                    for m, rank in zip(members, ranks):
                        if (l, m) in adapter:
                            a, b, scale = adapter[(l, m)]
                            a_stack[s, :, r0:r0 + a.shape[0]] = a.t()
                            b_stack[s, r0:r0 + a.shape[0], c0:c0 + b.shape[0]] = b.t() * scale
                        r0, c0 = r0 + rank, c0 + self.out_features[m]
                self.lora[l][g] = (a_stack.to(self.device, self.dtype), b_stack.to(self.device, self.dtype))

    def rms_norm(self, x, weight):
        x32 = x.float()
        return weight * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)

    def linear(self, x, l, g, slots):
        y = F.linear(x, self.layer[l][g], self.layer[l][g + "_bias"])
        if slots is not None and g in self.lora[l]:
            a, b = self.lora[l][g]
            y = y + torch.bmm(torch.bmm(x, a[slots]), b[slots])  # each row its own slot's A and B
        return y

    def attention(self, q, k, v, mask):
        """q [B, H, T, D]; k, v [B, KVH, L, D]; mask [B, 1, T, L] (True = attend). The G query heads of a KV
        head become G·T query rows of that head, so SDPA reads each K/V head once."""
        b, _, t, d = q.shape
        q = q.reshape(b, self.kv_heads, self.group * t, d)
        mask = mask.unsqueeze(2).expand(b, 1, self.group, t, mask.shape[-1]).reshape(b, 1, self.group * t, -1)
        if hasattr(F, "scaled_dot_product_attention"):
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:  # torch < 2.0
            scores = (q.float() @ k.float().transpose(-1, -2)) / math.sqrt(d)
            out = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1).to(q.dtype) @ v
        return out.reshape(b, self.heads, t, d)

    def forward(self, ids, positions, mask, slots, cache_index=None):
        """ids, positions [B, T]; mask [B, 1, T, keys]. Prefill (cache_index None) writes K/V at 0..T-1 and
        attends to them; decode writes position cache_index ([1]) and attends over the whole cache. Returns
        the greedy next id per row, from each row's last position."""
        b, t = ids.shape
        x = F.embedding(ids, self.embed)
        cos, sin = self.cos[positions].unsqueeze(2), self.sin[positions].unsqueeze(2)  # [B, T, 1, D]
        q_size, kv_size = self.heads * self.head_dim, self.kv_heads * self.head_dim
        for l in range(self.layers):
            h = self.rms_norm(x, self.layer[l]["in_norm"])
            q, k, v = self.linear(h, l, "qkv", slots).split((q_size, kv_size, kv_size), dim=-1)
            q = q.view(b, t, self.heads, self.head_dim)
            k = k.view(b, t, self.kv_heads, self.head_dim)
            q = (q * cos + rotate_half(q) * sin).transpose(1, 2)
            k = (k * cos + rotate_half(k) * sin).transpose(1, 2)
            v = v.view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
            kc, vc = self.k_cache[l, :b], self.v_cache[l, :b]
            if cache_index is None:
                kc[:, :, :t].copy_(k)
                vc[:, :, :t].copy_(v)
            else:
                kc.index_copy_(2, cache_index, k)
                vc.index_copy_(2, cache_index, v)
                k, v = kc, vc
            attn = self.attention(q, k, v, mask).transpose(1, 2).reshape(b, t, q_size)
            x = x + self.linear(attn, l, "o", slots)
            h = self.rms_norm(x, self.layer[l]["post_norm"])
            gate, up = self.linear(h, l, "gate_up", slots).chunk(2, dim=-1)
            x = x + self.linear(F.silu(gate) * up, l, "down", slots)
        logits = F.linear(self.rms_norm(x[:, -1], self.final_norm), self.lm_head)
        return logits.argmax(dim=-1)

    def prefill(self, ids, pad, slots):
        """ids [B, T], left-padded by pad [B]. A padding position attends to itself only (its K/V stay finite
        and no real position ever sees them)."""
        t = ids.shape[1]
        j = torch.arange(t, device=self.device)
        positions = (j[None, :] - pad[:, None]).clamp(min=0)
        causal = j[None, :] <= j[:, None]  # [T(query), T(key)]
        real_key = j[None, None, :] >= pad[:, None, None]  # [B, 1, T]
        mask = (causal[None] & (real_key | torch.eye(t, dtype=torch.bool, device=self.device)[None]))
        return self.forward(ids, positions, mask.unsqueeze(1), slots)

    def decode(self, ids, cache_index, pad, slots):
        """One token per row at cache position cache_index ([1], a tensor so a captured graph can replay)."""
        valid = (self.key_pos[None, :] <= cache_index) & (self.key_pos[None, :] >= pad[:, None])  # [B, L]
        positions = (cache_index - pad)[:, None]
        return self.forward(ids, positions, valid[:, None, None, :], slots, cache_index)


class Runner:
    """Drives prefill + decode with static buffers, eagerly or by replaying a captured decode graph."""

    def __init__(self, dec):
        self.dec, self.graphs = dec, {}

    def _buffers(self, b, lora):
        d = self.dec.device
        return {"ids": torch.zeros(b, 1, dtype=torch.long, device=d),
                "index": torch.zeros(1, dtype=torch.long, device=d),
                "pad": torch.zeros(b, dtype=torch.long, device=d),
                "slots": torch.zeros(b, dtype=torch.long, device=d) if lora else None}

    def _step(self, buf):
        return self.dec.decode(buf["ids"], buf["index"], buf["pad"], buf["slots"])

    def capture(self, b, lora):
        key = (b, lora)
        if key in self.graphs:
            return 0.0
        start = time.perf_counter()
        buf = self._buffers(b, lora)
        buf["index"].fill_(self.dec.max_len - 1)  # warm-up writes land where no run reads before writing
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                self._step(buf)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            buf["next"] = self._step(buf)
        torch.cuda.synchronize()
        self.graphs[key] = (graph, buf)
        return (time.perf_counter() - start) * 1000

    def generate(self, ids, pad, slots, new, mode):
        """ids [B, T] on the device, pad [B], slots [B] or None. Returns ([B, new] ids, total ms, prefill ms,
        ms per decode step)."""
        dec, b, t = self.dec, ids.shape[0], ids.shape[1]
        if t + new - 1 > dec.max_len or b > dec.max_batch:
            raise SystemExit(f"batch {b} x {t}+{new} tokens exceeds the cache ({dec.max_batch} x {dec.max_len})")
        lora = slots is not None
        if mode == "graph":
            graph, buf = self.graphs[(b, lora)]
        else:
            graph, buf = None, self._buffers(b, lora)
        out = torch.empty(b, new, dtype=torch.long, device=dec.device)
        buf["pad"].copy_(pad)
        if lora:
            buf["slots"].copy_(slots)
        sync()
        start = time.perf_counter()
        nxt = dec.prefill(ids, buf["pad"], buf["slots"])
        out[:, 0] = nxt
        sync()
        prefilled = time.perf_counter()
        buf["index"].fill_(t)
        for step in range(1, new):
            buf["ids"].copy_(nxt[:, None])
            if graph is not None:
                graph.replay()
                nxt = buf["next"]
            else:
                nxt = self._step(buf)
            out[:, step] = nxt
            buf["index"].add_(1)
        sync()
        end = time.perf_counter()
        return out, (end - start) * 1000, (prefilled - start) * 1000, (end - prefilled) * 1000 / max(1, new - 1)


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


# ------------------------------------------------------------------------------------------------- runs

def prompt_for(row, length, vocab):
    """runner-scenarios.ts promptFor: the same seeded ids per row."""
    return [3 + ((row * 7919 + j * 104729) % (vocab - 3)) for j in range(length)]


def adapter_dir(model_dir, name):
    return name if os.path.isdir(name) else os.path.join(model_dir, "adapters", name)


def padded(prompts, device):
    t = max(len(p) for p in prompts)
    ids = torch.tensor([[0] * (t - len(p)) + list(p) for p in prompts], dtype=torch.long, device=device)
    pad = torch.tensor([t - len(p) for p in prompts], dtype=torch.long, device=device)
    return ids, pad


def check_tokens(args, device, dtype):
    spec = read_json(args.check_tokens)
    prompts, names, new = spec["prompts"], spec.get("adapters") or [None] * len(spec["prompts"]), spec["new"]
    distinct = sorted({n for n in names if n is not None})
    dec = Decoder(args.model_dir, device, dtype, len(prompts), max(len(p) for p in prompts) + new,
                  [adapter_dir(args.model_dir, n) for n in distinct])
    runner = Runner(dec)
    mode = args.modes.split(",")[0]
    slot_of = {n: i + 1 for i, n in enumerate(distinct)}
    slots = (torch.tensor([slot_of.get(n, 0) for n in names], device=device) if distinct else None)
    ids, pad = padded(prompts, device)
    with torch.inference_mode():
        if mode == "graph":
            runner.capture(len(prompts), slots is not None)
        out = runner.generate(ids, pad, slots, new, mode)[0]
    result = {"tokens": out.tolist(), "adapters": names, "mode": mode, "dtype": str(dtype).replace("torch.", ""),
              "device": device_name(device), "torch": torch.__version__}
    text = json.dumps(result)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def bench(args, device, dtype):
    names = [f"a{k}" for k in range(args.adapters)]
    for n in names:
        if not os.path.exists(os.path.join(adapter_dir(args.model_dir, n), "adapter_config.json")):
            raise SystemExit(f"{adapter_dir(args.model_dir, n)}: no adapter (write them with the runner benchmark)")
    load_start = time.perf_counter()
    dec = Decoder(args.model_dir, device, dtype, args.batch, args.prompt + args.new,
                  [adapter_dir(args.model_dir, n) for n in names])
    sync()
    load_ms = (time.perf_counter() - load_start) * 1000
    runner = Runner(dec)
    rows = lambda b: torch.tensor([prompt_for(i, args.prompt, dec.vocab) for i in range(b)], device=device)
    zeros = lambda b: torch.zeros(b, dtype=torch.long, device=device)
    scenarios = {
        "base": (args.batch, None),
        "one": (args.batch, torch.ones(args.batch, dtype=torch.long, device=device) if args.adapters else None),
        "mixed": (args.batch, (torch.arange(args.batch, device=device) % max(1, args.adapters)) + 1
                  if args.adapters else None),
    }
    result = {"engine": "torch_decoder.py", "torch": torch.__version__, "device": device_name(device),
              "dtype": str(dtype).replace("torch.", ""), "model_dir": args.model_dir,
              "workload": {"batch": args.batch, "prompt": args.prompt, "new": args.new, "adapters": args.adapters,
                           "repeats": args.repeats},
              "load_ms": load_ms, "modes": {}}
    with torch.inference_mode():
        for mode in args.modes.split(","):
            if mode == "graph" and device.type != "cuda":
                print("graph mode needs CUDA; skipped", file=sys.stderr)
                continue
            capture_ms = 0.0
            if mode == "graph":
                for b, slots in list(scenarios.values()) + [(1, None)]:
                    capture_ms += runner.capture(b, slots is not None)
            out = {"capture_ms": capture_ms} if mode == "graph" else {}
            for name, (b, slots) in scenarios.items():
                if name != "base" and slots is None:
                    continue
                ids = rows(b)
                runner.generate(ids, zeros(b), slots, args.new, mode)  # warm-up
                runs = [runner.generate(ids, zeros(b), slots, args.new, mode) for _ in range(args.repeats)]
                seconds = [total / 1000 for _, total, _, _ in runs]
                out[name] = {"tokens_per_s": statistics.median(b * args.new / s for s in seconds),
                             "prefill_ms": statistics.median(r[2] for r in runs),
                             "decode_step_ms": statistics.median(r[3] for r in runs),
                             "runs_tokens_per_s": [b * args.new / s for s in seconds]}
                if name == "mixed":  # the tokens themselves, to show the mixed batch is deterministic
                    out[name]["first_row_tokens"] = runs[-1][0][0].tolist()
            ids = rows(1)
            runner.generate(ids, zeros(1), None, args.new, mode)
            out["batch1_base_decode_ms_per_token"] = statistics.median(
                runner.generate(ids, zeros(1), None, args.new, mode)[3] for _ in range(args.repeats))
            result["modes"][mode] = out
    return result


def print_table(result):
    w = result["workload"]
    print(f"\ntorch peer: {result['device']}, torch {result['torch']}, {result['dtype']}; batch {w['batch']} x "
          f"{w['prompt']}-token prompts, {w['new']} new tokens, {w['adapters']} adapters, median of {w['repeats']}")
    print(f"{'mode':<6} {'scenario':<8} {'tokens/s':>10} {'prefill ms':>11} {'step ms':>9}")
    for mode, out in result["modes"].items():
        for name in ("base", "one", "mixed"):
            if name in out:
                r = out[name]
                print(f"{mode:<6} {name:<8} {r['tokens_per_s']:>10.1f} {r['prefill_ms']:>11.2f} "
                      f"{r['decode_step_ms']:>9.3f}")
        print(f"{mode:<6} {'batch-1 base decode':<29} {out['batch1_base_decode_ms_per_token']:>9.3f} ms/token")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--adapters", type=int, default=32, help="adapters a0..a(N-1) under <model-dir>/adapters")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--modes", default=None, help="eager,graph (default: both on CUDA, eager on CPU)")
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    ap.add_argument("--dtype", default=None, help="bfloat16, float16 or float32 (default: bf16 on CUDA, fp32 on CPU)")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (torch.set_num_threads)")
    ap.add_argument("--check-tokens", default=None, help="greedy ids for the prompts in this JSON file")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.bfloat16 if device.type == "cuda" else torch.float32)
    args.modes = args.modes or ("eager,graph" if device.type == "cuda" else "eager")
    if args.threads:
        torch.set_num_threads(args.threads)
    if "graph" in args.modes.split(",") and device.type != "cuda" and args.check_tokens:
        raise SystemExit("graph mode needs CUDA")
    if args.check_tokens:
        return check_tokens(args, device, dtype)
    result = bench(args, device, dtype)
    print_table(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
