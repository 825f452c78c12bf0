"""Fuzzing armlet against its own OpenAPI description with schemathesis.

schemathesis (pinned in requirements.txt, run as its CLI in a subprocess) reads
openapi/armlet.json, generates requests for every operation the document describes, valid and
invalid ones, and sends them to a dedicated armlet over HTTPS (armlet's CA verified) with a real
bearer token of the default service principal. Every response must pass these checks:

* ``not_a_server_error``: no 5xx; a client's mistake is a 4xx;
* ``status_code_conformance``: the status is one the operation documents;
* ``content_type_conformance``: the Content-Type is one documented for that status;
* ``response_schema_conformance``: the body validates against the documented schema;
* ``response_headers_conformance``: documented response headers are there and valid.

armlet must not panic (its log is searched), must be healthy afterwards, and must exit 0 on
SIGTERM (``running_armlet``). A failing run prints schemathesis' block for each finding, with
the curl command that reproduces it; the findings so far are pinned in tests/it/regressions.rs.

Nothing is excluded: every operation is fuzzed, in every phase, with every check above. Two
things are allowed, each for the reason given where it is configured:

* the five AKS operations armlet does not emulate may answer their documented 501
  ``NotImplemented`` (any other 5xx from them still fails);
* ``{scope}`` and ``{clusterId}`` are sent with literal slashes (the ``before_call`` hook), as
  ARM clients send them; schemathesis would percent-encode them and only ever reach armlet's
  ``InvalidResourceId``.

How the run is shaped, and why:

* **Real values half of the time.** Random path parameters only reach armlet's 404s, so before
  the run the test creates a small world (a resource group, a user-assigned identity with a
  federated credential, a virtual network and subnet, a registry, an AKS cluster, a Graph
  application with its service principal; all named ``fuzz01``) and binds schemathesis
  dictionaries to the parameters that name things (subscription, group, resource names, scopes,
  operation ids, machine names, object ids, credentials, api-versions per resource type from
  fixtures/providers.json): each is drawn from its dictionary with probability
  ``REAL_VALUE_PROBABILITY`` and generated otherwise.
* **A baseline that heals.** Some successful calls destroy what the rest of the run needs (a
  DELETE of the cluster, the group or the default service principal, ``POST /_armlet/reset``,
  ``PUT /_armlet/state``, unregistering a provider). After each such call the ``after_call``
  hook (this module, imported by the schemathesis process with ``ARMLET_FUZZ_HOOKS=1``) puts
  the exported baseline back with ``PUT /_armlet/state``. The call itself was checked like any
  other; only what follows starts from the baseline again.
* **Fault rules are cleared at once.** ``POST /_armlet/faults`` exists to make later requests
  answer 429 or 5xx on purpose; the hook removes a rule the fuzzer managed to add right after
  the (checked) call that added it, so the 5xx it would cause are not findings.
* **Reproducible.** A fixed seed, ``--seed`` for armlet's ids, no Hypothesis example database,
  one worker (armlet's answers depend on the order of requests).
* **Sized for CI.** ``MAX_EXAMPLES`` per operation and phase over the examples, coverage,
  fuzzing and stateful phases: about five thousand cases, two to three minutes with the debug
  build on the 2-core CI machine. ``ARMLET_FUZZ_MAX_EXAMPLES`` and ``ARMLET_FUZZ_SEED`` make a
  longer or a different run locally.

Run just this: ``.venv/bin/python -m pytest tests/e2e/test_fuzz.py``.
"""

from __future__ import annotations

import collections
import json
import os
import re
import ssl
import subprocess
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from conftest import REPO_ROOT, Armlet, clean_environ, running_armlet

OPENAPI = REPO_ROOT / "openapi" / "armlet.json"
PROVIDERS = REPO_ROOT / "fixtures" / "providers.json"

SEED = int(os.environ.get("ARMLET_FUZZ_SEED", "20261129"))
ARMLET_SEED = "7"
MAX_EXAMPLES = int(os.environ.get("ARMLET_FUZZ_MAX_EXAMPLES", "15"))
PHASES = "examples,coverage,fuzzing,stateful"
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)
REAL_VALUE_PROBABILITY = 0.6
# The whole schemathesis run; far above what it needs, so only a hang trips it.
RUN_TIMEOUT_S = 600
# A run that generates fewer cases than this has not fuzzed anything worth the name.
MIN_CASES = 100 * MAX_EXAMPLES

