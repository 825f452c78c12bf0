#!/usr/bin/env bash
# Migrate a service-principal AKS cluster with an attached ACR to managed identities, the
# way the AKS "Use managed identities" guide says, and watch each of its warnings happen:
#
#   1. the service principal's secret expires (that is why you migrate);
#   2. `az aks update --enable-managed-identity` moves the control plane at once, but the
#      kubelets KEEP USING THE SERVICE PRINCIPAL;
#   3. `az aks nodepool upgrade --node-image-only` does nothing until a newer node image
#      (VHD) exists; then it reimages the nodes one by one onto the new kubelet identity;
#   4. that new kubelet identity cannot pull from the registry until you run
#      `az aks update --attach-acr` again and the grant propagates.
#
# Needs a running armlet and `eval "$(armlet env)"`. The armlet CLI is $ARMLET_BIN or
# `armlet` on PATH. Note: it publishes a node image release (step 5), for every region.
set -euo pipefail
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

demo_start migrate
CLUSTER="myAKSCluster"
ACR_NAME="armletdemo$SUFFIX"

health_json() { ctl_get "/_armlet/clusters$CLUSTER_ID/health"; }
# Whether each pool may pull from this demo's registry (the health report lists every
# registry of the subscription, each marked attached or not).
our_pulls() { health_json | pyjson '[p["ok"] for r in d["registries"] if r["loginServer"] == "'"$ACR_NAME"'.azurecr.io" for p in r["pulls"]]'; }
nodes_json() { ctl_get "/_armlet/clusters$CLUSTER_ID/nodes"; }

# ---------------------------------------------------------------------------------------
say "1. A resource group, a service principal for the cluster and a container registry"
az group create -n "$RG" -l "$LOC" -o none
SP_JSON="$(quietly az ad sp create-for-rbac --name "armlet-demo-aks-sp-$SUFFIX" -o json)"
APP_ID="$(printf '%s' "$SP_JSON" | pyjson 'd["appId"]')"
SECRET="$(printf '%s' "$SP_JSON" | pyjson 'd["password"]')"
ACR_ID="$(az acr create -n "$ACR_NAME" -g "$RG" --sku Basic --query id -o tsv)"
notice "service principal $APP_ID (its secret lasts one year), registry $ACR_NAME.azurecr.io"

# ---------------------------------------------------------------------------------------
say "2. The cluster, on the service principal, with the registry attached"
# --no-ssh-key: the demo does not depend on (or create) a key in ~/.ssh.
CLUSTER_ID="$(quietly az aks create -g "$RG" -n "$CLUSTER" --service-principal "$APP_ID" --client-secret "$SECRET" \
    --attach-acr "$ACR_ID" --no-ssh-key --query id -o tsv)"
printf '    created %s\n' "$CLUSTER_ID"
DELAY="$(propagation_delay_s)"
# az's AcrPull grant to the service principal takes effect after the propagation delay.
"$ARMLET" clock advance "$((DELAY + 1))s" >/dev/null
show "$ARMLET" cluster health "$CLUSTER_ID"
notice "the kubelets pull from the registry as the service principal, and 'pending' lists"
notice "Microsoft.Graph/secretExpiry: in a year the secret expires and the cluster breaks."
health_json | pyjson '[p["kind"] for p in d["pending"]]' | grep -q 'Microsoft.Graph/secretExpiry' ||
    fail "cluster health shows no pending secret expiry"
[ "$(health_json | pyjson 'd["healthy"]')" = "true" ] && [ "$(our_pulls)" = "[true]" ] ||
    fail "the service principal cluster is not healthy, or cannot pull from the registry"

# ---------------------------------------------------------------------------------------
say "3. az aks update --enable-managed-identity --yes"
az aks update -g "$RG" -n "$CLUSTER" --enable-managed-identity --yes -o none
SP_PROFILE="$(az aks show -g "$RG" -n "$CLUSTER" --query servicePrincipalProfile -o json)"
printf '    $ az aks show -g %s -n %s --query servicePrincipalProfile\n%s\n' "$RG" "$CLUSTER" "$SP_PROFILE" | sed '2,$s/^/    /'
[ "$(printf '%s' "$SP_PROFILE" | pyjson 'd["clientId"]')" = "msi" ] ||
    fail "servicePrincipalProfile.clientId is not msi after the update"
printf '    $ armlet cluster nodes %s\n' "$CLUSTER_ID"
print_nodes "$CLUSTER_ID"
notice "the control plane says msi, but every kubelet still uses ServicePrincipal:$APP_ID"
[ "$(nodes_json | pyjson 'sorted({n["kubelet"]["type"] for n in d["value"]})')" = '["ServicePrincipal"]' ] ||
    fail "the kubelets left the service principal before any node image upgrade"

