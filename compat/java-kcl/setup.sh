#!/usr/bin/env bash
# Fetches the Java KCL 3.x and its dependencies from Maven Central (compat/java-kcl/jars) and compiles
# InteropApp.java (compat/java-kcl/classes), for the opt-in Java interoperability tests:
#   bash compat/java-kcl/setup.sh && MILLRACE_JAVA_KCL=1 .venv/bin/pytest -q compat/python/test_java_kcl.py
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
if [[ ! -d jars ]] || [[ -z "$(ls jars)" ]]; then
    mvn -q -B dependency:copy-dependencies -DoutputDirectory=jars
fi
mkdir -p classes
javac -nowarn -d classes -cp "jars/*" InteropApp.java
echo "compat/java-kcl ready: $(ls jars | wc -l) jars, classes in $here/classes"