NAME = "fuzz01"
LOCATION = "westus2"
OWNER_ROLE = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
READER_ROLE = "acdd72a7-3385-48ef-bd42-f606fba81ae7"

API = {
    "Microsoft.Resources": "2024-11-01",
    "Microsoft.ManagedIdentity": "2024-11-30",
    "Microsoft.Network": "2024-05-01",
    "Microsoft.ContainerRegistry": "2025-04-01",
    "Microsoft.ContainerService": "2026-06-01",
    "Microsoft.Authorization": "2022-04-01",
}


# --------------------------------------------------------------------------------------
# HTTP for setting up the world
# --------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: Any
    body: Any


class Client:
    """Requests to one armlet: ARM and Graph over HTTPS with the token, /_armlet over HTTP."""

    def __init__(self, server: Armlet, ca_file: Path):
        self.https = server.https_url
        self.http = server.http_url
        self.ctx = ssl.create_default_context(cafile=str(ca_file))
        self.token = ""

    def call(self, method: str, url: str, body: Any = None, *, form: Optional[dict] = None, auth: bool = True) -> Reply:
        headers = {"Accept": "application/json"}
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if auth and self.token and url.startswith(self.https):
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        context = self.ctx if url.startswith("https://") else None
        try:
            with urllib.request.urlopen(request, context=context, timeout=60) as r:
                status, hdrs, raw = r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            status, hdrs, raw = e.code, e.headers, e.read()
        try:
            parsed = json.loads(raw) if raw.strip() else None
        except json.JSONDecodeError:
            parsed = raw.decode(errors="replace")
        return Reply(status, hdrs, parsed)

    def ok(self, method: str, path: str, body: Any = None, *, want=(200, 201, 202, 204), **kw) -> Reply:
        url = path if path.startswith("http") else self.https + path
        reply = self.call(method, url, body, **kw)
        assert reply.status in want, f"setup: {method} {path} -> {reply.status}: {reply.body}"
        return reply


@dataclass
class World:
    """What exists before the run, and the values the dictionaries draw from."""

    tenant: str
    subscription: str
    client_id: str
    client_secret: str
    sp_object_id: str
    identity_header: str
    group_id: str
    identity: dict
    cluster_id: str
    machines: List[str]
    operation_ids: List[str]
    app: dict
    app_sp: dict
    baseline: dict = field(default_factory=dict)


def arm(path: str, namespace: str) -> str:
    return f"{path}{'&' if '?' in path else '?'}api-version={API[namespace]}"


