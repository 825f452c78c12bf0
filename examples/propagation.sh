#!/usr/bin/env bash
# Two ways a script that grants a role and then uses it fails on Azure, and how to write it
# so it does not. armlet reproduces both on its clock:
#
#   PrincipalNotFound  a role assignment for an identity created moments ago, without a
#                      principalType: ARM cannot find the principal yet (replication lag).
#                      Fix: say what it is (`--assignee-principal-type ServicePrincipal`,
#                      or "principalType": "ServicePrincipal" in the body).
#   AuthorizationFailed  the identity uses its new role right away: the assignment exists
#                      but has not taken effect (propagation delay, "up to 10 minutes").
#                      Fix: retry 403 AuthorizationFailed with backoff.
#
# For each, a naive version fails and a correct one succeeds. The clock is frozen while the
# demo runs, so "moments ago" is exact; the correct script's backoff waits by moving the
# simulated clock (`armlet clock advance`) where a real script would `sleep`.
#
# Needs a running armlet and `eval "$(armlet env)"`. The armlet CLI is $ARMLET_BIN or
# `armlet` on PATH.
set -euo pipefail
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

demo_start propagation
READER="acdd72a7-3385-48ef-bd42-f606fba81ae7"  # the built-in Reader role's id
freeze_clock

say "A resource group and a brand-new user-assigned identity for a workload"
RG_ID="$(az group create -n "$RG" -l "$LOC" --query id -o tsv)"
ID_JSON="$(az identity create --name myWorkload --resource-group "$RG" -o json)"
OID="$(printf '%s' "$ID_JSON" | pyjson 'd["principalId"]')"
CLIENT_ID="$(printf '%s' "$ID_JSON" | pyjson 'd["clientId"]')"
printf '    principalId %s (created just now; the clock stands still)\n' "$OID"

# =======================================================================================
say "PrincipalNotFound, naive: PUT the role assignment without principalType"
notice "(az 2.91 looks the principal's type up in Graph first, so this is what an ARM"
notice " template, Terraform or an SDK call that leaves principalType out sends)"
NAIVE_BODY="{\"properties\": {\"roleDefinitionId\": \"/subscriptions/$ARMLET_SUBSCRIPTION_ID/providers/Microsoft.Authorization/roleDefinitions/$READER\", \"principalId\": \"$OID\"}}"
printf '    $ az rest --method put --url %s/providers/Microsoft.Authorization/roleAssignments/<new guid>?api-version=2022-04-01 --body %s\n' "$RG_ID" "$NAIVE_BODY"
if OUT="$(az rest --method put --url "$RG_ID/providers/Microsoft.Authorization/roleAssignments/$(new_uuid)?api-version=2022-04-01" \
    --body "$NAIVE_BODY" -o json 2>&1)"; then
    fail "the naive role assignment succeeded (expected PrincipalNotFound): $OUT"
fi
printf '%s\n' "$OUT" | indent
printf '%s' "$OUT" | grep -q PrincipalNotFound || fail "expected PrincipalNotFound"
notice "PrincipalNotFound: 'this error might be related to a replication delay'"

say "PrincipalNotFound, correct: tell ARM it is a service principal"
show az role assignment create --assignee-object-id "$OID" --assignee-principal-type ServicePrincipal \
    --role Reader --scope "$RG_ID" --query "{principalId: principalId, principalType: principalType, scope: scope}" -o json
notice "accepted at once: with principalType ARM does not need to find the principal first"

# =======================================================================================
# The workload: a token from IMDS for its identity, then a read of its resource group.
# Prints the HTTP status; the response body is left in $BODY_FILE.
IMDS="$ARMLET_URL/metadata/identity/oauth2/token?api-version=2018-02-01&resource=$ARMLET_HTTPS_URL/&client_id=$CLIENT_ID"
BODY_FILE="$(mktemp)"
trap 'rm -f "$BODY_FILE"; restore_clock' EXIT
read_group() {
    local token
    token="$(curl -fsS -H Metadata:true "$IMDS" | pyjson 'd["access_token"]')"
    curl -sS -o "$BODY_FILE" -w '%{http_code}' --cacert "$REQUESTS_CA_BUNDLE" \
        -H "Authorization: Bearer $token" "$ARMLET_HTTPS_URL$RG_ID?api-version=2021-04-01"
}
error_code() { pyjson 'd.get("error", {}).get("code", "")' <"$BODY_FILE"; }

say "AuthorizationFailed, naive: the workload reads its resource group right after the grant"
STATUS="$(read_group)"
printf '    GET %s -> HTTP %s\n' "$RG_ID" "$STATUS"
pyjson 'd["error"]["message"]' <"$BODY_FILE" | fold -s -w 100 | indent
[ "$STATUS" = "403" ] && [ "$(error_code)" = "AuthorizationFailed" ] ||
    fail "the naive read should get 403 AuthorizationFailed, got HTTP $STATUS"
notice "the naive script stops here. The grant is fine; it just has not taken effect:"
"$ARMLET" explain --principal "$OID" --action Microsoft.Resources/subscriptions/resourceGroups/read --scope "$RG_ID" |
    pyjson '{"allowed": d["allowed"], "pending": [{"roleName": p["roleName"], "effectiveAt": p["effectiveAt"]} for p in d["pending"]]}' | indent

say "AuthorizationFailed, correct: retry 403 AuthorizationFailed with exponential backoff"
# On Azure: sleep "$1". Here the simulated clock moves instead, so the demo takes no wall
# time and its outcome does not depend on how fast az and curl are.
backoff_wait() { "$ARMLET" clock advance "${1}s" >/dev/null; }
ATTEMPT=1
WAIT=1
while :; do
    STATUS="$(read_group)"
    printf '    attempt %d: HTTP %s %s\n' "$ATTEMPT" "$STATUS" "$( [ "$STATUS" = 200 ] || error_code)"
    if [ "$STATUS" = "200" ]; then break; fi
    [ "$STATUS" = "403" ] && [ "$(error_code)" = "AuthorizationFailed" ] ||
        fail "unexpected answer (not a propagation delay): HTTP $STATUS $(cat "$BODY_FILE")"
    [ "$ATTEMPT" -lt 8 ] || fail "still denied after $ATTEMPT attempts"
    printf '               waiting %ss\n' "$WAIT"
    backoff_wait "$WAIT"
    ATTEMPT=$((ATTEMPT + 1))
    WAIT=$((WAIT * 2))
done
[ "$ATTEMPT" -gt 1 ] || fail "the first attempt already succeeded: nothing was demonstrated"
pyjson '"    read %s (%s) as the workload identity" % (d["name"], d["location"])' <"$BODY_FILE"
notice "the correct script got there after $ATTEMPT attempts: it retried only AuthorizationFailed,"
notice "waiting longer each time, instead of failing on the first 403"

demo_end
