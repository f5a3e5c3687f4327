"""Finding Java and the Maven-resolved jar sets (``make setup`` fills ``<jars_dir>/<set>/``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from lakehouse.config import Config
from lakehouse.errors import StackError

JAR_SETS = ("spark", "kafka", "hadoop", "metastore")
MIN_JAVA = 17
JAVA_FIX = "install a JDK 17 or newer (Debian: apt-get install openjdk-17-jdk-headless) or set JAVA_HOME to one"


def java_binary(cfg: Config) -> Path:
    """The ``java`` executable: config ``java_home``, else ``$JAVA_HOME``, else ``java`` on PATH."""
    if cfg.java_home is not None:
        home, origin = cfg.java_home, f"java_home in {cfg.source}"
    elif os.environ.get("JAVA_HOME"):
        home, origin = Path(os.environ["JAVA_HOME"]), "JAVA_HOME"
    else:
        found = shutil.which("java")
        if not found:
            raise StackError("Java was not found (no JAVA_HOME and no `java` on PATH)", fix=JAVA_FIX)
        return Path(found)
    candidate = home / "bin" / "java"
    if not os.access(candidate, os.X_OK):
        raise StackError(f"Java was not found at {candidate} (from {origin})", fix=JAVA_FIX)
    return candidate


def spark_home() -> Path:
    """pyspark's own Spark distribution: bin/spark-submit and bin/spark-class, jars/ (Spark Connect included)."""
    import pyspark

    return Path(pyspark.__file__).parent


def java_home(cfg: Config) -> Path:
    """The JDK home matching :func:`java_binary` (what Spark's launcher wants in ``JAVA_HOME``)."""
    return java_binary(cfg).resolve().parent.parent


def java_major_version(java: Path) -> int:
    """Major version of a ``java`` executable, e.g. 17."""
    out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=60, check=False).stderr
    for token in out.replace('"', " ").split():
        head = token.split(".")[0].split("-")[0].split("+")[0]
        if head.isdigit() and ("." in token or token.isdigit()):
            return int(head)
    raise StackError(f"could not read the Java version from `{java} -version`: {out.strip()[:200]}", fix=JAVA_FIX)


def check_java(cfg: Config) -> Path:
    """The ``java`` executable, after checking it is Java 17 or newer."""
    java = java_binary(cfg)
    major = java_major_version(java)
    if major < MIN_JAVA:
        raise StackError(f"{java} is Java {major}; the stack needs Java {MIN_JAVA}+", fix=JAVA_FIX)
    return java


def jar_dir(cfg: Config, jar_set: str) -> Path:
    """Folder of one jar set, checked to exist and hold jars."""
    folder = cfg.jars_dir / jar_set
    if not folder.is_dir() or not any(folder.glob("*.jar")):
        raise StackError(
            f"the {jar_set} jars are missing from {folder}",
            fix="run `make setup` (it resolves them with Maven from jvm/*.pom.xml and compiles jvm/crypto)",
        )
    return folder


def jars(cfg: Config, jar_set: str) -> list[Path]:
    """Every jar of one set, sorted by name."""
    return sorted(jar_dir(cfg, jar_set).glob("*.jar"))


def classpath(cfg: Config, jar_set: str, *extra: Path) -> str:
    """A JVM classpath: extra folders (e.g. a config dir) first, then the set's jars."""
    return os.pathsep.join([*(str(p) for p in extra), str(jar_dir(cfg, jar_set) / "*")])