def build_world(client: Client, server: Armlet) -> World:
    info = client.call("GET", f"{server.http_url}/_armlet/info").body
    tenant, sub = info["tenantId"], info["subscriptionId"]
    token = client.ok(
        "POST",
        f"/{tenant}/oauth2/v2.0/token",
        form={
            "grant_type": "client_credentials",
            "client_id": info["clientId"],
            "client_secret": info["clientSecret"],
            "scope": f"{server.https_url}/.default",
        },
        auth=False,
    ).body
    client.token = token["access_token"]

    group = f"/subscriptions/{sub}/resourceGroups/{NAME}"
    client.ok("PUT", arm(group, "Microsoft.Resources"), {"location": LOCATION})
    # A group deleted at once, for a real `operationresults` id.
    gone = f"/subscriptions/{sub}/resourceGroups/{NAME}-gone"
    client.ok("PUT", arm(gone, "Microsoft.Resources"), {"location": LOCATION})
    deleted = client.ok("DELETE", arm(gone, "Microsoft.Resources"))
    operation_ids = [_last_segment(deleted.headers.get("Location", ""))]

    identity_path = f"{group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{NAME}"
    identity = client.ok("PUT", arm(identity_path, "Microsoft.ManagedIdentity"), {"location": LOCATION}).body
    client.ok(
        "PUT",
        arm(f"{identity_path}/federatedIdentityCredentials/{NAME}", "Microsoft.ManagedIdentity"),
        {"properties": {"issuer": "https://oidc.example.com/", "subject": "system:serviceaccount:default:app",
                        "audiences": ["api://AzureADTokenExchange"]}},
    )

    vnet = f"{group}/providers/Microsoft.Network/virtualNetworks/{NAME}"
    client.ok("PUT", arm(vnet, "Microsoft.Network"),
              {"location": LOCATION, "properties": {"addressSpace": {"addressPrefixes": ["10.10.0.0/16"]}}})
    client.ok("PUT", arm(f"{vnet}/subnets/{NAME}", "Microsoft.Network"),
              {"properties": {"addressPrefix": "10.10.0.0/24"}})
    client.ok("PUT", arm(f"{group}/providers/Microsoft.ContainerRegistry/registries/{NAME}", "Microsoft.ContainerRegistry"),
              {"location": LOCATION, "sku": {"name": "Basic"}})

    cluster_id = f"{group}/providers/Microsoft.ContainerService/managedClusters/{NAME}"
    created = client.ok(
        "PUT",
        arm(cluster_id, "Microsoft.ContainerService"),
        {
            "location": LOCATION,
            "identity": {"type": "SystemAssigned"},
            "properties": {
                "dnsPrefix": NAME,
                "agentPoolProfiles": [{"name": NAME, "count": 2, "mode": "System", "osType": "Linux",
                                       "type": "VirtualMachineScaleSets"}],
            },
        },
    )
    operation_ids.append(_last_segment(created.headers.get("Azure-AsyncOperation", "").split("?")[0]))
    deadline = time.monotonic() + 60
    while True:
        state = client.ok("GET", arm(cluster_id, "Microsoft.ContainerService")).body["properties"]["provisioningState"]
        if state == "Succeeded":
            break
        assert time.monotonic() < deadline, f"setup: the fuzz cluster is still {state} after 60 s"
        time.sleep(0.2)
    machines = client.ok(
        "GET", arm(f"{cluster_id}/agentPools/{NAME}/machines", "Microsoft.ContainerService")
    ).body["value"]

    app = client.ok("POST", "/v1.0/applications", {"displayName": NAME}, want=(201,)).body
    app_sp = client.ok("POST", "/v1.0/servicePrincipals", {"appId": app["appId"]}, want=(201,)).body

    world = World(
        tenant=tenant,
        subscription=sub,
        client_id=info["clientId"],
        client_secret=info["clientSecret"],
        sp_object_id="a1e70000-0000-4000-8000-000000000004",
        identity_header=info["identityHeader"],
        group_id=group,
        identity=identity,
        cluster_id=cluster_id,
        machines=[m["name"] for m in machines],
        operation_ids=[o for o in operation_ids if o],
        app=app,
        app_sp=app_sp,
    )
    world.baseline = client.ok("GET", f"{server.http_url}/_armlet/state").body
    return world


def _last_segment(url: str) -> str:
    return urllib.parse.urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]


# --------------------------------------------------------------------------------------
# schemathesis configuration
# --------------------------------------------------------------------------------------


