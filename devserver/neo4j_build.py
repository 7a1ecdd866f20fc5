"""The development Neo4j's launcher: Neo4j's jars resolved by Maven, DevServer.java compiled once.

The Maven project and the launcher's source are in ``devserver/java``; the build goes to
``home/build`` and is redone only when one of them changes. The server (:mod:`devserver.neo4j`)
and the offline importer (:mod:`devserver.neo4j_bulk`) run on the classpath it makes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from kb.errors import ServerError

log = logging.getLogger(__name__)

NEO4J_VERSION = "5.26.30"
LAUNCHER_CLASS = "circuitkb.DevServer"

_JAVA_DIR = Path(__file__).resolve().parent / "java"
_POM = _JAVA_DIR / "pom.xml"
_LAUNCHER_SOURCE = _JAVA_DIR / "src" / "main" / "java" / "circuitkb" / "DevServer.java"
_OUTPUT_TAIL_LINES = 30

# The module opens and native access that Neo4j 5.26's own neo4j.conf passes with
# server.jvm.additional (the same list is in ConfigFileMigrator of org.neo4j:neo4j-dbms:5.26.30),
# plus the conf's GC and Netty settings that also suit an embedded server.
JVM_FLAGS: tuple[str, ...] = (
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--enable-native-access=ALL-UNNAMED",
    "-XX:+UseG1GC",
    "-XX:-OmitStackTraceInFastThrow",
    "-Djdk.nio.maxCachedBufferSize=1024",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Dlog4j2.disable.jmx=true",
    "-Dfile.encoding=UTF-8",
)

@dataclass(frozen=True)
class Build:
    """A built launcher: the java binary to run and the classpath holding the launcher and Neo4j."""

    java: Path
    classpath: str  # launcher classes first, then every Neo4j jar


def ensure_built(home: Path) -> Build:
    """Resolve the Neo4j jars with Maven and compile the launcher into ``home/build``, once.

    The build is redone only when pom.xml or DevServer.java changed. Also used by the bulk importer.
    """
    java, javac = _java_tools()
    build_dir = Path(home).resolve() / "build"
    classes = build_dir / "classes"
    classpath_file = build_dir / "classpath.txt"
    stamp_file = build_dir / "stamp"
    stamp = _source_stamp()
    if stamp_file.exists() and stamp_file.read_text() == stamp and classpath_file.exists():
        return Build(java, f"{classes}{os.pathsep}{classpath_file.read_text().strip()}")

    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServerError("mvn not found: install Maven 3 (apt-get install maven) to fetch Neo4j's jars")
    started = time.monotonic()
    log.info("Building the Neo4j %s dev launcher in %s (with an empty ~/.m2 Maven fetches ~150 MB of jars)", NEO4J_VERSION, build_dir)
    if build_dir.exists():
        shutil.rmtree(build_dir)
    classes.mkdir(parents=True)
    _run_build_step(
        [mvn, "-B", "-q", "-f", str(_POM), "dependency:build-classpath", f"-Dmdep.outputFile={classpath_file}"],
        "Maven could not resolve the Neo4j jars (is Maven Central reachable?)",
    )
    jars = classpath_file.read_text().strip()
    _run_build_step(
        [str(javac), "--release", "17", "-d", str(classes), "-cp", jars, str(_LAUNCHER_SOURCE)],
        "javac could not compile DevServer.java",
    )
    stamp_file.write_text(stamp)
    log.info("Built the dev launcher in %.1f s", time.monotonic() - started)
    return Build(java, f"{classes}{os.pathsep}{jars}")


def prepare_neo4j_home(home: Path) -> Path:
    """Create the Neo4j home inside ``home`` (with the conf/ folder neo4j-admin insists on)."""
    neo4j_home = Path(home).resolve() / "neo4j"
    (neo4j_home / "conf").mkdir(parents=True, exist_ok=True)
    return neo4j_home


def _java_tools() -> tuple[Path, Path]:
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        java, javac = Path(java_home) / "bin" / "java", Path(java_home) / "bin" / "javac"
    else:
        found_java, found_javac = shutil.which("java"), shutil.which("javac")
        if found_java is None:
            raise ServerError("java not found: install a JDK 17 or 21 (apt-get install openjdk-17-jdk-headless)")
        if found_javac is None:
            raise ServerError("javac not found: install a full JDK 17 or 21, not only a JRE")
        java, javac = Path(found_java), Path(found_javac)
    if not java.exists() or not javac.exists():
        raise ServerError(f"java or javac missing under JAVA_HOME={java_home}")
    major = _java_major(java)
    if major < 17:
        raise ServerError(f"Neo4j {NEO4J_VERSION} needs Java 17 or 21, but {java} is Java {major}")
    return java, javac


def _java_major(java: Path) -> int:
    result = subprocess.run([str(java), "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr)
    if match is None:
        raise ServerError(f"cannot tell the version of {java}: {result.stderr.strip()}")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major  # "1.8.0" means Java 8


def _run_build_step(command: list[str], failure: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()[-_OUTPUT_TAIL_LINES:]
        raise ServerError(f"{failure}; exit code {result.returncode}:\n" + "\n".join(output))


def _source_stamp() -> str:
    digest = hashlib.sha256()
    for path in (_POM, _LAUNCHER_SOURCE):
        digest.update(path.read_bytes())
    return digest.hexdigest()
