"""Training on several hosts through accelerate: NUM_NODES, NODE_RANK, MAIN_ADDR, MAIN_PORT, DIST_TIMEOUT.

The real runs play two hosts on this machine: two `make train` processes, NODE_RANK 0 and 1, MAIN_ADDR 127.0.0.1,
one process each, gloo on the CPU. Each host has its own checkout, so node 1's output folder is its own: whatever
node 1 wrote would be found there (on a real cluster the folder is shared, and rank 0's outputs are all there is).
"""
import json
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import ROOT, free_port, run_make, scratch_project, start_make

from ftkit.config.launch import LaunchError, launch_args

# the two hosts are made once, on one worker; their runs are timed against each other (a killed peer, a missing one)
pytestmark = pytest.mark.xdist_group("multinode")

# Length-grouped batches are formed per device batch (4 here, 8 on one node), and each process draws its own dropout
# masks: without both, two nodes and one see the same examples per step and compute the same update
SAME_STEPS = "TRAIN_ARGS=--lora-dropout 0 --no-group-by-length"
# the stated tolerance of "the same run": training loss per step and every adapter weight (measured here: 1e-6 and
# 1.5e-6); the validation loss within 1%, since the distributed evaluation pads the last shard by repeating records
SAME_LOSS, SAME_WEIGHT, SAME_EVAL = 1e-4, 1e-4, 0.01


def test_make_n_train_shows_the_launch_command_of_this_node():
    planned = run_make("-n", "-B", "train", "NUM_NODES=2", "NODE_RANK=1", "MAIN_ADDR=10.0.0.1", "RUN=local").stdout
    train = planned.splitlines()[-1]
    assert train.startswith(".venv/bin/python -m accelerate.commands.launch --num_processes 2 --multi_gpu "
                            "--num_machines 2 --machine_rank 1 --main_process_ip 10.0.0.1 --main_process_port 29500 "
                            "--rdzv_conf timeout=1800 scripts/train_lora.py "), train
    assert train.endswith("--dist-timeout 1800"), train
    for config in sorted((ROOT / "configs" / "accelerate").glob("*.yaml")):
        train = run_make("-n", "-B", "train", "NUM_NODES=2", "NODE_RANK=0", "NUM_GPUS=4", "MAIN_ADDR=node-a",
                         "MAIN_PORT=6000", f"ACCELERATE_CONFIG=configs/accelerate/{config.name}", "DIST_TIMEOUT=90",
                         "RUN=local").stdout.splitlines()[-1]
        deepspeed = " --deepspeed_multinode_launcher standard" if config.name.startswith("deepspeed") else ""
        assert (f"-m accelerate.commands.launch --num_processes 8 --config_file configs/accelerate/{config.name} "
                f"--num_machines 2 --machine_rank 0 --main_process_ip node-a --main_process_port 6000 "
                f"--rdzv_conf timeout=90{deepspeed} scripts/train_lora.py") in train, train
    # one host: no launcher for one process, none of the node flags for several GPUs
    assert run_make("-n", "-B", "train", "RUN=local").stdout.splitlines()[-1].startswith(
        ".venv/bin/python scripts/train_lora.py")
    assert " --multi_gpu scripts/train_lora.py" in run_make("-n", "-B", "train", "NUM_GPUS=2", "RUN=local").stdout


@pytest.mark.parametrize(("variables", "message"), [
    (["NUM_NODES=2", "NODE_RANK=2", "MAIN_ADDR=10.0.0.1"], "NODE_RANK=2 is not a node of NUM_NODES=2: the ranks are 0 to 1"),
    (["NUM_NODES=2", "NODE_RANK=1"], "NUM_NODES=2 needs MAIN_ADDR: the address of node 0"),
    (["NUM_NODES=2", "MAIN_ADDR=10.0.0.1", "MAIN_PORT=http"], "MAIN_PORT='http' must be a port number"),
    (["NUM_NODES=two", "MAIN_ADDR=10.0.0.1"], "NUM_NODES='two' must be a whole number of at least 1"),
    (["NODE_RANK=1"], "NODE_RANK=1 is not a node of NUM_NODES=1"),
    (["NUM_NODES=2", "MAIN_ADDR=a b"], "MAIN_ADDR='a b' is not a host name or an IP address"),
])
def test_a_combination_that_cannot_start_is_refused_naming_the_variable(variables, message):
    result = run_make("-n", "-B", "train", *variables, "RUN=local", check=False)
    assert result.returncode != 0 and message in result.stderr, result.stderr
    assert "train_lora.py" not in result.stdout


