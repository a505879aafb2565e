"""What streaming through the transformers backend costs, against a plain ``model.generate``.

Builds a random-weight Mixtral-architecture model (size from the flags; Mixtral's real
tokenizer), loads it through the backend, then generates the same greedy reply twice: once
streamed through ``Backend.stream`` (worker thread, ``TextIteratorStreamer``, stopping
criterion, event loop) and once with a plain ``model.generate`` on the same loaded model and
the same prompt ids, also in a worker thread (on the CPU, PyTorch ran the tiny model 2-3x
slower from the main thread than from any other thread, which would flatter streaming). Prints a markdown table of tokens/s, time to first token and peak
memory (CUDA: ``max_memory_allocated``; CPU: peak resident memory of the process sampled
during the run), and the streaming overhead ratio.

    python benchmarks/transformers_stream.py --hidden 64 --layers 2 --tokens 64        # CPU, tiny
    python benchmarks/transformers_stream.py --device cuda --dtype bfloat16 \\
        --hidden 1024 --layers 8 --experts 8 --intermediate 3584 --tokens 256
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from mixchat.backends import ChatRequest, Done
from mixchat.backends.transformers import TransformersBackend
from mixchat.config import SamplingParams, load_settings
from tiny_mixtral_hf import build_tiny_mixtral

PROMPT = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]


@dataclass
class Run:
    tokens: int
    seconds: float
    first_token: float | None
    peak_bytes: int

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds


class PeakMemory:
    """Peak memory during a block: CUDA's allocator counter, or sampled RSS on the CPU."""

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")
        self.peak = 0

    @contextmanager
    def measure(self) -> Iterator[None]:
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            yield
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated()
            return
        done = threading.Event()
        self.peak = _rss()

        def sample() -> None:
            while not done.wait(0.002):
                self.peak = max(self.peak, _rss())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            yield
        finally:
            done.set()
            sampler.join()
            self.peak = max(self.peak, _rss())


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def streamed(backend: TransformersBackend, tokens: int, memory: PeakMemory) -> Run:
    request = ChatRequest(PROMPT, params=SamplingParams(temperature=0, max_tokens=tokens))
    with memory.measure():
        async for event in backend.stream(request):
            if isinstance(event, Done):
                done = event
    if not done.ok:
        raise SystemExit(f"the backend failed: {done.error}")
    return Run(done.completion_tokens, done.duration, done.time_to_first_token, memory.peak)


def plain(backend: TransformersBackend, tokens: int, memory: PeakMemory) -> Run:
    import torch

    model, tokenizer = backend._model, backend._tokenizer
    assert model is not None and tokenizer is not None and backend._prompt_ids is not None
    ids = torch.tensor([backend._prompt_ids(PROMPT, "")], device=model.device)
    with memory.measure():
        start = time.perf_counter()
        with torch.inference_mode():
            output = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=tokens,
                do_sample=False,
                pad_token_id=tokenizer.eos_token_id,
            )
        if memory.cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    return Run(output.shape[1] - ids.shape[1], seconds, None, memory.peak)


def median_run(runs: list[Run]) -> Run:
    ordered = sorted(runs, key=lambda run: run.tokens_per_second)
    return ordered[len(ordered) // 2]


def row(name: str, run: Run) -> str:
    first = "-" if run.first_token is None else f"{run.first_token * 1000:.0f} ms"
    return (
        f"| {name} | {run.tokens} | {run.tokens_per_second:.1f} | {first} | "
        f"{run.peak_bytes / 2**20:.0f} MiB |"
    )


async def bench(args: argparse.Namespace, directory: Path) -> None:
    settings = load_settings(
        backend="transformers", model=str(directory), device_map=args.device, dtype=args.dtype
    )
    backend = TransformersBackend(settings)
    await backend.load()
    memory = PeakMemory(args.device)
    assert backend._model is not None
    params = sum(p.numel() for p in backend._model.parameters())
    await streamed(backend, 8, memory)  # warm-up: kernels, allocator, first-call costs
    await asyncio.to_thread(plain, backend, 8, memory)
    results: dict[str, list[Run]] = {"plain model.generate": [], "backend stream": []}
    jobs: dict[str, Callable[[], Awaitable[Run]]] = {
        "plain model.generate": lambda: asyncio.to_thread(plain, backend, args.tokens, memory),
        "backend stream": lambda: streamed(backend, args.tokens, memory),
    }
    for _ in range(args.runs):  # interleaved, so drift in machine load hits both alike
        for name, job in jobs.items():
            results[name].append(await job())
    base, stream = (
        median_run(results["plain model.generate"]),
        median_run(results["backend stream"]),
    )
    print(
        f"Mixtral architecture, random weights: {params / 1e6:.1f}M parameters "
        f"(hidden {args.hidden}, {args.layers} layers, {args.experts} experts, top-2), "
        f"{args.device}, dtype {args.dtype}, greedy, median of {args.runs} runs\n"
    )
    print("| path | tokens | tokens/s | time to first token | peak memory |")
    print("|---|---|---|---|---|")
    print(row("plain model.generate", base))
    print(row("backend stream", stream))
    print(
        f"\nstreaming overhead ratio (plain tokens/s / streamed tokens/s): "
        f"{base.tokens_per_second / stream.tokens_per_second:.3f}"
    )
    await backend.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--experts", type=int, default=4)
    parser.add_argument("--intermediate", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=128, help="new tokens per run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, or a device map such as auto")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mixchat-bench-") as tmp:
        directory = build_tiny_mixtral(
            Path(tmp),
            hidden_size=args.hidden,
            layers=args.layers,
            experts=args.experts,
            intermediate_size=args.intermediate,
            heads=args.heads,
            kv_heads=args.kv_heads,
            context=max(4096, args.tokens + 256),
            dtype=args.dtype,
        )
        asyncio.run(bench(args, directory))


if __name__ == "__main__":
    main()
