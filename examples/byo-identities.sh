#!/usr/bin/env bash
# Bring your own identities: an AKS cluster whose control plane runs as a user-assigned
# identity you made (myIdentity) and whose kubelets run as another (myKubeletIdentity).
#
# The control plane must be allowed to assign the kubelet identity to the nodes: the
# "Managed Identity Operator" role on myKubeletIdentity. The demo shows
#
#   1. the create failing with CustomKubeletIdentityMissingPermissionError when there is no
#      such grant (what an ARM template or SDK without the role assignment gets; az itself
#      always makes the grant first);
#   2. the grant made (the guide's `az role assignment create`), existing at once but not
#      yet effective: `armlet explain` says so, and when;
#   3. `az aks create` accepted but held by armlet until the grant takes effect, visible in
#      `armlet events`, then completing once the clock moves past the propagation delay.
#
# Needs a running armlet and `eval "$(armlet env)"`. The armlet CLI is $ARMLET_BIN or
# `armlet` on PATH.
set -euo pipefail
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

demo_start byo
CLUSTER="myManagedCluster"
API="2026-06-01"
ASSIGN="Microsoft.ManagedIdentity/userAssignedIdentities/assign/action"

# The clock stands still while the demo looks at a grant "a moment old"; it moves only when
# the demo says so (and runs again at the end if it was running before).
freeze_clock

# ---------------------------------------------------------------------------------------
say "1. A resource group and the two identities (az identity create)"
az group create -n "$RG" -l "$LOC" -o none
CP_JSON="$(az identity create --name myIdentity --resource-group "$RG" -o json)"
KL_JSON="$(az identity create --name myKubeletIdentity --resource-group "$RG" -o json)"
CP_ID="$(printf '%s' "$CP_JSON" | pyjson 'd["id"]')"
CP_OID="$(printf '%s' "$CP_JSON" | pyjson 'd["principalId"]')"
KL_ID="$(printf '%s' "$KL_JSON" | pyjson 'd["id"]')"
KL_OID="$(printf '%s' "$KL_JSON" | pyjson 'd["principalId"]')"
KL_CLIENT="$(printf '%s' "$KL_JSON" | pyjson 'd["clientId"]')"
show az identity list -g "$RG" --query "[].{Name:name, Id:id, Location:location}" -o table

# ---------------------------------------------------------------------------------------
say "2. May the control plane (myIdentity) assign myKubeletIdentity? Ask armlet."
EXPLAIN=("$ARMLET" explain --principal "$CP_OID" --action "$ASSIGN" --scope "$KL_ID")
"${EXPLAIN[@]}" | pyjson '{"allowed": d["allowed"], "pending": d["pending"], "rolesThatWouldAllow": d["rolesThatWouldAllow"][:3]}' | indent
notice "not allowed, nothing pending; Managed Identity Operator is the narrowest role that would do"
[ "$("${EXPLAIN[@]}" | pyjson 'd["allowed"]')" = "false" ] || fail "myIdentity may already assign the kubelet identity"

# ---------------------------------------------------------------------------------------
say "3. Create the cluster without the grant, as an ARM template would (PUT over az rest)"
BODY="$(python3 -c '
import json, sys
cp, kl, kl_client, kl_oid, loc = sys.argv[1:]
print(json.dumps({
    "location": loc,
    "identity": {"type": "UserAssigned", "userAssignedIdentities": {cp: {}}},
    "properties": {
        "dnsPrefix": "byo-demo",
        "agentPoolProfiles": [{"name": "nodepool1", "count": 3, "vmSize": "Standard_DS2_v2", "mode": "System", "osType": "Linux"}],
        "identityProfile": {"kubeletidentity": {"resourceId": kl, "clientId": kl_client, "objectId": kl_oid}},
    },
}))
' "$CP_ID" "$KL_ID" "$KL_CLIENT" "$KL_OID" "$LOC")"
CLUSTER_ID="/subscriptions/$ARMLET_SUBSCRIPTION_ID/resourceGroups/$RG/providers/Microsoft.ContainerService/managedClusters/$CLUSTER"
if OUT="$(az rest --method put --url "$CLUSTER_ID?api-version=$API" --body "$BODY" -o json 2>&1)"; then
    fail "the create without a Managed Identity Operator grant succeeded: $OUT"
