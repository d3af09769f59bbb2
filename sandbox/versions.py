"""Every pinned component version, in one place, read by every runtime.

Change a version here and nowhere else; the provisioning cache is keyed by these values, so a
bump provisions fresh copies beside the old ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

AIRFLOW = "3.3.2"
AIRFLOW_PYTHON = "3.11"  # the frozen constraints below were resolved for this Python
# the HTTP hooks the smoke uses; HashiCorp's VaultBackend, which teams point [secrets] backend at (the vault
# scenarios reproduce its failures); Keycloak's auth manager, which signs people and callers in to Airflow
# (docs/plans/inbound.md). Versions come from the constraints file.
AIRFLOW_EXTRA_PACKAGES = ("apache-airflow-providers-http", "apache-airflow-providers-hashicorp",
                          "apache-airflow-providers-keycloak")
AIRFLOW_CONSTRAINTS = f"airflow-{AIRFLOW}-python{AIRFLOW_PYTHON}.txt"
# what the installs take: every distribution, pinned with its files' SHA-256 (tools/lock_airflow.py writes it)
AIRFLOW_LOCK = f"airflow-{AIRFLOW}-python{AIRFLOW_PYTHON}.lock"
# what the Airflow image adds (as the official image carries it): the KubernetesExecutor, for the kubernetes
# runtime's task pods; locked on its own so the local install stays what it was
AIRFLOW_IMAGE_EXTRA_PACKAGES = ("apache-airflow-providers-cncf-kubernetes",)
AIRFLOW_IMAGE_LOCK = f"airflow-{AIRFLOW}-python{AIRFLOW_PYTHON}-image.lock"

KEYCLOAK = "26.7.3"
KEYCLOAK_MAVEN = f"org.keycloak:keycloak-quarkus-dist:{KEYCLOAK}:zip"
KEYCLOAK_SHA256 = "27a6535553c3cdcd083872ba40629efafb3475e3b758e0c6f691395561dd0f1f"  # the zip Maven Central serves
KEYCLOAK_MIN_JAVA = 21

TYK = "v5.14.0"
# The tag's commit: a source tarball must carry it (pax header), and the Go module proxy is asked by it
# (release tags are not valid Go module versions).
TYK_MODULE = "github.com/TykTechnologies/tyk"
TYK_COMMIT = "2e9450120e2b05f13457f441ee012cc57d6bd604"
# GitHub's tag tarball of TYK (../shared/third_party/tyk/SHA256SUMS): the archive is checked against it before it is
# unpacked; its pax `comment` (the commit) is only a hint, anyone can write it
TYK_SOURCE_SHA256 = "bb33591d8bf7ebec5a47f7b07b42c662d4f23f857dfa834106abf70672261472"

# Tyk's Helm charts (TykTechnologies/tyk-charts): the kubernetes runtime runs the gateway from their `tyk-oss` chart.
# `git archive` of the tag (../shared/third_party/tyk-charts/SHA256SUMS), and the tree it holds (another packing of
# the same files, such as GitHub's tag tarball, is accepted: go_source.tree_digest)
TYK_CHARTS = "v5.3.0"
TYK_CHARTS_COMMIT = "3c4f89f5d1c4ad1edfef1b60c4d16bc009523794"
TYK_CHARTS_SHA256 = "60232b0cf9ff39b73d6159e91e0f718b27dd9c70fc1c3d850b955415cbac6405"
TYK_CHARTS_TREE_SHA256 = "fea73ed44ecd8ca379cb78651052904f275428efc039484f3b2e76c0d4b64e9d"

REDIS_MIN = (7, 0)  # the local runtime takes redis-server from PATH
REDIS = "7.0.15"  # the docker runtime's: Debian bookworm's redis-server, which the local image build installs

UPSTREAM = "v2.26.0"  # go-httpbin: a real HTTP service whose /anything echoes the request it got
UPSTREAM_MODULE = "github.com/mccutchen/go-httpbin/v2"


# OpenBao, the secrets vault, built from its v2.6.2 source like the gateway
OPENBAO = "2.6.2"
OPENBAO_COMMIT = "dd9c19c37a878cf4a81b18efb8d6f0599c7da923"
OPENBAO_COMMIT_DATE = "2026-08-18T15:43:05Z"
# `git archive` of the tag (../shared/third_party/openbao/SHA256SUMS); GitHub's tag tarball of the same commit has
# other bytes (no GitHub on this project's machines to pin them), so the tree it holds is pinned too: any archive
# of exactly these files is accepted (go_source.tree_digest)
OPENBAO_SOURCE_SHA256S = ("658ae2cb1013dc6b69147bc14d46a8f633dcf81607278265a43a3106fc152159",)
OPENBAO_TREE_SHA256 = "34f9de26c6ce68ca609ff0abfc27d11ae887909c15ed7646ba0d5ea5b5cdcc62"
# the wrappers/ folder of openbao/go-kms-wrapping at the commit OpenBao's six KMS wrapper tags name, for a Go module
# proxy that refuses them (this project's does); elsewhere the proxy serves them and this is not needed
OPENBAO_WRAPPERS_COMMIT = "af8b1885827f2a0e7806f002236ffab381c62de3"
OPENBAO_WRAPPERS_SHA256 = "d1b9cd766d559381984f9bbd6c8db698c770752abae617ae5aaa10c1f1cd4122"

# The docker runtime's images: the official ones, tagged with the versions above. `sandbox images build`
# makes images of the same names' layout from package registries, tagged LOCAL_IMAGE_PREFIX/<component>:<tag>.
_TAGGED = {
    "keycloak": f"quay.io/keycloak/keycloak:{KEYCLOAK}",
    "redis": f"redis:{REDIS}",
    "tyk": f"tykio/tyk-gateway:{TYK}",
    "airflow": f"apache/airflow:{AIRFLOW}-python{AIRFLOW_PYTHON}",
    "upstream": f"mccutchen/go-httpbin:{UPSTREAM}",
    "openbao": f"openbao/openbao:{OPENBAO}",
}
# An official image is named by its tag *and* the digest of the image index the tag named when it was pinned: a
# re-pushed tag is then refused by the engine instead of run. No image registry answers on this project's machines,
# so a digest is taken from where others pinned the same tag (each seen in several unrelated projects); the images
# with none here are named by tag until a machine that reaches the registry reads theirs
# (`docker buildx imagetools inspect <image>`, the `Digest:` line) and adds it below.
IMAGE_DIGESTS = {
    "keycloak": "sha256:ff4257d0d64efbe99ed1ddfaf07765cc3c36dc7518bf8324d41961327f441c54",
    "openbao": "sha256:11fd73a2102cda9c55d5d881a8c3210303146a7ec1e8ac76f526e175c6d24641",
}
IMAGES = {n: f"{ref}@{IMAGE_DIGESTS[n]}" if n in IMAGE_DIGESTS else ref for n, ref in _TAGGED.items()}
LOCAL_IMAGE_PREFIX = "airflow-tyk-sandbox"
DEBIAN = "bookworm"  # base of the locally built images (its python3 is AIRFLOW_PYTHON)
DEBIAN_FOR_JAVA = "trixie"  # Keycloak needs Java 21+ (its image: 25, for the AOT cache); bookworm packages neither


def image_tag(component: str) -> str:
    """The official image's tag (its version), which the locally built image carries too."""
    return _TAGGED[component].rsplit(":", 1)[1]


