"""
Generation speed, side by side in one run: this project's generate_batch() against Hugging Face
transformers' generate() on the same weights (when transformers is installed), greedy, a fixed
number of new tokens (end-of-turn ignored so every run decodes the same amount).

    python bench.py                                   # SmolLM2 fp32 on the CPU, batch 1 and 32
    python bench.py --batch 1 8 --new_tokens 32 --repeats 5
    python bench.py --shape llama3-8b --device cuda --dtype bfloat16 --batch 1 --no_hf
        # random weights of a real shape: decode tokens/s and the fraction of memory bandwidth
    python bench.py --adaptive --batch 32 --no_hf
        # the cost of token-level adaptive decoding against fixed-temperature sampling
    python bench.py --compile
        # also the compiled decode step (generate_batch(..., compile=True)): its speed and compile time
    python bench.py --configs 0,0.4,0.8,1.0,1.0/top_p=0.9,1.2/min_p=0.1 --batch 64 --no_hf
        # a decoding configuration per row (the list cycled over the rows, one batched step) against one
        # fixed configuration for every row (the list's first that truncates) and a plain temperature

    python bench.py --gpu-check
        # on a machine with an NVIDIA GPU, in minutes and with no download: the device tests, this
        # bench in bfloat16 on random weights of two real shapes, and a short train.py on cuda

Timings are medians over --repeats runs, the two implementations alternating so that the
machine's drift hits both alike.
"""
import argparse
import statistics
import sys
import time

import torch

from adaptive_head import truncates
from cli import check_device, check_settings, default_device, model_dtype, one_line_errors, parse_configs
from checkpoints import load_model
from model import Config, Transformer
from sample import config_rows, generate_batch

SHAPES = {  # random-weight models of real shapes, for machines without the real weights
    "smollm2-135m": Config(),
    "llama3-8b": Config(vocab_size=128256, n_layer=32, n_head=32, n_kv_head=8, d_model=4096, d_ff=14336,
                        head_dim=128, max_seq_len=8192, rope_theta=500000.0, tie_embeddings=False),
}


def to_hf(model):
    """The same weights in transformers' LlamaForCausalLM (splitting our fused q/k/v and gate/up)."""
    from transformers import LlamaConfig, LlamaForCausalLM
    c = model.config
    hf = LlamaForCausalLM(LlamaConfig(
        vocab_size=c.vocab_size, hidden_size=c.d_model, intermediate_size=c.d_ff, num_hidden_layers=c.n_layer,
        num_attention_heads=c.n_head, num_key_value_heads=c.n_kv_head, head_dim=c.head_dim,
        max_position_embeddings=c.max_seq_len, rms_norm_eps=c.norm_eps, rope_theta=c.rope_theta,
        tie_word_embeddings=c.tie_embeddings))
    sd = {"model.embed_tokens.weight": model.tok_emb.weight, "model.norm.weight": model.norm.weight,
          "lm_head.weight": model.lm_head.weight}
    for i, b in enumerate(model.layers):
        p = f"model.layers.{i}."
        q, k, v = b.attn.wqkv.weight.split([c.n_head * c.head_dim, c.n_kv_head * c.head_dim,
                                            c.n_kv_head * c.head_dim])
        gate, up = b.mlp.w_in.weight.chunk(2)
        sd.update({p + "input_layernorm.weight": b.attn_norm.weight,
                   p + "post_attention_layernorm.weight": b.mlp_norm.weight,
                   p + "self_attn.q_proj.weight": q, p + "self_attn.k_proj.weight": k,
                   p + "self_attn.v_proj.weight": v,
                   p + "self_attn.o_proj.weight": b.attn.wo.weight, p + "mlp.gate_proj.weight": gate,
                   p + "mlp.up_proj.weight": up, p + "mlp.down_proj.weight": b.mlp.w_out.weight})
    hf.load_state_dict({k: v.clone() for k, v in sd.items()}, strict=False)
    hf.generation_config.eos_token_id = None
    hf.generation_config.pad_token_id = 0
    return hf.to(model.lm_head.weight.device, model.lm_head.weight.dtype).eval()


