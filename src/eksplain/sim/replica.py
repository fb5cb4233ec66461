"""One replica's engine: continuous batching as vLLM's V1 scheduler does it.

Each step has a token budget (``max_num_batched_tokens``). Running sequences come first: one
token for each decoding sequence, then the next chunk of each partly prefilled prompt (chunked
prefill); then waiting requests are admitted first come, first served while the engine runs
fewer than ``max_num_seqs`` sequences, budget is left and free KV-cache blocks hold the chunk.
A sequence holds ceil(tokens / block_size) blocks; when a decode step needs a block and none is
free, the most recently admitted sequence is preempted by recompute: its blocks are freed and it
waits at the head of the queue to prefill its prompt and the tokens it made so far again
(vLLM ``PreemptionMode.RECOMPUTE``, ``vllm/v1/core/sched/scheduler.py``).

A step that only decodes (nothing to prefill, nobody to admit) repeats identically, apart from
the context growing by one token a step, until a sequence finishes or blocks run out: such runs
are planned as one ``Run`` of ``steps`` steps. Step time is linear in the context, so the run
takes ``steps`` x the time of its middle step; an arrival can cut a run short at a step boundary.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from eksplain.sim.steps import StepModel

__all__ = ["EngineLimits", "Replica", "Run", "Seq"]


@dataclass(frozen=True)
class EngineLimits:
    max_num_seqs: int
    max_num_batched_tokens: int
    kv_blocks: int
    block_size: int = 16  # vLLM's default --block-size on GPUs


class Seq:
    """One request inside the engine."""

    __slots__ = ("arrival_s", "blocks", "computed", "first_token_s", "generated", "output",
                 "prefill_to", "prompt", "started_s")

    def __init__(self, arrival_s: float, prompt: int, output: int) -> None:
        self.arrival_s = arrival_s
        self.prompt = prompt
        self.output = output
        self.computed = 0  # tokens whose KV is in the cache
        self.prefill_to = prompt  # tokens to compute before decoding (more after a preemption)
        self.generated = 0
        self.blocks = 0
        self.first_token_s = -1.0
        self.started_s = -1.0  # first admitted into a step


@dataclass
class Run:
    """What a replica computes until its next event: ``steps`` identical steps."""

    start_s: float
    step_s: float
    steps: int
    decode: list[Seq]
    prefill: list[tuple[Seq, int]]  # (sequence, prompt tokens computed in this step)


def _blocks(tokens: int, size: int) -> int:
    return -(-tokens // size)


class Replica:
    def __init__(self, limits: EngineLimits, model: StepModel) -> None:
        self.limits = limits
        self.model = model
        self.waiting: deque[Seq] = deque()
        self.running: list[Seq] = []
        self.free_blocks = limits.kv_blocks
        self.run: Run | None = None
        self.version = 0  # bumped when a planned run is cut short (its old end event is stale)
        self.preemptions = 0

    @property
    def outstanding(self) -> int:
        return len(self.waiting) + len(self.running)

    def fits_ever(self, seq: Seq) -> bool:
        """Whether the whole request fits the KV cache of an otherwise empty engine."""
        return _blocks(seq.prompt + seq.output, self.limits.block_size) <= self.limits.kv_blocks

    def plan(self, now: float) -> Run | None:
        """The next run, with its blocks allocated; None when there is nothing to do."""
        if not self.running and not self.waiting:
            return None
        decode = self._reserve_decode()
        budget = self.limits.max_num_batched_tokens - len(decode)
        prefill = self._prefill_running(budget)
        budget -= sum(chunk for _, chunk in prefill)
        prefill += self._admit(budget, now)
        if not decode and not prefill:
            # Partly prefilled prompts hold every block: free the newest and try again.
            self._preempt()
            return self.plan(now)
        if prefill:
            context = sum(s.computed for s in decode)
            tokens = sum(chunk for _, chunk in prefill)
            step = self.model.step_time_s(len(decode), context, tokens)
            return Run(now, step, 1, decode, prefill)
        steps = self._decode_steps(decode)
        middle = sum(s.computed for s in decode) + len(decode) * (steps - 1) / 2
        return Run(now, self.model.step_time_s(len(decode), middle, 0), steps, decode, [])

    def _reserve_decode(self) -> list[Seq]:
        """Decoding sequences with a block for their next token, preempting until there is."""
        size = self.limits.block_size
        while True:
            decode = [s for s in self.running if s.computed >= s.prefill_to]
            need = sum(_blocks(s.computed + 1, size) - s.blocks for s in decode)
            if need <= self.free_blocks:
                for s in decode:
                    self._grow(s, s.computed + 1)
                return decode
            self._preempt()

    def _preempt(self) -> None:
        victim = self.running.pop()  # the most recently admitted
        self.free_blocks += victim.blocks
        victim.blocks = 0
        victim.computed = 0
        victim.prefill_to = victim.prompt + victim.generated
        self.waiting.appendleft(victim)
        self.preemptions += 1

    def _grow(self, seq: Seq, tokens: int) -> None:
        extra = _blocks(tokens, self.limits.block_size) - seq.blocks
        if extra > 0:
            seq.blocks += extra
            self.free_blocks -= extra

    def _chunk(self, seq: Seq, budget: int) -> int:
        """Prompt tokens of ``seq`` this step can compute: within the budget and free blocks."""
        size = self.limits.block_size
        room = (seq.blocks + self.free_blocks) * size - seq.computed
        return max(0, min(seq.prefill_to - seq.computed, budget, room))

    def _prefill_running(self, budget: int) -> list[tuple[Seq, int]]:
        chunks = []
        for s in self.running:
            if s.computed < s.prefill_to and budget > 0:
                chunk = self._chunk(s, budget)
                if chunk:
                    self._grow(s, s.computed + chunk)
                    chunks.append((s, chunk))
                    budget -= chunk
        return chunks

    def _admit(self, budget: int, now: float) -> list[tuple[Seq, int]]:
        chunks = []
        while self.waiting and budget > 0 and len(self.running) < self.limits.max_num_seqs:
            s = self.waiting[0]
            chunk = self._chunk(s, budget)
            if chunk == 0:
                break  # vLLM admits in order: the head waits for blocks
            self.waiting.popleft()
            self.running.append(s)
            if s.started_s < 0:
                s.started_s = now
            self._grow(s, s.computed + chunk)
            chunks.append((s, chunk))
            budget -= chunk
        return chunks

    def _decode_steps(self, decode: list[Seq]) -> int:
        """Identical decode steps until the first sequence finishes or the blocks run out (one
        step's blocks are already reserved); the blocks for all of them are allocated."""
        size = self.limits.block_size
        steps = min(s.output - s.generated for s in decode)

        def need(k: int) -> int:
            return sum(max(0, _blocks(s.computed + k, size) - s.blocks) for s in decode)

        if need(steps) > self.free_blocks:
            low, high = 1, steps  # need(low) == 0 <= free; need(high) > free
            while high - low > 1:
                mid = (low + high) // 2
                low, high = (mid, high) if need(mid) <= self.free_blocks else (low, mid)
            steps = low
        for s in decode:
            self._grow(s, s.computed + steps)
        return steps

    def cut(self, at_s: float) -> float | None:
        """Cut the current run at the first step boundary at or after ``at_s``; the new end
        time, or None when the run ends there anyway."""
        run = self.run
        if run is None or run.steps == 1:
            return None
        done = max(1, -int(-(at_s - run.start_s) // run.step_s))
        if done >= run.steps:
            return None
        run.steps = done
        self.version += 1
        return run.start_s + done * run.step_s

    def finish(self, end_s: float) -> list[Seq]:
        """Apply the current run's tokens; the sequences it completed (their blocks freed)."""
        run = self.run
        assert run is not None
        self.run = None
        size = self.limits.block_size
        for s in run.decode:
            s.computed += run.steps
            s.generated += run.steps
            # Give back blocks reserved for steps a cut run did not take.
            spare = s.blocks - _blocks(s.computed, size)
            if spare > 0:
                s.blocks -= spare
                self.free_blocks += spare
        for s, chunk in run.prefill:
            s.computed += chunk
            if s.computed >= s.prefill_to:
                s.generated += 1  # the step that ends a prefill samples a token
                if s.first_token_s < 0:
                    s.first_token_s = end_s
        done = [s for s in self.running if s.generated >= s.output]
        if done:
            self.running = [s for s in self.running if s.generated < s.output]
            for s in done:
                self.free_blocks += s.blocks
                s.blocks = 0
        return done
