"""
One process or many: `torchrun --nproc_per_node N train.py ...` (or evaluate.py) splits every
phase's generation over N processes, the field's convention (nanoGPT, nanochat) over
torch.distributed: NCCL between GPUs, gloo between CPU processes.

The work is embarrassingly parallel over batches of prompts: batch b is rank b % N's, with the seed
it has in one process, so the samples are the ones one process makes. Each rank writes its own
batch files; the ranks wait for each other (barrier) and every rank reads all of them; results
held in memory are gathered (all_gather_object). Everything else (the head, the reports, the
progress lines) is rank 0's: it holds the run directory's lock and writes, the others stay quiet.
Without torchrun (no WORLD_SIZE in the environment) every function here is a no-op and the scripts
run exactly as one process.
"""
import os
import sys

import torch
import torch.distributed as dist

rank, world = 0, 1  # this process's rank and the number of processes (set by start)


def start(device):
    """Join torchrun's process group when there is one: returns the device this rank uses (under
    torchrun, --device cuda means the rank's local GPU, LOCAL_RANK). Ranks other than 0 print
    nothing (their stdout is dropped; errors still reach stderr)."""
    global rank, world
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return device
    if str(device).startswith("cuda"):
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if str(device).startswith("cuda") else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    if rank != 0:
        sys.stdout = open(os.devnull, "w")
    return device


def mine(b):
    """Whether batch b is this rank's to generate."""
    return b % world == rank


def main_rank():
    """Whether this process writes the run's files and reports (rank 0, or the one process)."""
    return rank == 0


def wait():
    """Every rank waits here for the others (for their batch files, or rank 0's writes)."""
    if world > 1:
        dist.barrier()


def gather(part):
    """Every rank's part of a result, {index: value} over the batches it made, merged: the whole
    result, on every rank."""
    if world == 1:
        return part
    parts = [None] * world
    dist.all_gather_object(parts, part)
    return {k: v for p in parts for k, v in p.items()}


def same_weights(module):
    """Rank 0's weights on every rank (after training: the ranks trained alike, and this makes sure)."""
    if world > 1:
        for p in module.parameters():
            dist.broadcast(p.data, src=0)
