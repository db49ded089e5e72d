#!/usr/bin/env python3
"""Hugging Face transformers + PEFT at the runner benchmark's workload: the stock multi-LoRA baseline.

The runner benchmark (scripts/bench/runner.ts) reports our engine's tokens/s beside peers, as ratios. This is
the peer that most people would reach for first: the model directory the benchmark writes, loaded with
AutoModelForCausalLM (bf16 on CUDA), the adapters with PeftModel.from_pretrained + load_adapter, and
generate(adapter_names=[...]) for PEFT's mixed-batch LoRA, where each row names its adapter. Scenarios as
runner.ts: "base" (the adapters disabled), "one" (every row adapter a0), "mixed" (row i adapter a_i); the
same seeded prompts (runner-scenarios.ts promptFor), greedy, exactly --new tokens per row (no stop at EOS).
tokens/s counts generated tokens over wall time, prefill included, median of the repeats after one warm-up;
prefill ms is the median of one-token generate() calls, and decode step ms what remains per further token.

  python3 scripts/bench/peft_generate.py --model-dir .data/bench/h200 --batch 32 --prompt 64 --new 32 \
      --adapters 32 --repeats 3 --json peft-peer.json
  python3 scripts/bench/peft_generate.py --model-dir DIR --check-tokens prompts.json --json tokens.json

--check-tokens takes the same file as torch_decoder.py ({"prompts", "adapters", "new"}, ragged prompts
left-padded) and writes the greedy ids per row. Needs torch, transformers and peft.
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch
import transformers
from peft import PeftModel
from transformers import AutoModelForCausalLM


def prompt_for(row, length, vocab):
    """runner-scenarios.ts promptFor: the same seeded ids per row."""
    return [3 + ((row * 7919 + j * 104729) % (vocab - 3)) for j in range(length)]


def adapter_dir(model_dir, name):
    return name if os.path.isdir(name) else os.path.join(model_dir, "adapters", name)


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def load(model_dir, names, device, dtype, attn):
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    dtype_arg = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"  # renamed in 4.56
    base = AutoModelForCausalLM.from_pretrained(model_dir, **{dtype_arg: dtype}, attn_implementation=attn)
    base.to(device).eval()
    # Exactly --new tokens per row, as the other engines generate them: no EOS stop.
    base.generation_config.eos_token_id = None
    base.generation_config.pad_token_id = 0
    if not names:
        return base
    model = PeftModel.from_pretrained(base, adapter_dir(model_dir, names[0]), adapter_name=names[0])
    for name in names[1:]:
        model.load_adapter(adapter_dir(model_dir, name), adapter_name=name)
    model.eval()
    return model


def lora_dtype(model):
    for name, p in model.named_parameters():
        if "lora_A" in name:
            return str(p.dtype).replace("torch.", "")
    return None


def generate(model, ids, mask, adapters, new):
    """adapters: None (base, adapters disabled) or one name per row. Returns (output ids, seconds)."""
    kwargs = dict(input_ids=ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new, do_sample=False)
    sync()
    start = time.perf_counter()
    if adapters is None:
        if isinstance(model, PeftModel):
            with model.disable_adapter():
                out = model.generate(**kwargs)
        else:
            out = model.generate(**kwargs)
    else:
        out = model.generate(**kwargs, adapter_names=adapters)
    sync()
    seconds = time.perf_counter() - start
    if out.shape[1] != ids.shape[1] + new:
        raise SystemExit(f"generate() returned {out.shape[1] - ids.shape[1]} new tokens, not {new}")
    return out[:, ids.shape[1]:], seconds


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def versions():
    import peft
    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}


def bench(args, device, dtype):
    names = [f"a{k}" for k in range(args.adapters)]
    load_start = time.perf_counter()
    model = load(args.model_dir, names, device, dtype, args.attn)
    sync()
    load_ms = (time.perf_counter() - load_start) * 1000
    vocab = model.config.vocab_size
    scenarios = {"base": None}
    if names:
        scenarios["one"] = [names[0]] * args.batch
        scenarios["mixed"] = [names[i % len(names)] for i in range(args.batch)]
    result = {"engine": "peft_generate.py", **versions(), "device": device_name(device),
              "dtype": str(dtype).replace("torch.", ""), "lora_dtype": lora_dtype(model), "attn": args.attn,
              "model_dir": args.model_dir,
              "workload": {"batch": args.batch, "prompt": args.prompt, "new": args.new, "adapters": args.adapters,
                           "repeats": args.repeats},
              "load_ms": load_ms, "scenarios": {}}
    with torch.inference_mode():
        ids = torch.tensor([prompt_for(i, args.prompt, vocab) for i in range(args.batch)], device=device)
        mask = torch.ones_like(ids)
        for name, adapters in scenarios.items():
            generate(model, ids, mask, adapters, args.new)  # warm-up
            runs = [generate(model, ids, mask, adapters, args.new)[1] for _ in range(args.repeats)]
            prefill = statistics.median(generate(model, ids, mask, adapters, 1)[1] for _ in range(args.repeats))
            total = statistics.median(runs)
            result["scenarios"][name] = {
                "tokens_per_s": statistics.median(args.batch * args.new / s for s in runs),
                "prefill_ms": prefill * 1000,
                "decode_step_ms": (total - prefill) * 1000 / max(1, args.new - 1),
                "runs_tokens_per_s": [args.batch * args.new / s for s in runs],
            }
        one, one_mask = ids[:1], mask[:1]
        generate(model, one, one_mask, None, args.new)
        total = statistics.median(generate(model, one, one_mask, None, args.new)[1] for _ in range(args.repeats))
        prefill = statistics.median(generate(model, one, one_mask, None, 1)[1] for _ in range(args.repeats))
        result["batch1_base_decode_ms_per_token"] = (total - prefill) * 1000 / max(1, args.new - 1)
    return result


def check_tokens(args, device, dtype):
    spec = read_json(args.check_tokens)
    prompts, new = spec["prompts"], spec["new"]
    names = spec.get("adapters") or [None] * len(prompts)
    distinct = sorted({n for n in names if n is not None})
    model = load(args.model_dir, distinct, device, dtype, args.attn)
    t = max(len(p) for p in prompts)
    ids = torch.tensor([[0] * (t - len(p)) + list(p) for p in prompts], device=device)
    mask = torch.tensor([[0] * (t - len(p)) + [1] * len(p) for p in prompts], device=device)
    with torch.inference_mode():
        # PEFT's name for "no adapter" in a mixed batch.
        adapters = [n if n is not None else "__base__" for n in names] if distinct else None
        out, _ = generate(model, ids, mask, adapters, new)
    result = {"tokens": out.tolist(), "adapters": names, "dtype": str(dtype).replace("torch.", ""),
              "lora_dtype": lora_dtype(model), "device": device_name(device), **versions()}
    text = json.dumps(result)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


def read_json(path):
    with open(path) as f:
        return json.load(f)


def print_table(result):
    w = result["workload"]
    print(f"\ntransformers {result['transformers']} + peft {result['peft']}: {result['device']}, {result['dtype']} "
          f"(LoRA {result['lora_dtype']}); batch {w['batch']} x {w['prompt']}-token prompts, {w['new']} new tokens, "
          f"{w['adapters']} adapters, median of {w['repeats']}")
    print(f"{'scenario':<8} {'tokens/s':>10} {'prefill ms':>11} {'step ms':>9}")
    for name, r in result["scenarios"].items():
        print(f"{name:<8} {r['tokens_per_s']:>10.1f} {r['prefill_ms']:>11.2f} {r['decode_step_ms']:>9.3f}")
    print(f"batch-1 base decode {result['batch1_base_decode_ms_per_token']:.3f} ms/token")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--adapters", type=int, default=32, help="adapters a0..a(N-1) under <model-dir>/adapters")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    ap.add_argument("--dtype", default=None, help="bfloat16, float16 or float32 (default: bf16 on CUDA, fp32 on CPU)")
    ap.add_argument("--attn", default="sdpa", help="transformers attn_implementation (sdpa, eager, ...)")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (torch.set_num_threads)")
    ap.add_argument("--check-tokens", default=None, help="greedy ids for the prompts in this JSON file")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.bfloat16 if device.type == "cuda" else torch.float32)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.check_tokens:
        return check_tokens(args, device, dtype)
    result = bench(args, device, dtype)
    print_table(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    sys.exit(main())
