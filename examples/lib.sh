# Shared helpers for the armlet demos (sourced, not run).
#
# Every demo reads what `eval "$(armlet env)"` exports (ARMLET_URL, ARMLET_HTTPS_URL,
# ARMLET_CLIENT_ID, ARMLET_CLIENT_SECRET, ARMLET_TENANT_ID, ARMLET_SUBSCRIPTION_ID,
# AZURE_CONFIG_DIR, REQUESTS_CA_BUNDLE, ...) and runs the armlet CLI as $ARMLET_BIN
# (default: `armlet` on PATH). JSON is read with python3, never jq.

set -euo pipefail

ARMLET="${ARMLET_BIN:-armlet}"
LOC="westus2"

# --- narration -------------------------------------------------------------------------

say() { printf '\n==> %s\n' "$*"; }           # a step
notice() { printf '    notice: %s\n' "$*"; }   # what to look at
indent() { sed 's/^/    /'; }
fail() {
    printf '\nDEMO FAILED: %s\n' "$*" >&2
    exit 1
}
# Echo a command, then run it (its output indented).
show() {
    local shown=("$@")
    if [ "$1" = "$ARMLET" ]; then shown[0]="armlet"; fi
    printf '    $ %s\n' "${shown[*]}"
    "$@" 2>&1 | indent
    return "${PIPESTATUS[0]}"
}

# Run a command with its stderr held back (az's progress bars and warnings), shown only if
# the command fails.
quietly() {
    local err rc=0
    err="$(mktemp)"
    "$@" 2>"$err" || rc=$?
    if [ "$rc" -ne 0 ]; then cat "$err" >&2; fi
    rm -f "$err"
    return "$rc"
}

# --- JSON ------------------------------------------------------------------------------

# `... | pyjson 'EXPR'`: evaluates EXPR on the JSON document `d` read from stdin; prints
# strings as they are and anything else as JSON.
pyjson() {
    python3 -c '
import json, sys
d = json.load(sys.stdin)
r = eval(sys.argv[1], {"d": d, "json": json})
print(r if isinstance(r, str) else json.dumps(r))
' "$1"
}

new_uuid() { python3 -c 'import uuid; print(uuid.uuid4())'; }

# Lower-case comparison of two resource ids (ARM ids are case-insensitive).
same_id() { [ "$(printf '%s' "$1" | tr '[:upper:]' '[:lower:]')" = "$(printf '%s' "$2" | tr '[:upper:]' '[:lower:]')" ]; }

# --- armlet's control API --------------------------------------------------------------

ctl_get() {
    local auth=()
    if [ -n "${ARMLET_CONTROL_TOKEN:-}" ]; then auth=(-H "Authorization: Bearer $ARMLET_CONTROL_TOKEN"); fi
    curl -fsS "${auth[@]}" "$ARMLET_URL$1"
}

# The configured propagation delay, in whole seconds (rounded up).
propagation_delay_s() {
    ctl_get /_armlet/config | python3 -c '
import json, math, re, sys
text = json.load(sys.stdin)["propagationDelay"]
n, unit = re.fullmatch(r"([0-9.]+)([a-z]+)", text).groups()
print(math.ceil(float(n) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]))
'
}

# Freeze the simulated clock (so "a moment ago" stays a moment ago until the demo moves
# time); restore_clock, run on exit, lets it run again if it was running before.
_CLOCK_WAS=""
freeze_clock() {
    if [ -z "$_CLOCK_WAS" ]; then _CLOCK_WAS="$(ctl_get /_armlet/clock | pyjson 'd["mode"]')"; fi
    "$ARMLET" clock freeze >/dev/null
}
restore_clock() {
    if [ "$_CLOCK_WAS" = "real" ]; then "$ARMLET" clock resume >/dev/null || true; fi
    _CLOCK_WAS=""
}

# One line per node: name, node image, the kubelet's credential, cordoned or not.
print_nodes() {
    "$ARMLET" cluster nodes "$1" | python3 -c '
import json, sys
for n in json.load(sys.stdin)["value"]:
    k = n["kubelet"]
    state = "CORDONED" if n["cordoned"] else ("ready" if n["ready"] else "not ready")
    print("    %s  %s  kubelet=%s:%s  %s" % (n["name"], n["nodeImageVersion"], k["type"], k["clientId"], state))
'
}

# --- start-up --------------------------------------------------------------------------

# Checks the environment, logs az in as armlet's default service principal if it is not
# logged in yet, and picks a suffix for this run's resource names.
demo_start() {
    local name="$1"
    for tool in az curl python3; do
        command -v "$tool" >/dev/null 2>&1 || fail "$tool is not on PATH"
    done
    command -v "$ARMLET" >/dev/null 2>&1 || fail "the armlet CLI ($ARMLET) is not on PATH; set ARMLET_BIN"
    [ -n "${ARMLET_URL:-}" ] && [ -n "${ARMLET_CLIENT_ID:-}" ] ||
        fail 'no armlet environment: run  eval "$(armlet env)"  first'
    "$ARMLET" health --wait 30s >/dev/null || fail "armlet at $ARMLET_URL is not answering"
    trap restore_clock EXIT

    if ! az account show -o none >/dev/null 2>&1; then
        say "az is not logged in: logging in as armlet's default service principal"
        az login --service-principal -u "$ARMLET_CLIENT_ID" -p "$ARMLET_CLIENT_SECRET" \
            --tenant "$ARMLET_TENANT_ID" -o none
    fi
    SUFFIX="${DEMO_SUFFIX:-$(python3 -c 'import random; print(random.randrange(10**5, 10**6))')}"
    RG="armlet-demo-$name-$SUFFIX"
    printf '%s demo against armlet at %s (resource group %s)\n' "$name" "$ARMLET_URL" "$RG"
}

demo_end() {
    restore_clock
    say "Done. To clean up: az group delete -n $RG --yes --no-wait"
}
