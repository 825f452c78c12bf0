#!/usr/bin/env bash
# Managed identity credential rotation: a workload keeps getting tokens for its
# user-assigned identity from IMDS while the simulated clock crosses two of the 46-day
# rotations the AKS guide mentions ("Credential rotation for MI happens automatically every
# 46 days"). Nothing in the workload changes; the credential behind its tokens does.
#
# What to look at: each token's `cred_thumbprint` claim (armlet's claim naming the
# credential that minted it), the identity's clientSecretUrl (the current credential's
# thumbprint and validity), and ARM accepting every token.
#
# Needs a running armlet and `eval "$(armlet env)"`. The armlet CLI is $ARMLET_BIN or
# `armlet` on PATH. Note: it moves armlet's clock forward 92 days.
set -euo pipefail
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

demo_start rotation
NAME="myWorkloadIdentity"

# ---------------------------------------------------------------------------------------
say "1. A user-assigned identity for the workload, with Reader on its resource group"
RG_ID="$(az group create -n "$RG" -l "$LOC" --query id -o tsv)"
ID_JSON="$(az identity create --name "$NAME" --resource-group "$RG" -o json)"
IDENTITY_ID="$(printf '%s' "$ID_JSON" | pyjson 'd["id"]')"
CLIENT_ID="$(printf '%s' "$ID_JSON" | pyjson 'd["clientId"]')"
PRINCIPAL_ID="$(printf '%s' "$ID_JSON" | pyjson 'd["principalId"]')"
az role assignment create --assignee-object-id "$PRINCIPAL_ID" --assignee-principal-type ServicePrincipal \
    --role Reader --scope "$RG_ID" -o none
# The grant takes effect after the propagation delay: move the clock past it.
"$ARMLET" clock advance "$(($(propagation_delay_s) + 1))s" >/dev/null
printf '    clientId %s, principalId %s\n' "$CLIENT_ID" "$PRINCIPAL_ID"

# az 2.91 does not print clientSecretUrl (its output model lacks the field); ARM returns it.
SECRET_URL="$(az rest --method get --url "$IDENTITY_ID?api-version=2024-11-30" --query properties.clientSecretUrl -o tsv)"
printf '    clientSecretUrl %s\n' "$SECRET_URL"

# The current credential, as the identity's clientSecretUrl shows it.
credential() {
    curl -fsS --cacert "$REQUESTS_CA_BUNDLE" "$SECRET_URL" |
        pyjson '"%s (not_before %s, renew_after %s, not_after %s)" % (d["thumbprint"], d["not_before"], d["renew_after"], d["not_after"])'
}
current_thumbprint() { curl -fsS --cacert "$REQUESTS_CA_BUNDLE" "$SECRET_URL" | pyjson 'd["thumbprint"]'; }

# The workload: a token from IMDS (exactly as on an Azure VM or pod, only the host differs),
# then one ARM call with it. Prints "<cred_thumbprint> <HTTP status>".
IMDS="$ARMLET_URL/metadata/identity/oauth2/token?api-version=2018-02-01&resource=$ARMLET_HTTPS_URL/&client_id=$CLIENT_ID"
workload() {
    local token thumb status
    token="$(curl -fsS -H Metadata:true "$IMDS" | pyjson 'd["access_token"]')"
    thumb="$(printf '%s' "$token" | python3 -c '
import base64, json, sys
payload = sys.stdin.read().split(".")[1]
print(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["cred_thumbprint"])
')"
    status="$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$REQUESTS_CA_BUNDLE" \
        -H "Authorization: Bearer $token" "$ARMLET_HTTPS_URL$RG_ID?api-version=2021-04-01")"
    printf '%s %s\n' "$thumb" "$status"
}

THUMBS=()
run_workload() {
    local day="$1" out thumb status
    out="$(workload)"
    thumb="${out% *}"
    status="${out#* }"
    printf '    day %-3s token minted by credential %s; GET resource group -> HTTP %s\n' "$day" "$thumb" "$status"
    printf '            clientSecretUrl: %s\n' "$(credential)"
    [ "$status" = "200" ] || fail "ARM refused the workload's token on day $day (HTTP $status)"
    [ "$thumb" = "$(current_thumbprint)" ] || fail "the token's cred_thumbprint is not the identity's current credential"
    THUMBS+=("$thumb")
}

# ---------------------------------------------------------------------------------------
say "2. Day 0: the workload gets a token and uses it"
run_workload 0

for day in 46 92; do
    say "Time passes: armlet clock advance 46d (to day $day)"
    printf '    $ armlet clock advance 46d   (the lines about %s)\n' "$NAME"
    OUT="$("$ARMLET" clock advance 46d)"
    printf '%s\n' "$OUT" | head -1 | indent
    printf '%s\n' "$OUT" | grep -i -- "credentialRotation.*$RG.*/$NAME" | indent ||
        fail "the clock passed renew_after but armlet reports no rotation of $NAME"
    notice "armlet fired Microsoft.ManagedIdentity/credentialRotation for the identity"
    run_workload "$day"
done

# ---------------------------------------------------------------------------------------
say "3. Three credentials in 92 days, and the tokens never stopped"
printf '    %s\n' "${THUMBS[@]}"
[ "$(printf '%s\n' "${THUMBS[@]}" | sort -u | wc -l)" -eq 3 ] || fail "expected three different credentials"
notice "a new credential every 46 days, each valid for 90, so the old one still works while"
notice "the new one takes over; the workload never had to know"

demo_end
