"""What one training process of a run on several (GPUs, hosts) does with the others.

`accelerate launch` (torchrun) starts the processes and the trainer wraps the model; what is left is the toolkit's
side: every process answers a roll call before training (rank, host, the data it read), only the global main
process writes (checkpoints included: the others hand it their random-number state), a process that loses its
peers stops with one clear line, and all leave together.
"""
from __future__ import annotations

import logging
import os
import re
import socket
import tempfile
from pathlib import Path

from ftkit.core.cli import UserError

log = logging.getLogger(__name__)


def _group():
    """torch.distributed when this process is one of several, else None."""
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def roll_call(data_digests: dict[str, str]) -> list[dict]:
    """Every process's rank, node and host, gathered before training: proof that all took part.

    The data are not sent between hosts: each process reads its own copy of the splits. A node whose copy differs
    (prepared from other raw data, an older split) would train silently on something else: stop every process here,
    naming the node."""
    me = {"rank": int(os.environ.get("RANK", "0")), "node": int(os.environ.get("GROUP_RANK", "0")),
          "host": socket.gethostname(), "data": data_digests}
    dist = _group()
    if dist is None:
        return [_who(me)]
    everyone = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, me)
    everyone.sort(key=lambda p: p["rank"])
    for other in everyone:
        for split, digest in other["data"].items():
            if digest != everyone[0]["data"].get(split):
                raise UserError(f"node {other['node']} ({other['host']}, rank {other['rank']}) read other {split} data "
                                f"than rank 0 (sha256 {digest[:12]} vs {everyone[0]['data'].get(split, '-')[:12]}): "
                                "prepare the data once (make data) where every node reads it, then start the nodes")
    nodes = sorted({p["node"] for p in everyone})
    if me["rank"] == 0:
        log.info("train: %d processes on %d node(s) took the roll call (%s)", len(everyone), len(nodes),
                 ", ".join(f"rank {p['rank']} node {p['node']} {p['host']}" for p in everyone))
    return [_who(p) for p in everyone]


def _who(process: dict) -> dict:
    """A process as the manifest records it: rank, node, host (the data digests are the manifest's `data`)."""
    return {key: process[key] for key in ("rank", "node", "host")}


# what a process that left its group keeps until it exits (see leave)
_KEPT: list = []


def leave(keep=None) -> None:
    """Every process waits until rank 0 has written the outputs, then all leave together. A process that simply
    exited while another was still in the process group aborted at teardown now and then on a loaded machine
    ("terminate called without an active exception", exit -6), failing a finished run. And freeing the trainer
    after leaving hung now and then in gloo's teardown once the peer had exited (rank 0 blocked in a futex, its
    outputs written): `keep` (the trainer) is never freed, and the command ends with exit_if_left()."""
    dist = _group()
    if dist is not None:
        dist.barrier()
        dist.destroy_process_group()
        _KEPT.append(keep)


def exit_if_left(code: int = 0) -> None:
    """After a distributed run left its group: end the process at once, without destructors (see leave)."""
    if not _KEPT:
        return
    import logging
    import sys

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def lost_peers(err: BaseException, timeout_s: int) -> str | None:
    """One line for an error that means this process lost the others (a node stopped, the network failed, a peer
    never answered within the process group's timeout), else None: any other error keeps its traceback."""
    import torch.distributed as dist

    if not dist.is_available() or os.environ.get("WORLD_SIZE", "1") == "1":
        return None
    text = str(err)
    signs = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "timed out", "Timed out",
             "Timeout", "NCCL communicator was aborted", "ProcessGroup", "Socket Timeout", "recvValue", "Connection refused")
    if not (isinstance(err, dist.DistError) or any(sign in text for sign in signs)):
        return None
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(err).__name__)
    # gloo's "[/path/pair.cc:537] Read error [10.0.0.2]:41234: Connection reset by peer. This is typically ...":
    # the failure, without the source location and the advice
    what = re.sub(r"^\[[^\]]*\.(cc|cpp|h)(:\d+)?\]\s*", "", first).split(". ")[0][:160]
    return (f"rank {os.environ.get('RANK', '?')} on {socket.gethostname()} lost the other training processes ({what}): "
            f"another node stopped, or the network between the nodes failed, or a peer did not answer within "
            f"{timeout_s} s (DIST_TIMEOUT); this node stops too, and rank 0 writes no adapter")


def rank_zero_writes_checkpoints(trainer_class):
    """`trainer_class` whose checkpoints only the global main process writes.

    The trainer saves each process's random-number state as `rng_state_<rank>.pth` in the checkpoint, written by
    that process: on several hosts every node would write into the output folder. Here each process saves its
    state into a temporary folder of its own host, the states are gathered, and rank 0 writes them all, under the
    same names, so resuming reads them as it always does. (With FSDP or ZeRO the optimizer's shards are still
    written by the process that holds each: they exist nowhere else.)"""

    class RankZeroWritesCheckpoints(trainer_class):
        def _save_rng_state(self, output_dir: str) -> None:
            dist = _group()
            if dist is None:
                return super()._save_rng_state(output_dir)
            with tempfile.TemporaryDirectory(prefix="ftkit-rng-") as local:
                super()._save_rng_state(local)
                mine = [(path.name, path.read_bytes()) for path in Path(local).iterdir()]
            everyone = [None] * dist.get_world_size()
            dist.all_gather_object(everyone, mine)
            if self.args.should_save:
                from ftkit.core.io import atomic_path

                for name, data in (item for files in everyone for item in files):
                    with atomic_path(Path(output_dir) / name) as tmp:
                        tmp.write_bytes(data)

    RankZeroWritesCheckpoints.__name__ = f"{trainer_class.__name__}RankZeroWrites"
    return RankZeroWritesCheckpoints


def check_outputs_seen(adapter_config: Path) -> None:
    """On a node other than node 0, after rank 0 wrote the outputs: warn when this node cannot see them. The run
    succeeded, but the later stages here (or a resume) would not find the adapter: the output folder must be on a
    filesystem every node shares."""
    if os.environ.get("GROUP_RANK", "0") != "0" and os.environ.get("LOCAL_RANK", "0") == "0" \
            and not adapter_config.is_file():
        log.warning("train: node %s does not see the adapter rank 0 wrote (%s): put the output folder (MODEL_DIR) on a "
                    "filesystem every node shares; rank 0's host has it", os.environ["GROUP_RANK"], adapter_config.parent)
