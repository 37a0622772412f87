"""Which Kubernetes client lists many objects fastest? (the measurement behind the README's choice)

Serves N virt-launcher-like Pods from a tiny local HTTP API (paginated by `limit` /
`continue` like kube-apiserver) and lists them all with:

* the official `kubernetes` client, typed models (`CoreV1Api.list_pod_for_all_namespaces`);
* the official client's transport, raw JSON parsed with orjson (what vm-rebalance does);
* lightkube (typed models), if installed (`pip install lightkube`).

    python benchmarks/client_bench.py [--pods 20000] [--page 500]
"""

import argparse
import json
import socket
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def make_pods(n: int) -> list[dict]:
    return [
        {
            "metadata": {
                "name": f"virt-launcher-vm-{i:06d}-abcde",
                "namespace": f"ns-{i % 50}",
                "uid": f"00000000-0000-0000-0000-{i:012d}",
                "resourceVersion": str(1000 + i),
                "creationTimestamp": "2026-11-21T12:00:00Z",
                "labels": {
                    "kubevirt.io": "virt-launcher",
                    "vm.kubevirt.io/name": f"vm-{i:06d}",
                    "kubevirt.io/created-by": f"uid-{i}",
                },
            },
            "spec": {
                "nodeName": f"node-{i % 500:04d}",
                "containers": [
                    {
                        "name": "compute",
                        "image": "quay.io/kubevirt/virt-launcher:v1.6.0",
                        "resources": {
                            "requests": {"cpu": "200m", "memory": "4400Mi", "devices.kubevirt.io/kvm": "1"},
                            "limits": {"devices.kubevirt.io/kvm": "1"},
                        },
                    }
                ],
            },
            "status": {"phase": "Running", "podIP": "10.0.0.1", "startTime": "2026-11-21T12:00:00Z"},
        }
        for i in range(n)
    ]


def app_for(pods: list[dict]) -> Starlette:
    async def list_pods(request: Request) -> Response:
        limit = int(request.query_params.get("limit") or len(pods))
        start = int(request.query_params.get("continue") or 0)
        page = pods[start : start + limit]
        nxt = start + limit
        body = {
            "kind": "PodList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": "99999", **({"continue": str(nxt)} if nxt < len(pods) else {})},
            "items": page,
        }
        return Response(json.dumps(body), media_type="application/json")

    return Starlette(routes=[Route("/api/v1/pods", list_pods)])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=20_000)
    parser.add_argument("--page", type=int, default=500)
    args = parser.parse_args()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app_for(make_pods(args.pods)), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    kubeconfig = Path(tempfile.mkdtemp()) / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "b",
                "clusters": [{"name": "b", "cluster": {"server": url}}],
                "contexts": [{"name": "b", "context": {"cluster": "b", "user": "u"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
            }
        )
    )
    results = []

    from kubernetes import client as kclient
    from kubernetes import config as kconfig

    api = kconfig.new_client_from_config(str(kubeconfig))
    core = kclient.CoreV1Api(api)

    def official_models() -> int:
        n, token = 0, None
        while True:
            page = core.list_pod_for_all_namespaces(limit=args.page, _continue=token)
            n += len(page.items)
            token = page.metadata._continue
            if not token:
                return n

    from vm_rebalance.kube import resources as r
    from vm_rebalance.kube.client import KubeClient

    raw = KubeClient.from_kubeconfig(str(kubeconfig))

    def official_raw() -> int:
        return len(raw.list(r.PODS, page_size=args.page))

    runs = [
        ("kubernetes client, typed models", official_models),
        ("kubernetes client transport + raw JSON (vm-rebalance)", official_raw),
    ]
    try:
        import lightkube
        from lightkube.resources.core_v1 import Pod

        lk = lightkube.Client(config=lightkube.KubeConfig.from_file(str(kubeconfig)))

        def lightkube_models() -> int:
            return sum(1 for _ in lk.list(Pod, namespace=lightkube.ALL_NS, chunk_size=args.page))

        runs.append(("lightkube, typed models", lightkube_models))
    except ImportError:
        pass
    for label, fn in runs:
        fn()  # warm up connections and caches
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            count = fn()
            best = min(best, time.perf_counter() - t)
        results.append((label, best, count))
    server.should_exit = True
    thread.join(timeout=5)
    print(f"{'client (best of 3)':<58} {'seconds':>8} {'objects/s':>10}")
    for label, secs, count in results:
        assert count == args.pods, (label, count)
        print(f"{label:<58} {secs:>8.2f} {count / secs:>10.0f}")


if __name__ == "__main__":
    main()