fi
printf '%s\n' "$OUT" | indent
notice "400 CustomKubeletIdentityMissingPermissionError: nothing was created"
printf '%s' "$OUT" | grep -q CustomKubeletIdentityMissingPermissionError ||
    fail "expected CustomKubeletIdentityMissingPermissionError"

# ---------------------------------------------------------------------------------------
say "4. The guide's grant: Managed Identity Operator on the kubelet identity"
show az role assignment create --assignee-object-id "$CP_OID" --assignee-principal-type ServicePrincipal \
    --role "Managed Identity Operator" --scope "$KL_ID" --query "{principalId: principalId, scope: scope}" -o json
"${EXPLAIN[@]}" | pyjson '{"allowed": d["allowed"], "pending": [{"roleName": p["roleName"], "effectiveAt": p["effectiveAt"]} for p in d["pending"]]}' | indent
notice "the assignment exists, but is pending: it takes effect after the propagation delay"
[ "$("${EXPLAIN[@]}" | pyjson '[p["roleName"] for p in d["pending"]]')" = '["Managed Identity Operator"]' ] ||
    fail "armlet explain shows no pending Managed Identity Operator grant"

# ---------------------------------------------------------------------------------------
say "5. az aks create --assign-identity --assign-kubelet-identity (accepted, then held)"
# --no-wait: az returns once armlet has accepted the PUT; --no-ssh-key: no key from ~/.ssh.
quietly az aks create --resource-group "$RG" --name "$CLUSTER" --enable-managed-identity \
    --assign-identity "$CP_ID" --assign-kubelet-identity "$KL_ID" --no-ssh-key --no-wait -o none
STATE="$(az aks show -g "$RG" -n "$CLUSTER" --query provisioningState -o tsv)"
printf '    $ az aks show -g %s -n %s --query provisioningState -o tsv\n    %s\n' "$RG" "$CLUSTER" "$STATE"
printf '    $ armlet events   (the lines about %s)\n' "$RG"
"$ARMLET" events | grep -i -e '^pending' -e '^fired' -e "$RG" | indent
notice "pending: the role assignment's propagation, and the cluster write waiting for it"
ctl_get /_armlet/events | python3 -c '
import json, sys
pending = json.load(sys.stdin)["pending"]
kinds = {p["kind"] for p in pending if sys.argv[1].lower() in p["subject"].lower()}
sys.exit(0 if "Microsoft.ContainerService/managedClusters/write" in kinds else 1)
' "$RG/providers/Microsoft.ContainerService/managedClusters/$CLUSTER" || fail "armlet events shows no pending write of $CLUSTER"
[ "$STATE" = "Creating" ] || fail "the cluster should still be Creating"

# ---------------------------------------------------------------------------------------
DELAY="$(propagation_delay_s)"
say "6. Time passes: armlet clock advance $((DELAY + 2))s (the propagation delay is ${DELAY}s)"
show "$ARMLET" clock advance "$((DELAY + 2))s"
restore_clock
az aks wait -g "$RG" -n "$CLUSTER" --created --interval 1 --timeout 60
QUERY="{provisioningState: provisioningState, identity: identity.type, kubelet: identityProfile.kubeletidentity.resourceId}"
MC="$(az aks show -g "$RG" -n "$CLUSTER" --query "$QUERY" -o json)"
printf '    $ az aks show -g %s -n %s --query "%s"\n%s\n' "$RG" "$CLUSTER" "$QUERY" "$MC" | sed '2,$s/^/    /'
[ "$(printf '%s' "$MC" | pyjson 'd["provisioningState"]')" = "Succeeded" ] || fail "the cluster did not finish creating"
GOT_KUBELET="$(printf '%s' "$MC" | pyjson 'd["kubelet"]')"
same_id "$GOT_KUBELET" "$KL_ID" || fail "the kubelet identity is $GOT_KUBELET, not $KL_ID"
printf '    $ armlet cluster nodes %s\n' "$CLUSTER_ID"
print_nodes "$CLUSTER_ID"
notice "every kubelet runs as myKubeletIdentity ($KL_CLIENT)"
[ "$(ctl_get "/_armlet/clusters$CLUSTER_ID/nodes" | pyjson 'sorted({n["kubelet"]["clientId"] for n in d["value"]})')" = "[\"$KL_CLIENT\"]" ] ||
    fail "the nodes do not use myKubeletIdentity"

demo_end