def api_versions_for(path: str, providers: List[dict]) -> List[str]:
    """The newest api-versions of the resource type an ARM path addresses, from the same
    fixture armlet checks them against (the longest known type wins: `managedClusters/
    agentPools`, else `managedClusters` for its actions)."""
    segments = [s for s in path.strip("/").split("/") if s]
    namespace, literals = "Microsoft.Resources", []
    for i, segment in enumerate(segments):
        if segment == "providers" and i + 1 < len(segments) and not segments[i + 1].startswith("{"):
            namespace = segments[i + 1]
            literals = [s for s in segments[i + 2:] if not s.startswith("{")]
            break
    else:
        literals = [s for s in segments if not s.startswith("{")]
    types = {t["resourceType"].lower(): t["apiVersions"]
             for ns in providers if ns["namespace"] == namespace for t in ns["resourceTypes"]}
    for n in range(len(literals), 0, -1):
        versions = types.get("/".join(literals[:n]).lower())
        if versions:
            return versions[:3]
    raise AssertionError(f"no api-versions in fixtures/providers.json for {path} ({namespace})")


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def schemathesis_config(server: Armlet, world: World, token: str, ca_file: Path, report_dir: Path) -> str:
    """The run's schemathesis.toml: where, how much, and the dictionaries of real values."""
    identity_id = world.identity["id"]
    props = world.identity["properties"]
    dictionaries: Dict[str, List[Any]] = {
        "subscription": [world.subscription],
        "name": [NAME],
        "location": [LOCATION],
        "tenant": [world.tenant, "organizations"],
        "namespace": ["Microsoft.ContainerService", "Microsoft.ManagedIdentity", "Microsoft.Network"],
        "scope": [
            f"subscriptions/{world.subscription}",
            world.group_id.lstrip("/"),
            identity_id.lstrip("/"),
        ],
        "roleAssignment": ["a1e70000-0000-4000-8000-0000000000a1", str(uuid.UUID(int=SEED))],
        "roleDefinition": [OWNER_ROLE, READER_ROLE, str(uuid.UUID(int=SEED + 1))],
        "operation": world.operation_ids,
        "machine": world.machines,
        "graphId": [world.app["id"], world.app_sp["id"], world.sp_object_id],
        "appId": [world.app["appId"], world.client_id],
        "clusterId": [world.cluster_id.lstrip("/")],
        "clientId": [props["clientId"]],
        "spClientId": [world.client_id],
        "principalId": [props["principalId"]],
        "resourceId": [identity_id],
        "tenantId": [world.tenant],
        "audience": [f"{server.https_url}/", "https://management.azure.com/"],
        "identityHeader": [world.identity_header],
        "action": ["Microsoft.ManagedIdentity/userAssignedIdentities/write", "*/read"],
        "explainScope": [world.group_id],
        "clientSecret": [world.client_secret],
        "tokenScope": [f"{server.https_url}/.default"],
    }
    bindings = {
        "path.subscriptionId": "subscription",
        "path.resourceGroupName": "name",
        "path.resourceName": "name",
        "path.registryName": "name",
        "path.virtualNetworkName": "name",
        "path.subnetName": "name",
        "path.agentPoolName": "name",
        "path.federatedIdentityCredentialResourceName": "name",
        "path.location": "location",
        "path.tenant": "tenant",
        "path.resourceProviderNamespace": "namespace",
        "path.scope": "scope",
        "path.roleAssignmentName": "roleAssignment",
        "path.roleDefinitionId": "roleDefinition",
        "path.operationId": "operation",
        "path.machineName": "machine",
        "path.id": "graphId",
        "path.appId": "appId",
        "path.clusterId": "clusterId",
        "query.client_id": "clientId",
        "query.aid": "clientId",
        "query.object_id": "principalId",
        "query.principal_id": "principalId",
        "query.oid": "principalId",
        "query.principal": "principalId",
        "query.msi_res_id": "resourceId",
        "query.mi_res_id": "resourceId",
        "query.tid": "tenantId",
        "query.resource": "audience",
        "query.action": "action",
        "query.scope": "explainScope",
        "query.location": "location",
        "header.X-IDENTITY-HEADER": "identityHeader",
        "body.client_id": "spClientId",
        "body.client_secret": "clientSecret",
        "body.scope": "tokenScope",
        "body.location": "location",
    }
    lines = [
        f"base-url = {_toml(server.https_url)}",
        f"tls-verify = {_toml(str(ca_file))}",
        f"seed = {SEED}",
        "workers = 1",
        "request-timeout = 60",
        f"hooks = {_toml(Path(__file__).stem)}",
        f"headers = {_toml({'Authorization': f'Bearer {token}'})}",
        "",
        "[generation]",
        f"max-examples = {MAX_EXAMPLES}",
        'database = "none"',
        "",
        "[cache]",
        "enabled = false",
        "",
        "[reports]",
        f"directory = {_toml(str(report_dir))}",
        "json.enabled = true",
        "",
        "[parameters]",
    ]
    lines += [f"{_toml(k)} = {_toml({'dictionary': v, 'probability': REAL_VALUE_PROBABILITY})}"
              for k, v in bindings.items()]

    # api-versions differ per resource type: one dictionary and binding per ARM operation.
    providers = json.loads(PROVIDERS.read_text())
    doc = json.loads(OPENAPI.read_text())
    api_dictionary: Dict[str, str] = {}
    not_emulated = set()
    for path, item in doc["paths"].items():
        for op in item.values():
            operation_id, params = op["operationId"], op.get("parameters", [])
            if "501" in op["responses"]:
                not_emulated.add(operation_id)
            if path == "/metadata/endpoints":
                # Not a resource type: az asks 2022-09-01 (one cloud) or older (a list).
                versions = ["2022-09-01", "2019-05-01"]
            elif any(p.get("$ref") == "#/components/parameters/ApiVersion" for p in params):
                versions = api_versions_for(path, providers)
            elif any(p.get("name") == "api-version" for p in params):
                # IMDS and the App Service form of managed-identity tokens.
                versions = ["2019-08-01"] if path.startswith("/msi/") else ["2018-02-01", "2019-08-01"]
            else:
                continue
            dictionaries[f"api:{operation_id}"] = versions
            api_dictionary[operation_id] = f"api:{operation_id}"
    lines.append("")
    for name, values in dictionaries.items():
        lines += [f"[dictionaries.{_toml(name)}]", f"values = {_toml(values)}", ""]
    for operation_id in sorted(set(api_dictionary) | not_emulated):
        lines += ["[[operations]]", f"include-operation-id = {_toml(operation_id)}"]
        if operation_id in api_dictionary:
            binding = {"query.api-version": {"dictionary": api_dictionary[operation_id], "probability": 0.8}}
            lines.append(f"parameters = {_toml(binding)}")
        if operation_id in not_emulated:
            # armlet answers 501 NotImplemented, as the document says, for the AKS operations
            # it does not emulate (they need a Kubernetes API server it does not have). That
            # one 5xx is their documented answer; any other 5xx from them still fails.
            lines.append('checks = { not_a_server_error = { expected-statuses = ["2xx", "3xx", "4xx", "501"] } }')
        lines.append("")
    text = "\n".join(lines)
    tomllib.loads(text)  # fail here, readably, rather than inside schemathesis
    return text


