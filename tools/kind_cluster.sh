#!/usr/bin/env bash
# A kind cluster for `sandbox up --runtime kubernetes` and tests/kube, on a machine that reaches no image registry:
# built by ../shared/tools/offline-kind/setup.sh (Kubernetes, kind, helm and the node image from Debian packages and
# the Go module proxy, with a dockerd of its own). Its work folder (~/.cache/offline-kind) is the cache: a machine
# that built it once starts the cluster again in about half a minute.
#
#   tools/kind_cluster.sh deps   # the Debian packages it builds and runs with (apt; what is missing only)
#   tools/kind_cluster.sh up     # build what is missing, start the cluster (control plane + 2 workers), wait Ready
#   tools/kind_cluster.sh env    # the exports that point kubectl, kind, helm and the sandbox at it (eval it)
#   tools/kind_cluster.sh stop   # stop the nodes and the cluster's dockerd (kept, with the images loaded)
#
# On a machine with a registry and Docker, none of this is needed: `kind create cluster` is enough.
set -euo pipefail
export W=${W:-${XDG_CACHE_HOME:-$HOME/.cache}/offline-kind}
CLUSTER=${CLUSTER:-sandbox}
K8S=${K8S:-1.34.4}
SETUP=${OFFLINE_KIND:-$(cd "$(dirname "$0")/../.." && pwd)/shared/tools/offline-kind/setup.sh}
export DOCKER_HOST=unix://$W/docker.sock KUBECONFIG=$W/kubeconfig PATH=$W/bin:/usr/local/go/bin:$PATH
NODES=("$CLUSTER-control-plane" "$CLUSTER-worker" "$CLUSTER-worker2")

say() { echo "kind_cluster: $*" >&2; }

built() {
  for b in kind kubectl helm; do [ -x "$W/bin/$b" ] || return 1; done
  docker image inspect "kindest/node:v$K8S-offline" >/dev/null 2>&1
}

deps() {
  [ -f "$SETUP" ] || { say "$SETUP is missing (expected ../shared beside the clone)"; exit 1; }
  local pkg missing=()
  for pkg in docker.io containerd runc containernetworking-plugins debootstrap jq iptables gcc libc6-dev; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if ((${#missing[@]})); then bash "$SETUP" deps; fi
}

up() {
  deps
  bash "$SETUP" dockerd
  if ! built; then
    say "building Kubernetes $K8S, kind, helm and the node image (8-15 min cold, about 4 warm)"
    bash "$SETUP" build images node
  fi
  if docker inspect "${NODES[0]}" >/dev/null 2>&1; then
    say "starting the cluster's nodes again"
    docker start "${NODES[@]}" >/dev/null
  else
    bash "$SETUP" cluster
  fi
  kubectl config use-context "kind-$CLUSTER" >/dev/null
  for _ in $(seq 120); do
    kubectl wait --for=condition=Ready nodes --all --timeout=5s >/dev/null 2>&1 && break
    sleep 1
  done
  kubectl wait --for=condition=Ready nodes --all --timeout=10s
  kubectl -n kube-system wait --for=condition=Ready pods --all --timeout=300s >/dev/null
  kubectl get nodes
}

stop() {
  if [ -S "$W/docker.sock" ] && docker info >/dev/null 2>&1; then
    docker stop "${NODES[@]}" >/dev/null 2>&1 || true
    [ -f "$W/dockerd.pid" ] && kill "$(cat "$W/dockerd.pid")" 2>/dev/null || true
  fi
}

case "${1:-}" in
  deps) deps ;;
  up) up ;;
  stop) stop ;;
  env) echo "export KUBECONFIG=$W/kubeconfig PATH=$W/bin:\$PATH SANDBOX_KUBE_CONTEXT=kind-$CLUSTER" \
            "SANDBOX_KIND_DOCKER_HOST=unix://$W/docker.sock" ;;
  *) echo "usage: $0 deps|up|env|stop" >&2; exit 2 ;;
esac
