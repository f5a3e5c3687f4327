#!/usr/bin/env bash
# Resolve the JVM jar sets with Maven from Maven Central into $JARS_DIR/<set>/ (git-ignored).
#   spark  : Delta Lake + the Spark Kafka source, minus every jar pyspark already ships
#   kafka  : the Kafka broker (KRaft) and its tools
#   hadoop : the HDFS daemons (NameNode, DataNode)
#   metastore: the Derby network server holding the Hive metastore databases, and its client driver
#   crypto : not from Maven: jvm/crypto/src compiled against pyspark's Parquet and Hadoop jars (the file-based
#            key-management client of Parquet modular encryption, lakehouse/security/encryption.py)
# Idempotent: a set is re-resolved only when its pom changed (a stamp holds the pom's checksum).
set -euo pipefail
cd "$(dirname "$0")/.."
JARS_DIR=${JARS_DIR:-.jars}
PYTHON=${PYTHON:-.venv/bin/python}
pyspark_jars=$("$PYTHON" -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')

for set in spark kafka hadoop metastore; do
  pom="jvm/$set.pom.xml"
  out="$JARS_DIR/$set"
  sum=$(sha256sum "$pom" | cut -d' ' -f1)
  if [[ -f "$out/.stamp" && "$(cat "$out/.stamp")" == "$sum" ]]; then
    echo "jars: $set up to date ($(ls "$out"/*.jar | wc -l) jars)"
    continue
  fi
  echo "jars: resolving $set with Maven ..."
  rm -rf "$out.tmp" && mkdir -p "$out.tmp"
  mvn -q -B -f "$pom" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$PWD/$out.tmp"
  if [[ $set == spark ]]; then
    # Spark already ships Scala, Hadoop client, Jackson, Parquet, log4j, ...: keep only what it lacks,
    # comparing artifact names without versions, so no class exists twice on Spark's classpath.
    for jar in "$out.tmp"/*.jar; do
      artifact=$(basename "$jar" | sed -E 's/-[0-9][^-]*(-[A-Za-z0-9.]+)?\.jar$//')
      if compgen -G "$pyspark_jars/$artifact-[0-9]*.jar" >/dev/null; then rm "$jar"; fi
    done
  fi
  echo "$sum" > "$out.tmp/.stamp"
  rm -rf "$out" && mv "$out.tmp" "$out"
  echo "jars: $set resolved ($(ls "$out"/*.jar | wc -l) jars, $(du -sh "$out" | cut -f1))"
done

# the crypto set: javac, then jar (both in the JDK), re-built only when the sources or pyspark's jars changed
out="$JARS_DIR/crypto"
cp=$(ls "$pyspark_jars"/parquet-hadoop-[0-9]*.jar "$pyspark_jars"/parquet-common-[0-9]*.jar "$pyspark_jars"/hadoop-client-api-[0-9]*.jar | paste -sd:)
sum=$( (find jvm/crypto/src -name '*.java' -print0 | sort -z | xargs -0 sha256sum; echo "$cp") | sha256sum | cut -d' ' -f1)
if [[ -f "$out/.stamp" && "$(cat "$out/.stamp")" == "$sum" ]]; then
  echo "jars: crypto up to date"
else
  echo "jars: compiling crypto (jvm/crypto/src) ..."
  rm -rf "$out.tmp" && mkdir -p "$out.tmp/classes"
  find jvm/crypto/src -name '*.java' -print0 | xargs -0 javac --release 17 -Xlint:all -Werror -d "$out.tmp/classes" -cp "$cp"
  jar --create --file "$out.tmp/healthlake-crypto.jar" -C "$out.tmp/classes" .
  rm -rf "$out.tmp/classes" && echo "$sum" > "$out.tmp/.stamp"
  rm -rf "$out" && mv "$out.tmp" "$out"
  echo "jars: crypto built ($out/healthlake-crypto.jar)"
fi