def timed(fn, device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def copy_bandwidth(device, size=256 << 20):
    """Bytes per second that a large tensor copy moves, read plus written (median of 5): about what
    decoding at batch 1, which reads every weight once a token, can at best stream."""
    x = torch.ones(size // 4, device=device)
    y = torch.zeros_like(x)
    return 2 * size / statistics.median(timed(lambda: y.copy_(x), device) for _ in range(5))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2", help="weights to load (ignored with --shape)")
    p.add_argument("--shape", default=None, choices=list(SHAPES), help="random weights of this shape instead")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    p.add_argument("--prompt_len", type=int, default=32)
    p.add_argument("--new_tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default=default_device())
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                   help="default: bf16 on CUDA, fp32 on the CPU")
    p.add_argument("--no_hf", action="store_true", help="skip the transformers comparison")
    p.add_argument("--adaptive", action="store_true", help="also time token-level adaptive decoding "
                   "(a head choosing among 6 temperatures before every token) against sampling at 0.7")
    p.add_argument("--compile", action="store_true", help="also time the compiled decode step")
    p.add_argument("--gpu-check", action="store_true", help="the GPU check: tests, bench and a training run on "
                   "cuda (see above); says so and exits non-zero where there is no GPU")
    p.add_argument("--configs", default=None, help="also time sampling with these decoding configurations, "
                   "one per row, against one fixed configuration (see the examples above)")
    args = p.parse_args()
    args.configs = parse_configs(args.configs) if args.configs else None
    if args.configs and not truncates(args.configs):
        sys.exit("error: --configs: give at least one configuration that truncates (T/top_p=P or T/min_p=M)")
    check_settings(args, at_least={"batch": 1, "prompt_len": 1, "new_tokens": 1, "repeats": 1})
    check_device(args.device)
    return args


def build_model(args, dtype):
    """The weights of --model, or random ones of the --shape given."""
    if not args.shape:
        return load_model(args.model, device=args.device, dtype=dtype)
    torch.manual_seed(0)
    with torch.device(args.device):
        model = Transformer(SHAPES[args.shape]).to(dtype)
    for prm in model.parameters():  # small weights keep the activations in range
        torch.nn.init.normal_(prm, std=0.02)
    return model.eval().requires_grad_(False)


def bench_greedy(model, hf, prompts, args, bytes_per_token, bandwidth):
    """Greedy decoding of one batch of prompts: ours (eager, and compiled with --compile) and
    transformers' (hf, unless None), timed alternately; one line each."""
    B = len(prompts)
    ours = lambda: generate_batch(model, prompts.tolist(), args.new_tokens, temperature=0.0)
    compiled = lambda: generate_batch(model, prompts.tolist(), args.new_tokens, temperature=0.0, compile=True)
    theirs = lambda: hf.generate(prompts.to(args.device),
                                 attention_mask=torch.ones_like(prompts).to(args.device),
                                 max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                                 do_sample=False)
    eager_tokens = ours().tokens  # warm up (allocator, kernels)
    if args.compile:
        t_compile = timed(compiled, args.device)  # the first call of this shape compiles it
        same_compiled = compiled().tokens == eager_tokens
    if hf is not None:
        same = theirs()[:, args.prompt_len:].tolist() == eager_tokens
    runs = {"ours": ours, **({"compiled": compiled} if args.compile else {}),
            **({"transformers": theirs} if hf is not None else {})}
    times = {name: [] for name in runs}
    for _ in range(args.repeats):  # alternating, so that the machine's drift hits all alike
        for name, fn in runs.items():
            times[name].append(timed(fn, args.device))
    n = B * args.new_tokens
    tps = {name: n / statistics.median(t) for name, t in times.items()}
    for name in runs:
        if name == "transformers":
            continue
        line = f"batch {B:3d}: {name:8s} {tps[name]:8.1f} tok/s"
        if B == 1:
            streamed = bytes_per_token * tps[name]
            line += f" ({streamed / 1e9:.1f} GB/s of weights, {streamed / bandwidth:.0%} of bandwidth)"
        if name == "compiled":
            compile_s = t_compile - statistics.median(times[name])
            line += f" | compile {compile_s:.0f}s | same tokens: {same_compiled}"
        if hf is not None:
            line += f" | {tps[name] / tps['transformers']:.2f}x transformers"
        print(line, flush=True)
    if hf is not None:
        print(f"batch {B:3d}: transformers {tps['transformers']:8.1f} tok/s | same tokens: {same}",
              flush=True)


def bench_adaptive(model, prompts, args):
    """Token-level adaptive decoding (a head with random, non-uniform choices) against sampling at a
    fixed temperature, on one batch of prompts; one line."""
    from adaptive_head import AdaptiveDecoder
    B = len(prompts)
    head = AdaptiveDecoder(model.config.d_model, level="token").to(args.device)
    torch.nn.init.normal_(head.mlp[-1].weight, std=0.1)  # not uniform: a real choice per token
    fixed = lambda: generate_batch(model, prompts.tolist(), args.new_tokens, temperature=0.7, seed=0)
    adaptive = lambda: generate_batch(model, prompts.tolist(), args.new_tokens, head=head, seed=0)
    t_fixed, t_ad = [], []
    for _ in range(args.repeats):
        t_fixed.append(timed(fixed, args.device))
        t_ad.append(timed(adaptive, args.device))
    n = B * args.new_tokens
    f_tps, a_tps = n / statistics.median(t_fixed), n / statistics.median(t_ad)
    print(f"batch {B:3d}: fixed temperature 0.7 {f_tps:8.1f} tok/s | adaptive (token level) "
          f"{a_tps:8.1f} tok/s | cost {100 * (1 - a_tps / f_tps):.1f}%", flush=True)


def bench_configs(model, prompts, args):
    """Sampling with a decoding configuration per row (args.configs cycled over the rows, as the head's
    choices or evaluation's fixed configurations decode) against one fixed configuration for every row
    (the first of args.configs that truncates) and against temperature 1 alone, timed alternately; one line."""
    from adaptive_head import config_name
    from evaluate import config_settings
    B, ps = len(prompts), prompts.tolist()
    per_row = [args.configs[i % len(args.configs)] for i in range(B)]
    kw = config_rows(per_row, 1)
    kw.pop("random_rows")
    fixed = next(c for c in args.configs if c[1] is not None or c[2] is not None)
    runs = {"per-row": lambda: generate_batch(model, ps, args.new_tokens, seed=0, **kw),
            "fixed": lambda: generate_batch(model, ps, args.new_tokens, seed=0, **config_settings(fixed)),
            "plain": lambda: generate_batch(model, ps, args.new_tokens, seed=0, temperature=1.0)}
    for fn in runs.values():  # warm up
        fn()
    times = {name: [] for name in runs}
    for _ in range(args.repeats):  # alternating, so that the machine's drift hits all alike
        for name, fn in runs.items():
            times[name].append(timed(fn, args.device))
    tps = {name: B * args.new_tokens / statistics.median(t) for name, t in times.items()}
    print(f"batch {B:3d}: per-row configurations {tps['per-row']:8.1f} tok/s | fixed {config_name(fixed)} for every row "
          f"{tps['fixed']:8.1f} tok/s | temperature 1 alone {tps['plain']:8.1f} tok/s | per-row against fixed: "
          f"cost {100 * (1 - tps['per-row'] / tps['fixed']):.1f}%", flush=True)


def gpu_check(args):
    """--gpu-check, on a machine with an NVIDIA GPU: (i) the tests of generation, the head and the losses
    on cuda against the CPU (tests/test_devices.py); (ii) this bench at batch 1 and 32 in bfloat16, eager
    and compiled (CUDA graphs), on random weights of SmolLM2-135M's and Llama-3-8B's shapes, with the
    fraction of the memory bandwidth batch 1 reaches; (iii) a short train.py on cuda with the embedded
    model, ending in report.json. Each part says what it found; the exit status is 0 only if all passed."""
    import subprocess
    import tempfile
    from pathlib import Path
    if not torch.cuda.is_available():
        sys.exit("error: --gpu-check needs an NVIDIA GPU, and torch sees none here (torch.cuda.is_available() "
                 "is False); run it on a GPU machine")
    root, t0, failed = Path(__file__).resolve().parent, time.time(), []
    print(f"GPU: {torch.cuda.get_device_name()}, {torch.cuda.mem_get_info()[1] / 2 ** 30:.0f} GiB, torch "
          f"{torch.__version__}, CUDA {torch.version.cuda}", flush=True)
    print("(i) tests on cuda: generation, the head, the losses (tests/test_devices.py)", flush=True)
    if subprocess.run([sys.executable, "-m", "pytest", "-q", str(root / "tests/test_devices.py")], cwd=root).returncode:
        failed.append("the device tests")
    print("(ii) bench: bfloat16, random weights, prompt 32, 64 new tokens, greedy, median of 3", flush=True)
    args.device, args.compile, args.new_tokens, args.repeats, args.prompt_len = "cuda", True, 64, 3, 32
    bandwidth = copy_bandwidth("cuda")
    print(f"memory bandwidth: a 256 MB device-to-device copy moves {bandwidth / 1e9:.0f} GB/s (read + written)")
    g = torch.Generator().manual_seed(0)
    for args.shape in SHAPES:
        model = build_model(args, torch.bfloat16)
        n_params = sum(p.numel() for p in model.parameters())
        print(f"{args.shape}: {n_params / 1e9:.2f}B parameters", flush=True)
        for B in (1, 32):
            prompts = torch.randint(100, model.config.vocab_size, (B, args.prompt_len), generator=g)
            bench_greedy(model, None, prompts, args, 2 * n_params, bandwidth)
        del model
        torch.cuda.empty_cache()
    print("(iii) train.py on cuda: the embedded model, a tiny synthetic run", flush=True)
    with tempfile.TemporaryDirectory() as out:
        r = subprocess.run([sys.executable, str(root / "train.py"), "--device", "cuda", "--task", "synthetic",
                            "--level", "token", "--rounds", "1", "--prompts_per_round", "16", "--test_prompts", "8",
                            "--val_prompts", "4", "--n_samples", "4", "--max_new_tokens", "16", "--compare", "all",
                            "--out_dir", out], cwd=root)
        if r.returncode or not (Path(out) / "report.json").exists():
            failed.append("the training run")
    print(f"GPU check done in {time.time() - t0:.0f} s: " + (f"FAILED: {', '.join(failed)}" if failed else "all passed"))
    sys.exit(1 if failed else 0)


def main():
    args = parse_args()
    one_line_errors()  # a user's mistake (a missing file, a bad weight file...) is one line, not a traceback
    if args.gpu_check:
        gpu_check(args)
    dtype = model_dtype(args.dtype, args.device)
    model = build_model(args, dtype)
    if args.prompt_len + args.new_tokens > model.config.max_seq_len:
        sys.exit(f"error: --prompt_len {args.prompt_len} plus --new_tokens {args.new_tokens} is longer than the "
                 f"model's context of {model.config.max_seq_len} tokens")
    hf = None
    if not args.no_hf:
        try:
            hf = to_hf(model)
        except ImportError:
            print("transformers is not installed: measuring this project only")
    n_params = sum(p.numel() for p in model.parameters())
    bytes_per_token = n_params * model.lm_head.weight.element_size()  # every weight read once a step
    print(f"{args.model if not args.shape else args.shape}: {n_params / 1e6:.0f}M parameters, {dtype}, "
          f"{args.device}, prompt {args.prompt_len}, {args.new_tokens} new tokens, greedy, "
          f"median of {args.repeats}, torch threads {torch.get_num_threads()}")
    bandwidth = copy_bandwidth(args.device)
    print(f"memory bandwidth: a 256 MB tensor copy moves {bandwidth / 1e9:.1f} GB/s (read + written)")

    g = torch.Generator().manual_seed(0)
    for B in args.batch:
        prompts = torch.randint(100, model.config.vocab_size, (B, args.prompt_len), generator=g)
        bench_greedy(model, hf, prompts, args, bytes_per_token, bandwidth)
        if args.adaptive:
            bench_adaptive(model, prompts, args)
        if args.configs:
            bench_configs(model, prompts, args)


if __name__ == "__main__":
    main()
