"""Keycloak, the OIDC provider: the Quarkus distribution from Maven Central, pre-built for fast starts."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

from sandbox import versions
from sandbox.java import Jdk, find_jdk
from sandbox.provision import Say, cached_build, is_done, require_tool, run
from sandbox.readiness import Check, http_ok
from sandbox.runtime.components.base import Component, Context, Login, ProcessSpec

PURPOSE = f"Keycloak {versions.KEYCLOAK}"
# Build-time options, baked in by `kc.sh build` so `start --optimized` skips the slow augmentation.
BUILD_OPTIONS = ["--db=dev-file", "--health-enabled=true"]
HEAP = "-Xms128m -Xmx768m"  # the default (70% of RAM) would let one sandbox claim gigabytes


class Keycloak(Component):
    name = "keycloak"
    default_ports = {"keycloak": 28081, "keycloak-management": 28091}
    start_timeout = 180.0
    login = Login("admin", "keycloak_admin_password")

    def dist(self, cache: Path) -> Path:
        return cache / "keycloak" / versions.KEYCLOAK

    def provisioned(self, cache: Path) -> bool:
        return is_done(self.dist(cache))

    def provision(self, cache: Path, say: Say) -> None:
        def build(tmp: Path) -> None:
            jdk = find_jdk(versions.KEYCLOAK_MIN_JAVA, PURPOSE)
            mvn = require_tool("mvn", "Maven (apt-get install maven), used to fetch Keycloak from Maven Central")
            say(f"downloading {versions.KEYCLOAK_MAVEN}")
            dl = tmp / "download"
            run([mvn, "-q", "-B", "dependency:copy", f"-Dartifact={versions.KEYCLOAK_MAVEN}",
                 f"-DoutputDirectory={dl}"], "downloading Keycloak with Maven")
            say("unpacking")
            (archive,) = dl.glob("*.zip")
            with zipfile.ZipFile(archive) as z:
                z.extractall(tmp / "unpacked")
            (inner,) = (tmp / "unpacked").iterdir()
            for child in inner.iterdir():
                child.rename(tmp / child.name)
            for script in (tmp / "bin").glob("*.sh"):
                script.chmod(0o755)
            shutil.rmtree(dl)
            inner.rmdir()
            (tmp / "unpacked").rmdir()
            say(f"kc.sh build (Java {jdk.major})")
            run([str(tmp / "bin" / "kc.sh"), "build", *BUILD_OPTIONS], "kc.sh build",
                env=self._env(jdk))

        cached_build(self.dist(cache), build, say)

    def preflight(self) -> None:
        find_jdk(versions.KEYCLOAK_MIN_JAVA, PURPOSE)

    @staticmethod
    def _env(jdk: Jdk) -> dict[str, str]:
        return {**os.environ, "JAVA_HOME": str(jdk.home), "PATH": f"{jdk.home / 'bin'}:{os.environ['PATH']}"}

    def processes(self, ctx: Context) -> list[ProcessSpec]:
        jdk = find_jdk(versions.KEYCLOAK_MIN_JAVA, PURPOSE)
        data = ctx.data_dir(self.name)
        data.mkdir(parents=True, exist_ok=True)
        url = ctx.url("keycloak")
        return [ProcessSpec("keycloak", [
            str(self.dist(ctx.cache) / "bin" / "kc.sh"), "start", "--optimized",
            "--cache=local",  # no cluster: no JGroups listeners on other interfaces
            "--http-enabled=true", "--http-host=127.0.0.1",
            f"--http-port={ctx.ports['keycloak']}",
            f"--http-management-port={ctx.ports['keycloak-management']}",
            # A fixed hostname makes `iss` the same whichever Host header fetched the token.
            f"--hostname={url}",
        ], env={
            "JAVA_HOME": str(jdk.home),
            "JAVA_OPTS_KC_HEAP": HEAP,
            # The dev-file database goes under this sandbox, not into the shared, cached distribution.
            "JAVA_OPTS_APPEND": f"-Dkc.db-url-path={data}",
            "KC_BOOTSTRAP_ADMIN_USERNAME": "admin",
            "KC_BOOTSTRAP_ADMIN_PASSWORD": ctx.secrets["keycloak_admin_password"],
        })]

    def health(self, ctx: Context) -> Check:
        return http_ok(ctx.url("keycloak-management") + "/health/ready")

    def extra_urls(self, ctx: Context) -> dict[str, str]:
        return {"admin console": ctx.url("keycloak") + "/admin/",
                "health": ctx.url("keycloak-management") + "/health/ready"}