# ---------------------------------------------------------------------------------------
say "4. az aks nodepool upgrade --node-image-only, with no newer node image released"
UPGRADE=(az aks nodepool upgrade -g "$RG" --cluster-name "$CLUSTER" -n nodepool1 --node-image-only)
"${UPGRADE[@]}" -o none
BOOTED="$(nodes_json | pyjson 'sorted({n["nodeImageVersion"] for n in d["value"]})')"
print_nodes "$CLUSTER_ID"
notice "nothing happened: 'an update will only work if there is an actual VHD update to consume'"
[ "$(nodes_json | pyjson 'sorted({n["kubelet"]["type"] for n in d["value"]})')" = '["ServicePrincipal"]' ] ||
    fail "the no-op upgrade moved the kubelets"
[ "$(nodes_json | pyjson 'sum(len(n["downtime"]) for n in d["value"])')" = "0" ] || fail "the no-op upgrade reimaged nodes"

# ---------------------------------------------------------------------------------------
say "5. A new node image is released (armlet node-images publish), and the upgrade runs"
show "$ARMLET" node-images publish
# Freeze the clock so the node-by-node reimage can be watched one simulated second at a time.
freeze_clock
"${UPGRADE[@]}" --no-wait -o none
STEP=0
while :; do
    STATE="$(nodes_json | python3 -c '
import json, sys
nodes = json.load(sys.stdin)["value"]
cordoned = [n["name"] for n in nodes if n["cordoned"]]
moved = sum(1 for n in nodes if n["kubelet"]["type"] == "ManagedIdentity")
print("%s %d/%d" % (",".join(cordoned) or "-", moved, len(nodes)))
')"
    CORDONED="${STATE% *}"
    DONE="${STATE#* }"
    printf '    t+%ss  cordoned: %-40s  nodes on the managed identity: %s\n' "$STEP" "$CORDONED" "$DONE"
    if [ "$CORDONED" = "-" ] && [ "${DONE%/*}" = "${DONE#*/}" ]; then break; fi
    [ "$STEP" -lt 30 ] || fail "the node image upgrade did not finish in 30 simulated seconds"
    "$ARMLET" clock advance 1s >/dev/null
    STEP=$((STEP + 1))
done
restore_clock
print_nodes "$CLUSTER_ID"
notice "one node at a time was cordoned, drained and reimaged (that is the guide's downtime"
notice "warning); each came back on the new image with the kubelet identity $CLUSTER-agentpool"
[ "$(nodes_json | pyjson 'sum(len(n["downtime"]) for n in d["value"])')" = "3" ] ||
    fail "expected each of the 3 nodes to be reimaged once"
[ "$(nodes_json | pyjson 'sorted({n["nodeImageVersion"] for n in d["value"]})')" != "$BOOTED" ] ||
    fail "the nodes are still on the old node image"
show az aks show -g "$RG" -n "$CLUSTER" --query identityProfile.kubeletidentity -o json

# ---------------------------------------------------------------------------------------
say "6. The new kubelet identity cannot pull from the registry"
show "$ARMLET" cluster health "$CLUSTER_ID" || true
notice "UNHEALTHY: the registry was attached to the service principal, not to $CLUSTER-agentpool"
[ "$(health_json | pyjson 'd["healthy"]')" = "false" ] || fail "the cluster should be unhealthy now"
[ "$(our_pulls)" = "[false]" ] ||
    fail "the registry pull should be denied"

# ---------------------------------------------------------------------------------------
say "7. az aks update --attach-acr again: the grant exists at once but has to propagate"
freeze_clock
quietly az aks update -g "$RG" -n "$CLUSTER" --attach-acr "$ACR_ID" -o none
health_json | pyjson '[p["reason"] for r in d["registries"] if r["loginServer"] == "'"$ACR_NAME"'.azurecr.io" for p in r["pulls"]][0]' | indent
notice "still denied: AcrPull is propagating (Azure says up to 10 minutes)"
[ "$(health_json | pyjson 'd["healthy"]')" = "false" ] || fail "the fresh grant should not have taken effect yet"
ADVANCE=15
if [ "$ADVANCE" -le "$DELAY" ]; then ADVANCE=$((DELAY + 1)); fi
show "$ARMLET" clock advance "${ADVANCE}s"
restore_clock
show "$ARMLET" cluster health "$CLUSTER_ID"
[ "$(health_json | pyjson 'd["healthy"]')" = "true" ] && [ "$(our_pulls)" = "[true]" ] ||
    fail "the cluster is not healthy after the grant propagated"
notice "healthy: the nodes pull as $CLUSTER-agentpool, and no secret is left to expire"

demo_end
