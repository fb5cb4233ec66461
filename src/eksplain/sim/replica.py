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

No work per decoding sequence per step: the replica counts its decode steps (``clock``) and a
decoding sequence keeps its cached and generated tokens as offsets from that count, so the
context of the whole batch is a sum kept up to date, the next completion is the top of a heap,
and the blocks a run needs come from how many sequences sit at each position within a block
(a sequence needs a new block at each step that starts with a full last block).
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass

from eksplain.sim.steps import StepModel

__all__ = ["DRAINING", "GONE", "READY", "STARTING", "EngineLimits", "Replica", "Run", "Seq"]


@dataclass(frozen=True)
class EngineLimits:
    max_num_seqs: int
    max_num_batched_tokens: int
    kv_blocks: int
    block_size: int = 16  # vLLM's default --block-size on GPUs


class Seq:
    """One request inside the engine. While decoding, its cached tokens are
    ``base + clock`` and its generated tokens ``made + clock`` (``clock``: the replica's decode
    steps so far); otherwise ``computed`` and ``generated`` hold them."""

    __slots__ = ("arrival_s", "base", "blocks", "computed", "decoding", "epoch", "first_token_s",
                 "generated", "id", "made", "output", "prefill_to", "prompt", "retries",
                 "started_s")

    def __init__(self, ident: int, arrival_s: float, prompt: int, output: int,
                 retries: int = 0) -> None:
        self.id = ident
        self.arrival_s = arrival_s
        self.prompt = prompt
        self.output = output
        self.computed = 0  # tokens whose KV is in the cache
        self.prefill_to = prompt  # tokens to compute before decoding (more after a preemption)
        self.generated = 0
        self.blocks = 0  # while prefilling; a decoding sequence holds ceil(cached / block size)
        self.decoding = False
        self.base = 0
        self.made = 0
        self.epoch = 0  # bumped when the sequence leaves the decode set (stale heap entries)
        self.first_token_s = -1.0
        self.started_s = -1.0  # first admitted into a step
        self.retries = retries  # times it was re-queued after its replica was lost


@dataclass
class Run:
    """What a replica computes until its next event: ``steps`` identical steps."""

    start_s: float
    step_s: float
    steps: int
    decoding: bool  # whether the decode set takes part (it does in every step when not empty)
    prefill: list[tuple[Seq, int]]  # (sequence, prompt tokens computed in this step)
    reserved: int  # blocks set aside for the decode set's growth over ``steps`` steps


