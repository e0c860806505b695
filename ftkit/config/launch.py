"""How `make train` starts one node of a training run: the `accelerate launch` arguments for NUM_NODES, NODE_RANK,
MAIN_ADDR, MAIN_PORT and NUM_GPUS (GPUs per node), checked before anything starts.

    python -m ftkit.config.launch --num-nodes 2 --node-rank 1 --gpus-per-node 4 --main-addr 10.0.0.1 --main-port 29500 \\
        [--config configs/accelerate/fsdp.yaml]

prints the arguments that go between `python` and the training script (nothing for one process on one node), or
one line naming the bad value and exits 2. Standard library only: make runs it on the host, before any container.
Every node runs the same command but its own NODE_RANK; accelerate's launcher (torchrun) on each node starts
NUM_GPUS processes, and they meet at MAIN_ADDR:MAIN_PORT, where node 0 listens.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path


class LaunchError(ValueError):
    """A setting that cannot start a run; the message names the Make variable."""


def _count(name: str, text: str, least: int) -> int:
    if not re.fullmatch(r"\d+", text.strip()) or int(text) < least:
        raise LaunchError(f"{name}={text!r} must be a whole number of at least {least}")
    return int(text)


def _is_deepspeed(config: str) -> bool:
    """Whether an accelerate config file runs DeepSpeed: its multi-node default launcher (pdsh) would ssh from node 0
    into the others, where every node here starts its own launcher."""
    try:
        text = Path(config).read_text(encoding="utf-8")
    except OSError as err:
        raise LaunchError(f"ACCELERATE_CONFIG={config}: cannot read it ({err.strerror})") from None
    return re.search(r"^distributed_type:\s*['\"]?DEEPSPEED", text, re.MULTILINE) is not None


def launch_args(num_nodes: str, node_rank: str, gpus_per_node: str, main_addr: str, main_port: str,
                config: str = "", timeout: str = "1800") -> list[str]:
    """The arguments between `python` and the script; [] runs the script as one plain process. `timeout`: seconds
    node 0 waits for the other nodes to join (the script's own --dist-timeout covers every exchange after)."""
    wait = _count("DIST_TIMEOUT", timeout, 1)
    nodes = _count("NUM_NODES", num_nodes, 1)
    gpus = max(1, _count("NUM_GPUS", gpus_per_node, 0))  # 0: no GPU, one process
    rank = _count("NODE_RANK", node_rank, 0)
    if rank >= nodes:
        raise LaunchError(f"NODE_RANK={rank} is not a node of NUM_NODES={nodes}: the ranks are 0 to {nodes - 1}")
    if not re.fullmatch(r"\d+", main_port.strip()) or not 1 <= int(main_port) <= 65535:
        raise LaunchError(f"MAIN_PORT={main_port!r} must be a port number, 1 to 65535")
    if nodes > 1 and not main_addr.strip():
        raise LaunchError(f"NUM_NODES={nodes} needs MAIN_ADDR: the address of node 0 (NODE_RANK=0), the same on every "
                          "node, e.g. MAIN_ADDR=$(scontrol show hostnames $SLURM_JOB_NODELIST | head -n1) under Slurm")
    if main_addr.strip() and not re.fullmatch(r"[A-Za-z0-9._:\[\]-]+", main_addr.strip()):
        raise LaunchError(f"MAIN_ADDR={main_addr!r} is not a host name or an IP address")
    if nodes * gpus == 1:
        return []
    args = ["-m", "accelerate.commands.launch", "--num_processes", str(nodes * gpus)]  # all nodes together
    args += ["--config_file", config] if config else ["--multi_gpu"]
    if nodes > 1:
        args += ["--num_machines", str(nodes), "--machine_rank", str(rank),
                 "--main_process_ip", main_addr.strip(), "--main_process_port", main_port.strip(),
                 "--rdzv_conf", f"timeout={wait}"]  # torchrun's own default: 600 s of waiting for a node that failed
        if config and _is_deepspeed(config):
            args += ["--deepspeed_multinode_launcher", "standard"]
    return args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ftkit.config.launch", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-nodes", default="1", help="hosts taking part (make: NUM_NODES)")
    parser.add_argument("--node-rank", default="0", help="this host's rank, 0 on the host at --main-addr (NODE_RANK)")
    parser.add_argument("--gpus-per-node", default="1", help="processes on each host, one per GPU (NUM_GPUS)")
    parser.add_argument("--main-addr", default="", help="address of node 0, where the others connect (MAIN_ADDR)")
    parser.add_argument("--main-port", default="29500", help="a free port on node 0 (MAIN_PORT)")
    parser.add_argument("--config", default="", help="an accelerate config file (ACCELERATE_CONFIG); none: DDP")
    parser.add_argument("--timeout", default="1800", help="seconds node 0 waits for the others to join (DIST_TIMEOUT)")
    args = parser.parse_args(argv)
    try:
        print(" ".join(launch_args(args.num_nodes, args.node_rank, args.gpus_per_node, args.main_addr,
                                   args.main_port, args.config, args.timeout)))
    except LaunchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
