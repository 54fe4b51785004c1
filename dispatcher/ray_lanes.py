"""Ray lanes: the lanes of a job planned over the Ray cluster's nodes (see ray_backend's docstring)."""

from __future__ import annotations

from dataclasses import dataclass

from .lanes import Lane, default_cpu_lanes, group_gpus, pinning_env, share_threads
from .spec import GPU_DEVICE_TYPES, JobSpec, SpecError


@dataclass
class RayLane(Lane):
    """A lane run by a Ray actor: the resources it asks for and the node it prefers."""

    num_gpus: float = 0.0
    num_cpus: float = 0.0
    node_id: str | None = None
    node_ip: str | None = None

    def describe(self) -> str:
        where = f" @{self.node_ip or '?'}/{(self.node_id or '?')[:8]}"
        gpus = f"{self.num_gpus:g} Ray GPU" if self.num_gpus else ""
        if not self.is_gpu:
            cpu = f"CPU ({self.threads} threads)" if self.threads else "CPU"
            return cpu + (f" + {gpus}" if gpus else "") + where
        return f"{self.device_type} {gpus}{where}"

    def to_dict(self) -> dict:
        data = super().to_dict()
        data.update(num_gpus=self.num_gpus, num_cpus=self.num_cpus, node_id=self.node_id, node_ip=self.node_ip)
        return data


def cluster_nodes() -> list[dict]:
    """Alive nodes of the connected cluster: id, IP, GPUs and CPUs, in a stable order."""
    import ray

    nodes = []
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        resources = node.get("Resources") or {}
        nodes.append(
            {
                "node_id": node["NodeID"],
                "ip": node.get("NodeManagerAddress"),
                "gpus": int(resources.get("GPU", 0)),
                "cpus": int(resources.get("CPU", 0)),
            }
        )
    return sorted(nodes, key=lambda node: (node["ip"] or "", node["node_id"]))


def cluster_device_type(spec: JobSpec, nodes: list[dict]) -> str:
    """The spec's device type, or OPTIX when the cluster has a GPU (the worker falls back to CUDA)."""
    if spec.device_type:
        return spec.device_type
    return "OPTIX" if any(node["gpus"] for node in nodes) else "CPU"


def plan_ray_lanes(spec: JobSpec, nodes: list[dict], device_type: str) -> list[RayLane]:
    """Lanes over the cluster's nodes (see the module docstring); raises SpecError when none fit."""
    if spec.gpus:
        raise SpecError("--gpus picks GPUs of this machine; with the Ray backend every GPU of the cluster is used")
    fake = float(spec.extra.get("ray_gpus_per_lane") or 0)
    total_gpus = sum(node["gpus"] for node in nodes)
    summary = f"{len(nodes)} node(s), {total_gpus} GPU(s), {sum(node['cpus'] for node in nodes)} CPU(s)"
    if not nodes:
        raise SpecError("the Ray cluster has no alive node")
    lanes: list[RayLane] = []
    counters = {"gpu": 0, "cpu": 0}
    for node in nodes:
        if device_type in GPU_DEVICE_TYPES:
            if fake:
                raise SpecError("ray_gpus_per_lane is for CPU lanes; GPU lanes take their GPUs from the layout")
            node_lanes = _gpu_lanes(spec, device_type, node, counters)
            if spec.cpu_lane:
                node_lanes.append(_lane(f"cpu{_next(counters, 'cpu')}", "CPU", node, 0.0))
        elif fake:
            count = int(node["gpus"] // fake)
            node_lanes = [_lane(f"cpu{_next(counters, 'cpu')}", "CPU", node, fake) for _ in range(count)]
        else:
            cores = max(1, node["cpus"])
            count = spec.cpu_lanes or default_cpu_lanes(cores)
            node_lanes = [_lane(f"cpu{_next(counters, 'cpu')}", "CPU", node, 0.0) for _ in range(count)]
        share_threads(node_lanes, spec.threads, max(1, node["cpus"]))
        lanes.extend(node_lanes)
    if fake and spec.cpu_lanes:
        lanes = lanes[: spec.cpu_lanes]
    if not lanes:
        if fake:
            raise SpecError(f"ray_gpus_per_lane={fake:g} but the Ray cluster has no GPU to give ({summary})")
        raise SpecError(f"{device_type} was asked for but the Ray cluster has no GPU ({summary}); "
                        "use --device CPU for CPU lanes")  # fmt: skip
    for lane in lanes:
        if lane.num_gpus:
            # Ray pins the actor (CUDA_VISIBLE_DEVICES as Ray numbers its node's GPUs, in PCI order).
            lane.env = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"} if lane.device_type in ("OPTIX", "CUDA") else {}
        else:
            lane.env = pinning_env("CPU", [])
        lane.num_cpus = 0.0 if lane.num_gpus else 1.0
    return lanes


def _next(counters: dict, kind: str) -> int:
    counters[kind] += 1
    return counters[kind] - 1


def _lane(name: str, device_type: str, node: dict, num_gpus: float) -> RayLane:
    return RayLane(name, device_type, num_gpus=num_gpus, node_id=node["node_id"], node_ip=node["ip"])


def _gpu_lanes(spec: JobSpec, device_type: str, node: dict, counters: dict) -> list[RayLane]:
    count = node["gpus"]
    if not count:
        return []
    indices = [_next(counters, "gpu") for _ in range(count)]  # cluster-wide numbering, node by node
    lanes = []
    for group in group_gpus(indices, spec.layout, spec.gpus_per_worker):  # "auto" is per-card here
        base = "gpu" + "+".join(str(index) for index in group)
        for copy in range(spec.workers_per_gpu):
            name = base if spec.workers_per_gpu == 1 else f"{base}.{copy}"
            lanes.append(_lane(name, device_type, node, len(group) / spec.workers_per_gpu))
    return lanes