def test_launch_arguments_for_one_host_and_several():
    assert launch_args("1", "0", "1", "", "29500") == []
    assert launch_args("1", "0", "0", "", "29500") == []  # no GPU: one process
    assert launch_args("1", "0", "2", "", "29500") == ["-m", "accelerate.commands.launch", "--num_processes", "2",
                                                       "--multi_gpu"]
    several = launch_args("3", "2", "8", "gpu-node-1", "12345", timeout="600")
    assert several[several.index("--num_processes") + 1] == "24"  # accelerate counts the processes of all nodes
    assert several[-2:] == ["--rdzv_conf", "timeout=600"]
    for bad in (("2", "0", "1", "", "29500"), ("2", "0", "1", "h", "0"), ("2", "0", "1", "h", "65536"),
                ("2", "-1", "1", "h", "29500"), ("2", "0", "1", "h", "29500", "", "0")):
        with pytest.raises(LaunchError):
            launch_args(*bad)


@pytest.fixture(scope="module")
def two_hosts(tmp_path_factory, tiny_model_dir):
    """Two checkouts, one per "host", each with the sample data prepared (the same records: the same seed)."""
    hosts = []
    for name in ("node0", "node1"):
        project = scratch_project(tmp_path_factory.mktemp(name) / "project")
        run_make("data", f"TINY_MODEL={tiny_model_dir}", "NUM_SAMPLES=150", "RUN=local", project=project)
        hosts.append(project)
    return hosts


def node_args(tiny_model_dir, rank: int, port: int, *more: str) -> list[str]:
    return ["train", f"TINY_MODEL={tiny_model_dir}", "NUM_SAMPLES=150", "RUN=local", SAME_STEPS, "BATCH_SIZE=4",
            "NUM_NODES=2", f"NODE_RANK={rank}", "MAIN_ADDR=127.0.0.1", f"MAIN_PORT={port}", *more]


def losses(model_dir: Path, key: str) -> list[float]:
    log = (model_dir / "train_log.jsonl").read_text(encoding="utf-8").splitlines()
    return [entry[key] for entry in map(json.loads, log) if key in entry]


