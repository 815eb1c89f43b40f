"""Where the "model" stage of play's start-up goes on a GPU, in a fresh process (random weights):

    python3 [-X pycache_prefix=.cache/pycache] -m benchmarks.startup_probe [--warm-up [--profile OUT.prof] [--log-autotune]]

Times CUDA initialisation, importing torch.compile's machinery, building the full-size DiT, filling
it with random weights, and then the whole random DiT refiner (TAE, prompt K/V, KV cache, samplers).
Imports happen inside `main` on purpose: their cost is what is measured. --warm-up also times play's
warm-up (compiling or loading every shape, capturing the CUDA graphs) on this thread; --profile
runs it under cProfile and prints where its time goes; --log-autotune counts and names the Triton
kernels Inductor benchmarks at run time (a warm start should find every choice in its cache).
On an install without bytecode, `-X pycache_prefix` uses the cache that `main.py` sets up for itself
(cli/bytecode_cache.py), as play does.
"""
import argparse
import cProfile
import importlib
import pstats
import time


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--warm-up", action="store_true", help="also time the refiner's warm-up at 480x832")
    p.add_argument("--profile", help="with --warm-up: write its cProfile stats here and print the top")
    p.add_argument("--log-autotune", action="store_true", help="with --warm-up: list the kernels autotuned during it")
    args = p.parse_args(argv)
    import sys
    print("bytecode cache:", sys.pycache_prefix or "the install's")
    t0 = time.perf_counter()
    import torch
    if not torch.cuda.is_available():
        raise SystemExit("startup_probe needs a CUDA GPU")
    torch.zeros(1, device="cuda")
    torch.cuda.synchronize()
    t1 = time.perf_counter()
    importlib.import_module("torch._inductor.compile_fx")
    t2 = time.perf_counter()
    from model.config import ModelConfig
    from model.dit import CausalWanModel, DiTConfig
    from model.dit_refiner import random_dit_refiner
    model = CausalWanModel(DiTConfig(), device="cuda", dtype=torch.bfloat16)
    torch.cuda.synchronize()
    t3 = time.perf_counter()
    g = torch.Generator("cuda").manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.02, generator=g)
    torch.cuda.synchronize()
    t4 = time.perf_counter()
    del model
    refiner = random_dit_refiner(ModelConfig(), torch.device("cuda"), (60, 104))
    torch.cuda.synchronize()
    t5 = time.perf_counter()
    times = {"cuda init": t1 - t0, "import torch.compile": t2 - t1, "DiT construct": t3 - t2,
             "random init": t4 - t3, "whole random DiT refiner": t5 - t4}
    if args.warm_up:
        tuned = log_autotuning() if args.log_autotune else None
        profiler = cProfile.Profile() if args.profile else None
        if profiler:
            profiler.enable()
        refiner.warm_up(480, 832, report=print)
        torch.cuda.synchronize()
        if profiler:
            profiler.disable()
            profiler.dump_stats(args.profile)
            stats = pstats.Stats(args.profile)
            stats.sort_stats("cumulative").print_stats(40)
            stats.sort_stats("tottime").print_stats(25)
        times["warm-up"] = time.perf_counter() - t5
        if tuned is not None:
            print(f"{len(tuned)} kernels autotuned during the warm-up: {', '.join(sorted(set(tuned)))}")
    print(" | ".join(f"{k} {v:.2f} s" for k, v in times.items()))
    return times


def log_autotuning() -> list[str]:
    """From now on, record the name of every Triton kernel whose launch configurations Inductor
    benchmarks at run time (a choice its autotune cache did not have). -> the list it fills."""
    from torch._inductor.runtime.triton_heuristics import CachingAutotuner
    tuned, benchmark = [], CachingAutotuner.benchmark_all_configs

    def logged(self, *args, **kwargs):
        tuned.append(self.fn.__name__)
        return benchmark(self, *args, **kwargs)
    CachingAutotuner.benchmark_all_configs = logged
    return tuned


if __name__ == "__main__":
    main()