def local_image(component: str) -> str:
    return f"{LOCAL_IMAGE_PREFIX}/{component}:{image_tag(component)}"


@dataclass(frozen=True)
class Pin:
    component: str
    version: str
    source: str


def pins() -> list[Pin]:
    return [
        Pin("airflow", AIRFLOW, f"PyPI, frozen constraints {AIRFLOW_CONSTRAINTS}"),
        Pin("keycloak", KEYCLOAK, f"Maven Central {KEYCLOAK_MAVEN}"),
        Pin("tyk", TYK, f"source tarball of commit {TYK_COMMIT[:12]}, built with Go"),
        Pin("redis", ">=" + ".".join(map(str, REDIS_MIN)), "redis-server on PATH (Debian: redis-server)"),
        Pin("upstream", UPSTREAM, f"Go module proxy {UPSTREAM_MODULE} (go-httpbin), in the sandbox's own main"),
        Pin("openbao", OPENBAO, f"source tarball of commit {OPENBAO_COMMIT[:12]}, built with Go"),
    ]


def airflow_constraints_text() -> str:
    return resources.files("sandbox.data").joinpath(AIRFLOW_CONSTRAINTS).read_text()


def airflow_lock_text(lock: str = AIRFLOW_LOCK) -> str:
    return resources.files("sandbox.data").joinpath(lock).read_text()