def _blocks(tokens: int, size: int) -> int:
    return -(-tokens // size)


class _DecodeSet:
    """The decoding sequences as aggregates over a shared step clock."""

    def __init__(self, block_size: int) -> None:
        self.size = block_size
        self.clock = 0
        self.count = 0
        self.base_sum = 0
        self.phase = [0] * block_size  # sequences by base mod block size
        self.finish: list[tuple[int, int, int, Seq]] = []  # (clock at the end, id, epoch, seq)

    def context(self) -> int:
        return self.base_sum + self.count * self.clock

    def add(self, seq: Seq) -> None:
        seq.decoding = True
        seq.base = seq.computed - self.clock
        seq.made = seq.generated - self.clock
        self.count += 1
        self.base_sum += seq.base
        self.phase[seq.base % self.size] += 1
        heapq.heappush(self.finish, (seq.output - seq.made, seq.id, seq.epoch, seq))

    def remove(self, seq: Seq) -> int:
        """Take ``seq`` out (its tokens back in its fields); the blocks it held."""
        seq.decoding = False
        seq.epoch += 1
        seq.computed = seq.base + self.clock
        seq.generated = seq.made + self.clock
        self.count -= 1
        self.base_sum -= seq.base
        self.phase[seq.base % self.size] -= 1
        return _blocks(seq.computed, self.size)

    def need(self, steps: int) -> int:
        """New blocks for ``steps`` more decode steps: one per sequence whose cached tokens
        fill their last block when a step starts."""
        full, rest = divmod(steps, self.size)
        need = full * self.count
        for j in range(rest):
            need += self.phase[-(self.clock + j) % self.size]
        return need

    def steps_to_finish(self) -> int:
        while self.finish and self.finish[0][2] != self.finish[0][3].epoch:
            heapq.heappop(self.finish)  # left the set (preempted) since it was pushed
        return self.finish[0][0] - self.clock if self.finish else 0

    def done(self) -> list[Seq]:
        """Sequences whose last token the clock has reached, taken out of the set."""
        out = []
        while self.steps_to_finish() == 0 and self.finish:
            seq = heapq.heappop(self.finish)[3]
            self.remove(seq)
            out.append(seq)
        return out


STARTING, READY, DRAINING, GONE = range(4)


class Replica:
    """One engine and its place in the fleet: ``state`` STARTING (not serving until its cold
    start ends), READY, DRAINING (no new requests; finishes those it holds) or GONE."""

    def __init__(self, limits: EngineLimits, model: StepModel, node: int = -1,
                 created_s: float = 0.0) -> None:
        self.state = READY
        self.node = node
        self.created_s = created_s
        self.serving_since = 0.0
        self.serving_s = 0.0  # time READY or DRAINING
        self.busy_s = 0.0  # time with a run (a non-empty batch)
        self.limits = limits
        self.model = model
        self.waiting: deque[Seq] = deque()
        self.running: dict[int, Seq] = {}  # admission order: the last is preempted first
        self.prefilling: dict[int, Seq] = {}
        self.decode = _DecodeSet(limits.block_size)
        self.free_blocks = limits.kv_blocks
        self.run: Run | None = None
        self.version = 0  # bumped when a planned run is cut short (its old end event is stale)
        self.preemptions = 0

    @property
    def outstanding(self) -> int:
        return len(self.waiting) + len(self.running)

    def held(self) -> list[Seq]:
        """Every request the engine holds, running first (for a replica that is lost)."""
        return [*self.running.values(), *self.waiting]

    def fits_ever(self, seq: Seq) -> bool:
        """Whether the whole request fits the KV cache of an otherwise empty engine."""
        return _blocks(seq.prompt + seq.output, self.limits.block_size) <= self.limits.kv_blocks

    def plan(self, now: float) -> Run | None:
        """The next run, with its blocks allocated; None when there is nothing to do."""
        if not self.running and not self.waiting:
            return None
        while self.decode.need(1) > self.free_blocks:
            self._preempt()
        budget = self.limits.max_num_batched_tokens - self.decode.count
        prefill = self._prefill_running(budget)
        budget -= sum(chunk for _, chunk in prefill)
        prefill += self._admit(budget, now)
        if not self.decode.count and not prefill:
            # Partly prefilled prompts hold every block: free the newest and try again.
            self._preempt()
            return self.plan(now)
        d = self.decode
        steps = 1 if prefill else self._decode_steps()
        reserved = d.need(steps)
        self.free_blocks -= reserved
        middle = d.context() + d.count * (steps - 1) / 2
        tokens = sum(chunk for _, chunk in prefill)
        step = self.model.step_time_s(d.count, middle, tokens)
        return Run(now, step, steps, d.count > 0, prefill, reserved)

    def _preempt(self) -> None:
        victim = self.running.pop(next(reversed(self.running)))  # the most recently admitted
        if victim.decoding:
            self.free_blocks += self.decode.remove(victim)
        else:
            del self.prefilling[victim.id]
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
        """Prompt tokens of ``seq`` this step can compute: within the budget and free blocks,
        keeping back the blocks the decode set needs for this step."""
        size = self.limits.block_size
        free = self.free_blocks - self.decode.need(1)
        room = (seq.blocks + free) * size - seq.computed
        return max(0, min(seq.prefill_to - seq.computed, budget, room))

    def _prefill_running(self, budget: int) -> list[tuple[Seq, int]]:
        chunks = []
        for s in self.prefilling.values():
            if budget <= 0:
                break
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
            self.running[s.id] = s
            self.prefilling[s.id] = s
            if s.started_s < 0:
                s.started_s = now
            self._grow(s, s.computed + chunk)
            chunks.append((s, chunk))
            budget -= chunk
        return chunks

    def _decode_steps(self) -> int:
        """Identical decode steps until the first sequence finishes or the blocks run out (one
        step's blocks are free: ``plan`` preempted until they were)."""
        d = self.decode
        steps = d.steps_to_finish()
        if d.need(steps) > self.free_blocks:
            low, high = 1, steps  # need(low) <= free < need(high)
            while high - low > 1:
                mid = (low + high) // 2
                low, high = (mid, high) if d.need(mid) <= self.free_blocks else (low, mid)
            steps = low
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
        self.free_blocks += run.reserved - self.decode.need(done)  # give back the rest
        run.reserved = self.decode.need(done)
        run.steps = done
        self.version += 1
        return run.start_s + done * run.step_s

    def finish(self, end_s: float) -> list[Seq]:
        """Apply the current run's tokens; the sequences it completed (their blocks freed)."""
        run = self.run
        assert run is not None
        self.run = None
        if run.decoding:
            self.decode.clock += run.steps
        done = self.decode.done()
        for s, chunk in run.prefill:
            s.computed += chunk
            if s.computed < s.prefill_to:
                continue
            s.generated += 1  # the step that ends a prefill samples a token
            if s.first_token_s < 0:
                s.first_token_s = end_s
            del self.prefilling[s.id]
            if s.generated >= s.output:
                done.append(s)
            else:
                s.blocks = 0  # held implicitly from now on
                self.decode.add(s)
        for s in done:
            del self.running[s.id]
            self.free_blocks += s.blocks or _blocks(s.computed, self.limits.block_size)
            s.blocks = 0
        return done
