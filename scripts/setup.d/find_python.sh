# Sourced by scripts/setup.sh and scripts/setup.d/teacher.sh (the caller defines `say`).
# find_python VERSION OVERRIDE_VAR: the path of a Python VERSION interpreter, the one named
# by $OVERRIDE_VAR first, else the usual places; exits naming the variable when none is.
find_python() {
    local version=$1 override_var=$2
    local override=${!override_var:-}
    for candidate in "$override" "python$version" /root/.pyenv/versions/"$version"*/bin/python"$version" \
                     /usr/local/bin/python"$version" /usr/bin/python"$version"; do
        [[ -n "$candidate" ]] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
           "$candidate" -c "import sys; sys.exit('%d.%d' % sys.version_info[:2] != '$version')" 2>/dev/null; then
            command -v "$candidate"; return
        fi
    done
    say "Python $version not found (set $override_var=/path/to/python$version)"; exit 1
}
