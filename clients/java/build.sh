#!/usr/bin/env bash
# Build the Java client with the JDK alone (no Maven needed): compile src/main and src/test, run the JUnit 5
# tests, build the jar and the javadoc. Output in build/ next to this script. Fails on any failure.
#
#   ./build.sh                 everything
#   ./build.sh --no-tests      compile, jar and javadoc only
#   ./build.sh --no-javadoc    skip the javadoc
#
# Dependencies come from Debian's packages (default-jdk-headless, libbcprov-java, junit5); set BCPROV_JAR or
# JUNIT_CONSOLE_JAR to use other copies. The spec vectors are read from ../../spec/vectors (-Dkefu.vectors).
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)
BCPROV_JAR=${BCPROV_JAR:-/usr/share/java/bcprov.jar}
JUNIT_CONSOLE_JAR=${JUNIT_CONSOLE_JAR:-/usr/share/java/junit-platform-console-standalone.jar}
VERSION=0.1.0
RUN_TESTS=1
RUN_JAVADOC=1
for arg in "$@"; do
    case "$arg" in
        --no-tests) RUN_TESTS=0 ;;
        --no-javadoc) RUN_JAVADOC=0 ;;
        *) echo "build.sh: unknown option $arg" >&2; exit 2 ;;
    esac
done
for f in "$BCPROV_JAR" $( [ "$RUN_TESTS" = 1 ] && echo "$JUNIT_CONSOLE_JAR" ); do
    [ -f "$f" ] || { echo "build.sh: missing $f (apt-get install libbcprov-java junit5)" >&2; exit 2; }
done
command -v javac >/dev/null || { echo "build.sh: javac not found (apt-get install default-jdk-headless)" >&2; exit 2; }

B=${KEFU_JAVA_BUILD:-build}
rm -rf "$B/classes" "$B/test-classes" "$B/example-classes" "$B/javadoc"
mkdir -p "$B/classes" "$B/test-classes" "$B/example-classes"
JAVAC=(javac --release 17 -encoding UTF-8 -Xlint:all,-serial,-try,-path -Werror)

echo "== compile main"
find src/main/java -name '*.java' > "$B/main-sources.txt"
"${JAVAC[@]}" -d "$B/classes" -cp "$BCPROV_JAR" @"$B/main-sources.txt"

echo "== jar"
mkdir -p "$B/meta"
printf 'Automatic-Module-Name: io.kefu.client\nImplementation-Title: kefu-client\nImplementation-Version: %s\n' \
    "$VERSION" > "$B/meta/MANIFEST.MF"
jar --create --file "$B/kefu-client-$VERSION.jar" --manifest "$B/meta/MANIFEST.MF" -C "$B/classes" .

echo "== compile examples"
if ls examples/*.java >/dev/null 2>&1; then
    "${JAVAC[@]}" -d "$B/example-classes" -cp "$B/classes:$BCPROV_JAR" examples/*.java
fi

if [ "$RUN_TESTS" = 1 ]; then
    echo "== compile tests"
    find src/test/java -name '*.java' > "$B/test-sources.txt"
    if [ -s "$B/test-sources.txt" ]; then
        "${JAVAC[@]}" -d "$B/test-classes" -cp "$B/classes:$BCPROV_JAR:$JUNIT_CONSOLE_JAR" @"$B/test-sources.txt"
        echo "== run tests"
        # Exit status 1 on any failed test, 2 when no test was found.
        java -Dkefu.vectors="${KEFU_VECTORS:-$HERE/../../spec/vectors}" \
            -jar "$JUNIT_CONSOLE_JAR" --class-path "$B/test-classes:$B/classes:$BCPROV_JAR" \
            --scan-class-path "$B/test-classes" --fail-if-no-tests --disable-banner \
            --details=summary --details-theme=ascii \
            ${JUNIT_EXCLUDE_TAGS:+--exclude-tag "$JUNIT_EXCLUDE_TAGS"}
    fi
fi

if [ "$RUN_JAVADOC" = 1 ]; then
    echo "== javadoc"
    javadoc -quiet -Xdoclint:all -Werror -encoding UTF-8 -d "$B/javadoc" -cp "$BCPROV_JAR" \
        -sourcepath src/main/java -subpackages io.kefu -windowtitle "kefu Java client $VERSION" \
        -doctitle "kefu Java client $VERSION" >"$B/javadoc.log" 2>&1 || { cat "$B/javadoc.log" >&2; exit 1; }
fi
echo "build.sh: OK ($B/kefu-client-$VERSION.jar)"