@pytest.mark.slow
def test_two_nodes_train_one_run_equal_to_one_node_with_the_same_global_batch_and_only_rank_0_writes(
        two_hosts, tiny_model_dir):
    port = free_port()
    nodes = [start_make(*node_args(tiny_model_dir, rank, port, "EPOCHS=2", "DIST_TIMEOUT=300"), project=project)
             for rank, project in enumerate(two_hosts)]
    outputs = [node.communicate(timeout=900) for node in nodes]
    for node, (_, stderr) in zip(nodes, outputs, strict=True):
        assert node.returncode == 0, stderr[-3000:]
    (_, node0_log), (_, node1_log) = outputs
    out = two_hosts[0] / "models" / "finetuned"
    manifest = json.loads((out / "run_manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["num_nodes"] == 2 and manifest["world_size"] == 2
    assert manifest["ranks"] == [0, 1] and [p["node"] for p in manifest["processes"]] == [0, 1]
    assert "2 processes on 2 node(s) took the roll call" in node0_log
    # both took part in saving (the collective FSDP and ZeRO-3 need), rank 0 alone wrote
    assert "rank 0 of 2 took part in saving" in node0_log and "rank 1 of 2 took part in saving" in node1_log
    node1_files = [p.relative_to(two_hosts[1]) for p in (two_hosts[1] / "models").rglob("*") if p.is_file()]
    assert node1_files and all(p.name.startswith(".settings-") for p in node1_files), node1_files  # make's stamps only
    assert "node 1 does not see the adapter rank 0 wrote" in node1_log  # this test's hosts share no folder
    last = sorted((out / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.rsplit("-", 1)[1]))[-1]
    assert (last / "rng_state_0.pth").is_file() and (last / "rng_state_1.pth").is_file()  # both ranks' state, by rank 0
    # who a host is (rank, address, port) neither changes the stamp nor is remembered; the node count is
    stamps = [(project / "models" / "finetuned" / ".settings-train").read_text() for project in two_hosts]
    assert stamps[0] == stamps[1] and "--num-nodes 2" in stamps[0]
    remembered = (two_hosts[1] / ".ftkit" / "settings.mk").read_text()
    assert "recorded.NUM_NODES = 2" in remembered and "NODE_RANK" not in remembered and "MAIN_ADDR" not in remembered

    # one node, one process, the same global batch (8 = 2 nodes x 4): the same run
    run_make("train", f"TINY_MODEL={tiny_model_dir}", "NUM_SAMPLES=150", "RUN=local", SAME_STEPS, "BATCH_SIZE=8",
             "EPOCHS=2", "NUM_NODES=1", "MODEL_DIR=models/one-node", project=two_hosts[0])
    one = two_hosts[0] / "models" / "one-node"
    assert json.loads((one / "metrics.json").read_text())["optimizer_steps"] == \
        json.loads((out / "metrics.json").read_text())["optimizer_steps"] == 2 * 120 // 8
    assert losses(out, "loss") == pytest.approx(losses(one, "loss"), abs=SAME_LOSS)
    assert losses(out, "eval_loss") == pytest.approx(losses(one, "eval_loss"), rel=SAME_EVAL)
    from safetensors.torch import load_file

    two_nodes, one_node = (load_file(str(d / "lora_adapter" / "adapter_model.safetensors")) for d in (out, one))
    assert sorted(two_nodes) == sorted(one_node)
    assert max((two_nodes[k] - one_node[k]).abs().max().item() for k in one_node) < SAME_WEIGHT
    assert max(one_node[k].abs().max().item() for k in one_node if "lora_B" in k) > 100 * SAME_WEIGHT  # it learned


def process_tree(pid: int) -> list[int]:
    """`pid` and every process below it. torchrun starts each training process in a session of its own: killing
    make's process group would leave it running, where a host that dies takes all of them."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo += children.get(tree[-1], [])
    return tree


@pytest.mark.slow
def test_killing_one_node_makes_the_other_exit_non_zero_within_the_timeout(two_hosts, tiny_model_dir):
    timeout, port = 60, free_port()
    run = ["EPOCHS=30", f"DIST_TIMEOUT={timeout}", "MODEL_DIR=models/killed"]  # 450 steps: long enough to be killed
    node0, node1 = (start_make(*node_args(tiny_model_dir, rank, port, *run), project=project)
                    for rank, project in enumerate(two_hosts))
    log = two_hosts[0] / "models" / "killed" / "train_log.jsonl"
    deadline = time.time() + 600
    while not (log.is_file() and len(log.read_text().splitlines()) >= 2):  # both are training
        assert node0.poll() is None and node1.poll() is None, "a node ended before training"
        assert time.time() < deadline
        time.sleep(0.2)
    for pid in process_tree(node1.pid):
        os.kill(pid, signal.SIGKILL)
    killed = time.time()
    _, stderr = node0.communicate(timeout=timeout + 120)
    assert node0.returncode != 0
    assert time.time() - killed < timeout + 30
    assert "lost the other training processes" in stderr and "rank 0 writes no adapter" in stderr, stderr[-3000:]
    out = two_hosts[0] / "models" / "killed"
    assert not (out / "lora_adapter").exists()
    assert json.loads((out / "run_manifest.json").read_text())["status"] == "running"  # never claimed complete
    node1.communicate()


@pytest.mark.slow
def test_a_node_whose_peers_never_come_stops_after_the_timeout(two_hosts, tiny_model_dir):
    started = time.time()
    alone = start_make(*node_args(tiny_model_dir, 0, free_port(), "EPOCHS=1", "DIST_TIMEOUT=10",
                                  "MODEL_DIR=models/alone"), project=two_hosts[0])
    _, stderr = alone.communicate(timeout=300)
    assert alone.returncode != 0 and "1/2 clients joined" in stderr, stderr[-2000:]
    assert time.time() - started < 120
    assert not (two_hosts[0] / "models" / "alone" / "lora_adapter").exists()