# --------------------------------------------------------------------------------------
# The hooks (run inside the schemathesis process)
# --------------------------------------------------------------------------------------


def _disturbs_baseline(method: str, path: str) -> bool:
    """Whether a successful call of this operation may have removed what later cases use."""
    if method == "DELETE":
        return not path.startswith("/_armlet/")
    return (method, path) in {
        ("POST", "/_armlet/reset"),
        ("PUT", "/_armlet/state"),
        ("POST", "/subscriptions/{subscriptionId}/providers/{resourceProviderNamespace}/unregister"),
    }


def _register_hooks() -> None:
    import atexit

    import schemathesis
    from schemathesis.core.parameters import EncodedPath

    control = os.environ["ARMLET_FUZZ_CONTROL_URL"]
    baseline = Path(os.environ["ARMLET_FUZZ_BASELINE"]).read_bytes()
    stats_file = Path(os.environ["ARMLET_FUZZ_STATS"])
    lock = threading.Lock()
    statuses: Dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    counters = collections.Counter()
    network_errors: List[dict] = []

    def control_call(method: str, path: str, data: Optional[bytes] = None) -> None:
        request = urllib.request.Request(f"{control}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as r:
            r.read()

    @schemathesis.hook
    def before_call(context, case, kwargs):
        # `{scope}` and `{clusterId}` span several segments (the document says so, as Azure's
        # specs do with x-ms-skip-url-encoding): send their slashes as slashes. schemathesis
        # would send %2F, which armlet rightly refuses (InvalidResourceId) before any handler.
        for name in ("scope", "clusterId"):
            value = (case.path_parameters or {}).get(name)
            if isinstance(value, str) and "%2F" in value.upper():
                segments = urllib.parse.unquote(value).split("/")
                case.path_parameters[name] = EncodedPath(
                    "/".join(urllib.parse.quote(segment, safe="") for segment in segments)
                )

    @schemathesis.hook
    def after_call(context, case, response):
        status = response.status_code
        with lock:
            statuses[case.operation.label][str(status)] += 1
            if not 200 <= status < 300:
                return
            if case.method.upper() == "POST" and case.path == "/_armlet/faults":
                control_call("DELETE", "/_armlet/faults")
                counters["faults_cleared"] += 1
            if _disturbs_baseline(case.method.upper(), case.path):
                control_call("PUT", "/_armlet/state", baseline)
                counters["baseline_restored"] += 1

    @schemathesis.hook
    def after_network_error(context, case, request):
        # What the connection broke on, for the failure report (schemathesis keeps only the error).
        body = request.body or b""
        with lock:
            network_errors.append({
                "operation": case.operation.label,
                "method": request.method,
                "url": request.url[:500],
                "url_length": len(request.url),
                "headers": {k: (v if len(v) < 200 else f"<{len(v)} characters>") for k, v in request.headers.items()
                            if k.lower() != "authorization"},
                "body_length": len(body),
                "body_start": (body[:300].decode(errors="replace") if isinstance(body, bytes) else str(body)[:300]),
            })

    def dump() -> None:
        with lock:
            stats_file.write_text(json.dumps({"statuses": statuses, "counters": counters,
                                              "network_errors": network_errors}))

    atexit.register(dump)


if os.environ.get("ARMLET_FUZZ_HOOKS") == "1":
    _register_hooks()


# --------------------------------------------------------------------------------------
# The test
# --------------------------------------------------------------------------------------


def findings(output: str, limit: int = 30000) -> str:
    """The ERRORS and FAILURES sections of schemathesis' output: one block per finding, each
    with the operation, the check, the response and a curl command that reproduces it."""
    starts = [m.start() for m in re.finditer(r"^=+ (ERRORS|FAILURES) =+$", output, re.M)]
    if not starts:
        return output[-limit:]
    end = re.search(r"^=+ (WARNINGS|SUMMARY) =+$", output[starts[0]:], re.M)
    text = output[starts[0]: starts[0] + end.start()] if end else output[starts[0]:]
    return text if len(text) <= limit else text[:limit] + "\n[... cut; the whole output is in schemathesis.log]"


def test_fuzz_the_openapi_document(tmp_path):
    with running_armlet("--seed", ARMLET_SEED) as server:
        info = json.loads(urllib.request.urlopen(f"{server.http_url}/_armlet/info", timeout=30).read())
        ca_file = tmp_path / "ca.pem"
        ca_file.write_text(info["caCertificate"])
        client = Client(server, ca_file)
        world = build_world(client, server)

        baseline_file = tmp_path / "baseline.json"
        baseline_file.write_text(json.dumps(world.baseline))
        report_dir = tmp_path / "report"
        config_file = tmp_path / "schemathesis.toml"
        config_file.write_text(schemathesis_config(server, world, client.token, ca_file, report_dir))
        stats_file = tmp_path / "stats.json"

        env = clean_environ()
        env.update(
            ARMLET_FUZZ_HOOKS="1",
            ARMLET_FUZZ_CONTROL_URL=server.http_url,
            ARMLET_FUZZ_BASELINE=str(baseline_file),
            ARMLET_FUZZ_STATS=str(stats_file),
            PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        )
        cmd = [
            sys.executable, "-m", "schemathesis.cli", "--config-file", str(config_file), "--no-color",
            "run", str(OPENAPI), "--phases", PHASES, "--checks", ",".join(CHECKS),
        ]
        started = time.monotonic()
        try:
            run = subprocess.run(cmd, cwd=str(tmp_path), env=env, stdin=subprocess.DEVNULL,
                                 capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            pytest.fail(f"schemathesis did not finish within {RUN_TIMEOUT_S} s:\n{out[-8000:]}", pytrace=False)
        elapsed = time.monotonic() - started
        output = run.stdout + run.stderr
        logs = f"(in {tmp_path}: schemathesis.log, armlet.log, schemathesis.toml)"
        (tmp_path / "schemathesis.log").write_text(output)
        (tmp_path / "armlet.log").write_text("\n".join(server.log))

        reports = sorted(report_dir.glob("*.json"))
        assert reports, f"schemathesis wrote no report (exit {run.returncode}) {logs}:\n{output[-8000:]}"
        report = json.loads(reports[-1].read_text())
        assert stats_file.exists(), f"the hooks did not run (exit {run.returncode}) {logs}:\n{output[-8000:]}"
        stats = json.loads(stats_file.read_text())
        cases = report["test_cases"]["generated"]
        print(f"schemathesis: {cases} cases in {elapsed:.0f} s; {dict(stats['counters'])}")

        failures, errors = report.get("failures") or [], report.get("errors") or []
        panics = [line for line in server.log if "panicked at" in line]
        broken = "".join(f"\n  {json.dumps(e)}" for e in stats["network_errors"][:20])
        if failures or errors or panics:
            pytest.fail(
                f"schemathesis found {sum(f['count'] for f in failures)} failure(s) and "
                f"{sum(e['count'] for e in errors)} error(s) in {cases} cases; armlet panicked "
                f"{len(panics)} time(s) {logs}\n\n{findings(output)}\n"
                + (f"\nrequests whose connection broke:{broken}\n" if broken else "")
                + ("\npanics:\n" + "\n".join(panics[:20]) if panics else ""),
                pytrace=False,
            )
        assert run.returncode == 0, f"schemathesis exited {run.returncode} {logs}:\n{output[-8000:]}"

        # The run really exercised armlet: enough cases, and most operations succeeded at
        # least once (a broken token or world would leave only 4xx).
        assert cases >= MIN_CASES, f"only {cases} cases were generated {logs}:\n{output[-4000:]}"
        succeeded = {op for op, c in stats["statuses"].items() if any(s.startswith("2") for s in c)}
        assert len(succeeded) >= len(stats["statuses"]) // 2, (
            f"only {len(succeeded)} of {len(stats['statuses'])} operations ever succeeded: {stats['statuses']}"
        )
        health = client.call("GET", f"{server.http_url}/_armlet/health")
        assert health.status == 200, f"armlet is unhealthy after the run: {health.body}"
