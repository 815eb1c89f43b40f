"""How much codec work a second CUDA stream hides under the DiT (full size, random weights, 480x832):

    python3 -m benchmarks.overlap_probe [--repeats 8] [--set model.compile_codec=false]

Per steady block it times (median of --repeats): the DiT block alone (context pass + 4 steps, CUDA
graphs), the side work alone (TAE encode of one 12-frame block, TAE decode of one block of latents,
uint8 conversion), and both launched together, the side work on a high-priority stream.
hidden = dit + side - both: what a pipelined worker could save per block.
"""
from __future__ import annotations

import argparse

import torch

from benchmarks.kernel_bench import host_ms
from model.dit_refiner import random_dit_refiner
from runtime.config import add_config_args, config_from_args

H, W = 480, 832


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=8)
    add_config_args(p)
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("overlap_probe needs a CUDA GPU")
    cfg = config_from_args(args).model
    if not cfg.use_tae:
        raise SystemExit("overlap_probe times the TAE: leave model.use_tae on")
    refiner = random_dit_refiner(cfg, "cuda", (H // 8, W // 8))
    refiner.warm_up(H, W, report=print)
    sampler, h, w = refiner.sampler, H // 8, W // 8
    ref = torch.randn(1, 3, 16, h, w, device="cuda", dtype=sampler.dtype)
    cond = torch.randn(1, 3, 20, h, w, device="cuda", dtype=sampler.dtype)
    frames = torch.rand(1, 12, 3, H, W, device="cuda") * 2 - 1                      # [1, 12, 3, H, W]
    encoder, decoder = refiner.codec.stream(), refiner.codec.stream()
    x0 = sampler.generate_block(ref, cond).clone()
    side_stream = torch.cuda.Stream(priority=-1)

    def dit():
        sampler.generate_block(ref, cond)

    def side():
        encoder.encode(frames)
        (decoder.decode(x0)[0] * 255).to(torch.uint8)

    def both(side_first: bool):
        def run():
            side_stream.wait_stream(torch.cuda.current_stream())
            if not side_first:
                dit()
            with torch.cuda.stream(side_stream):
                side()
            if side_first:
                dit()
            torch.cuda.current_stream().wait_stream(side_stream)
        return run

    for fn in (dit, side, both(True), both(False)):                                  # warm every path once
        host_ms(fn)
    result = {name: host_ms(fn, args.repeats)
              for name, fn in (("dit", dit), ("side", side), ("both_side_first", both(True)), ("both_dit_first", both(False)))}
    best = min(result["both_side_first"], result["both_dit_first"])
    result["hidden"] = result["dit"] + result["side"] - best
    print(f"{torch.cuda.get_device_name()}: DiT block {result['dit']:.1f} ms, side work {result['side']:.1f} ms, "
          f"together {result['both_side_first']:.1f} ms (side first) / {result['both_dit_first']:.1f} ms (DiT first): "
          f"hidden {result['hidden']:.1f} ms per block")
    return result


if __name__ == "__main__":
    main()
